// Package runner orchestrates one run of a plan against Command: preflight,
// the due check, the bounded renew→deploy pipeline and verification, and it
// maps every outcome onto one report row per plan row. It decides what to
// do; it does not own wire formats (keyfactor), the plan format (plan),
// durable state (journal) or report formats (report).
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/report"
)

// Client is the part of the Command API the runner calls.
// *keyfactor.Client implements it.
type Client interface {
	StatusEndpoints(ctx context.Context) ([]string, error)
	MyPermissions(ctx context.Context) ([]string, error)
	GetCertificate(ctx context.Context, id int, includeLocations bool) (*keyfactor.Certificate, error)
	ListCertificates(ctx context.Context, q keyfactor.CertificateQuery) ([]keyfactor.Certificate, error)
	AllCertificateStores(ctx context.Context, queryString string) ([]keyfactor.CertificateStore, error)
	Renew(ctx context.Context, req keyfactor.RenewalRequest) (*keyfactor.RenewalResponse, error)
	Deploy(ctx context.Context, req keyfactor.DeployRequest) (*keyfactor.DeployResponse, error)
}

// Config holds the decisions an operator makes on the command line.
type Config struct {
	// Concurrency is the number of renew→deploy workers (and of concurrent
	// certificate reads in the due check).
	Concurrency int
	// RenewBefore applies to rows without their own renew_before.
	RenewBefore plan.RenewBefore
	// Force renews every certificate, due or not, and starts a new lineage.
	Force bool
	// DryRun stops after the due check: nothing is renewed or deployed.
	DryRun bool
	// Window is Command's staging window; Deploy must be sent before
	// renewal + Window − WindowMargin.
	Window       time.Duration
	WindowMargin time.Duration
	// Verify waits, after the deploys, until inventory shows the new
	// certificate in each store, for at most VerifyTimeout.
	Verify         bool
	VerifyTimeout  time.Duration
	VerifyInterval time.Duration
	// JobTime schedules the management jobs of rows without job_time.
	JobTime time.Time
	// MaxRenewals caps the renewals of one run (0 = no cap).
	MaxRenewals int
	// LegacyDeploy sends the pre-9.4 StoreIds/StoreTypes deploy shape.
	LegacyDeploy bool
	// Identity names the Command user in messages ("DOMAIN\\user").
	Identity string
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Runner runs plans. Its collaborators are fields so tests can swap them.
type Runner struct {
	Client  Client
	Journal *journal.Journal
	Config  Config
}

// PreflightError means Command could not be used at all (unreachable,
// authentication refused, a global permission missing); nothing was renewed.
type PreflightError struct{ Err error }

func (e *PreflightError) Error() string { return "preflight: " + e.Err.Error() }
func (e *PreflightError) Unwrap() error { return e.Err }

// ErrInterrupted is returned with a complete report when the run was
// interrupted: in-flight work was finished, the rest reported as not started.
var ErrInterrupted = errors.New("run interrupted")

// Run executes the plan once and returns a report with one row per plan
// row. The error is a *PreflightError, ErrInterrupted, or nil; failed rows
// are data in the report, not errors.
func (r *Runner) Run(ctx context.Context, p *plan.Plan) (*report.Report, error) {
	cfg := r.Config.withDefaults()
	st := &run{
		cfg:     cfg,
		client:  r.Client,
		journal: r.Journal,
		log:     cfg.Logger,
		plan:    p,
		rows:    make([]report.Row, len(p.Rows)),
		index:   make(map[*plan.Row]int, len(p.Rows)),
	}
	command := "run"
	if cfg.DryRun {
		command = "plan"
	}
	rep := &report.Report{Run: report.Run{
		Start:    cfg.Now().UTC(),
		PlanFile: p.Path,
		Columns:  p.Columns,
		DryRun:   cfg.DryRun,
		Command:  command,
	}}
	for i, row := range p.Rows {
		st.index[row] = i
		st.rows[i] = report.Row{
			Line:          row.Line,
			CertificateID: row.CertificateID,
			Thumbprint:    row.Thumbprint,
			StoreID:       row.StoreID,
			Alias:         row.Alias,
			Status:        report.Failed,
			Stage:         report.StagePlan,
			Detail:        "not started",
			PlanValues:    row.Values,
		}
	}

	err := st.execute(ctx)
	rep.Rows = st.rows
	rep.Run.End = cfg.Now().UTC()
	if errors.Is(err, ErrInterrupted) {
		rep.Run.Interrupted = true
	}
	if r.Journal != nil && !cfg.DryRun {
		counts := map[string]int{}
		for s, n := range rep.Counts() {
			counts[string(s)] = n
		}
		if jerr := r.Journal.RecordRun(journal.RunRecord{Start: rep.Run.Start, End: rep.Run.End, PlanFile: p.Path, Counts: counts, Interrupted: rep.Run.Interrupted}); jerr != nil {
			st.log.Warn("could not record the run in the journal", "err", jerr)
		}
	}
	return rep, err
}

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.Window <= 0 {
		c.Window = 5 * time.Minute
	}
	if c.WindowMargin < 0 || c.WindowMargin >= c.Window {
		c.WindowMargin = c.Window / 10
	}
	if c.VerifyTimeout <= 0 {
		c.VerifyTimeout = 10 * time.Minute
	}
	if c.VerifyInterval <= 0 {
		c.VerifyInterval = 5 * time.Second
	}
	if c.RenewBefore == (plan.RenewBefore{}) {
		c.RenewBefore = plan.RenewBefore{Duration: 30 * 24 * time.Hour}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Identity == "" {
		c.Identity = "the Command user"
	}
	return c
}

// run is the state of one execution of a plan.
type run struct {
	cfg     Config
	client  Client
	journal *journal.Journal
	log     *slog.Logger
	plan    *plan.Plan

	mu    sync.Mutex // guards rows
	rows  []report.Row
	index map[*plan.Row]int

	stores map[string]keyfactor.CertificateStore // by lowercase id
}

// target is one certificate to renew and the rows (stores) it goes to.
type target struct {
	job  *plan.Job
	rows []*plan.Row // rows still in play
	key  string      // journal key: "id:<resolved certificate id>"
	cert *keyfactor.Certificate

	// resume is set when an earlier run already renewed this certificate
	// and its staging window is still open: deploy without renewing.
	resume *journal.Renewal
}

func (s *run) execute(ctx context.Context) error {
	if err := s.preflight(ctx); err != nil {
		if ctx.Err() != nil {
			return s.interrupted(report.StagePreflight)
		}
		s.failAll(report.StagePreflight, "not started: preflight failed", err)
		return err
	}
	targets := s.viableTargets()
	if ctx.Err() != nil {
		return s.interrupted(report.StagePreflight)
	}
	targets = s.check(ctx, targets)
	if ctx.Err() != nil {
		return s.interrupted(report.StageCheck)
	}
	if s.cfg.DryRun {
		for _, t := range targets {
			verb := "would renew certificate %d and deploy it to %d store(s)"
			if t.resume != nil {
				verb = "would deploy the earlier renewal of certificate %d to %d store(s)"
			}
			s.setRows(t.rows, func(row *report.Row) {
				row.Status, row.Stage = report.Skipped, report.StageCheck
				row.Detail = fmt.Sprintf(verb, t.cert.Id, len(t.rows)) + dueText(s.dueAt(t), s.cfg.Force)
			})
		}
		return nil
	}
	targets = s.capRenewals(targets)
	deployed := s.pipeline(ctx, targets)
	if s.cfg.Verify {
		s.verify(ctx, deployed)
	}
	if ctx.Err() != nil {
		return ErrInterrupted
	}
	return nil
}

func dueText(dueAt time.Time, force bool) string {
	if force {
		return " (--force)"
	}
	return " (due since " + dueAt.UTC().Format("2006-01-02") + ")"
}

// interrupted marks every row that has not reached a final state.
func (s *run) interrupted(stage report.Stage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.rows {
		if s.rows[i].Stage == report.StagePlan {
			s.rows[i].Status, s.rows[i].Stage = report.Failed, stage
			s.rows[i].Detail = "not started: run interrupted"
		}
	}
	return ErrInterrupted
}

func (s *run) failAll(stage report.Stage, detail string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.rows {
		s.rows[i].Status, s.rows[i].Stage, s.rows[i].Detail = report.Failed, stage, detail
		s.rows[i].Error = err.Error()
	}
}

// setRows applies f to the report rows of the given plan rows.
func (s *run) setRows(rows []*plan.Row, f func(*report.Row)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pr := range rows {
		f(&s.rows[s.index[pr]])
	}
}

func (s *run) failRows(rows []*plan.Row, stage report.Stage, detail string, err error) {
	s.setRows(rows, func(row *report.Row) {
		row.Status, row.Stage, row.Detail = report.Failed, stage, detail
		if err != nil {
			row.Error = err.Error()
		}
	})
}

func (s *run) skipRows(rows []*plan.Row, stage report.Stage, detail string) {
	s.setRows(rows, func(row *report.Row) {
		row.Status, row.Stage, row.Detail = report.Skipped, stage, detail
	})
}

// rowSettled reports whether preflight already gave the row its outcome.
func (s *run) rowSettled(pr *plan.Row) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rows[s.index[pr]].Stage != report.StagePlan
}

// viableTargets turns plan jobs into targets, leaving out rows that
// preflight already failed. A job with no viable row is not renewed.
func (s *run) viableTargets() []*target {
	var out []*target
	for _, job := range s.plan.Jobs {
		t := &target{job: job}
		for _, pr := range job.Rows {
			if !s.rowSettled(pr) {
				t.rows = append(t.rows, pr)
			}
		}
		if len(t.rows) > 0 {
			out = append(out, t)
		}
	}
	return out
}

// capRenewals applies --max-renewals in plan order.
func (s *run) capRenewals(targets []*target) []*target {
	if s.cfg.MaxRenewals <= 0 {
		return targets
	}
	var kept []*target
	renewals := 0
	for _, t := range targets {
		if t.resume != nil {
			kept = append(kept, t)
			continue
		}
		if renewals >= s.cfg.MaxRenewals {
			s.skipRows(t.rows, report.StageCheck, fmt.Sprintf("due, but not renewed: --max-renewals %d reached", s.cfg.MaxRenewals))
			continue
		}
		renewals++
		kept = append(kept, t)
	}
	return kept
}

// pipeline renews and deploys each target with bounded concurrency. A
// worker owns its certificate from renewal to deploy, so no renewed
// certificate ever waits for a deploy slot. It returns the targets that
// have a deploy worth verifying.
func (s *run) pipeline(ctx context.Context, targets []*target) []*deployed {
	g := new(errgroup.Group)
	g.SetLimit(s.cfg.Concurrency)
	var mu sync.Mutex
	var out []*deployed
	for _, t := range targets {
		g.Go(func() error {
			// Stop starting work on the first signal; work already started
			// runs to the end of its deploy with a context of its own.
			if ctx.Err() != nil {
				s.failRows(t.rows, report.StageCheck, "not started: run interrupted", nil)
				return nil
			}
			d := s.renewAndDeploy(context.WithoutCancel(ctx), t)
			if d != nil {
				mu.Lock()
				out = append(out, d)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait() // workers report failures in rows and never return errors
	return out
}
