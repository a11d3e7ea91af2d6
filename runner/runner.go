// Package runner orchestrates one run of a plan against Command: preflight,
// the due check, the renew→deploy pipeline and verification, and it maps
// every outcome onto one report row per plan row. Its choices about a
// certificate (lineage, resume, --force, approval, window) are made by one
// pure function, decide; the rest of the package gathers the facts decide
// needs and carries out what it answers. It does not own wire formats
// (keyfactor), the plan format (plan), durable state (journal) or report
// formats (report).
package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/report"
)

// Client is the part of the Command API the runner calls.
// *keyfactor.Client implements it.
type Client interface {
	StatusEndpoints(ctx context.Context) ([]string, error)
	Permissions(ctx context.Context) (keyfactor.Permissions, error)
	AllCertificateStores(ctx context.Context, queryString string) ([]keyfactor.CertificateStore, []keyfactor.RecordError, error)
	CertificateStoreTypes(ctx context.Context) ([]keyfactor.CertificateStoreType, []keyfactor.RecordError, error)
	GetCertificate(ctx context.Context, id int, includeLocations bool) (*keyfactor.Certificate, error)
	CertificatesByID(ctx context.Context, ids []int, includeLocations bool) (map[int]*keyfactor.Certificate, []keyfactor.RecordError, error)
	CertificateQueryFits(q keyfactor.CertificateQuery) bool
	ListCertificates(ctx context.Context, q keyfactor.CertificateQuery) (*keyfactor.CertificatePage, error)
	AllCertificates(ctx context.Context, q keyfactor.CertificateQuery, each func(*keyfactor.Certificate) error) ([]keyfactor.RecordError, error)
	Renew(ctx context.Context, req keyfactor.RenewalRequest) (*keyfactor.RenewalResponse, error)
	Deploy(ctx context.Context, req keyfactor.DeployRequest) (*keyfactor.DeployResponse, error)
	CertificateRequest(ctx context.Context, requestID int) (*keyfactor.CertificateRequest, error)
	JobHistory(ctx context.Context, q keyfactor.JobHistoryQuery) ([]keyfactor.JobHistory, []keyfactor.RecordError, error)
}

// Config holds the decisions an operator makes on the command line.
type Config struct {
	// Concurrency is the number of renew→deploy pairs under way at once
	// (each a Renew then its Deploy; twice as many workers prepare them, so
	// none waits for the journal); certificate reads and verification each
	// get as many requests in flight.
	Concurrency int
	// RenewBefore applies to rows without their own renew_before.
	RenewBefore plan.RenewBefore
	// Force renews every certificate that has no live renewal, due or not.
	Force bool
	// DryRun stops after the due check: nothing is renewed, deployed or
	// written to the journal.
	DryRun bool
	// Window is Command's staging window; Deploy must be sent before
	// renewal + Window − WindowMargin.
	Window       time.Duration
	WindowMargin time.Duration
	// Verify waits until inventory shows each new certificate in its stores,
	// for at most VerifyTimeout after its deploy, reading every
	// VerifyInterval (growing with backoff).
	Verify         bool
	VerifyTimeout  time.Duration
	VerifyInterval time.Duration
	// JobTime schedules the management jobs of rows without job_time.
	JobTime time.Time
	// MaxRenewals caps the renewals of one run (0 = no cap); the oldest due
	// go first, the rest are deferred to the next run.
	MaxRenewals int
	// LegacyDeploy sends the pre-9.4 StoreIds/StoreTypes deploy shape.
	LegacyDeploy bool
	// Shard, when Count > 0, takes only the plan's certificates whose stable
	// hash falls in shard Index (1-based) of Count.
	Shard Shard
	// Drift says what a difference between the plan and the stores Command
	// shows does: warn (default) or fail the rows.
	Drift DriftMode
	// Identity names the Command user ("DOMAIN\\user"), for messages and to
	// match the requester of a lost renewal.
	Identity string
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// OnRow, when set, is called (from any goroutine, one call at a time)
	// each time a row reaches its final status; the CLI's progress bar
	// counts them.
	OnRow func(report.Row)
}

// Runner runs plans. Its collaborators are fields so tests can swap them.
type Runner struct {
	Client  Client
	Journal *journal.Journal // nil only in a dry run
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

// Run executes the plan once and returns a report with one row per plan row
// (of its shard). The error is a *PreflightError, ErrInterrupted, or nil;
// failed rows are data in the report, not errors. Cancelling ctx is the
// first interrupt: no Renew is sent after it, renewals already sent run on
// to their deploy, verification stops.
func (r *Runner) Run(ctx context.Context, p *plan.Plan) (*report.Report, error) {
	cfg := r.Config.withDefaults()
	s := newRun(cfg, r.Client, r.Journal, p)
	rep := &report.Report{Run: report.Run{
		Start:    cfg.Now().UTC(),
		PlanFile: p.Path,
		Columns:  p.Columns,
		DryRun:   cfg.DryRun,
		Command:  map[bool]string{false: "run", true: "plan"}[cfg.DryRun],
		Window:   cfg.Window,
		Shard:    s.shardInfo(),
	}}
	err := s.execute(ctx)
	rep.Rows = s.rows
	rep.Run.End = cfg.Now().UTC()
	rep.Run.Interrupted = errors.Is(err, ErrInterrupted)
	if r.Journal != nil && !cfg.DryRun {
		counts := map[string]int{}
		for st, n := range rep.Counts() {
			counts[string(st)] = n
		}
		if jerr := r.Journal.RecordRun(journal.RunRecord{Start: rep.Run.Start, End: rep.Run.End, PlanFile: p.Path, Counts: counts, Interrupted: rep.Run.Interrupted}); jerr != nil {
			s.log.Warn("could not record the run in the journal", "err", jerr)
		}
	}
	return rep, err
}

// The defaults of Config, which the command line's flags show too.
const (
	DefaultConcurrency = 8
	// DefaultWindow is Command's staging window: how long after Renew the
	// new certificate's private key can still be deployed.
	DefaultWindow         = 5 * time.Minute
	DefaultWindowMargin   = DefaultWindow / 10
	DefaultVerifyTimeout  = 10 * time.Minute
	DefaultVerifyInterval = 5 * time.Second
	DefaultRenewBefore    = 30 * 24 * time.Hour
)

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.WindowMargin < 0 || c.WindowMargin >= c.Window {
		c.WindowMargin = c.Window / 10
	}
	if c.VerifyTimeout <= 0 {
		c.VerifyTimeout = DefaultVerifyTimeout
	}
	if c.VerifyInterval <= 0 {
		c.VerifyInterval = DefaultVerifyInterval
	}
	if c.RenewBefore.IsZero() {
		c.RenewBefore = plan.RenewBefore{Duration: DefaultRenewBefore}
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
	jobs    []*plan.Job // the jobs of this shard

	mu       sync.Mutex   // guards rows and final
	planRows []*plan.Row  // the shard's rows in plan order
	rows     []report.Row // rows[i] reports planRows[i]
	final    []bool       // rows that reached their final status (OnRow was called)

	// Filled by preflight.
	stores     map[string]keyfactor.CertificateStore // by lower-case id
	storeTypes map[int]keyfactor.CertificateStoreType
	perms      keyfactor.Permissions

	subjects subjectLocks
	pairs    pairSlots // renew→deploy pairs in flight, at most Concurrency
	// batchRefused is set once Command refused a batched read
	// (`Id -eq … OR …`): certificates are then read one per request, and
	// the batched search for newer ones in the stores is not tried.
	batchRefused atomic.Bool
	verifier     *verifier
	deploysTo    map[string]int // deploys sent per store, guarded by mu
}

func newRun(cfg Config, client Client, j *journal.Journal, p *plan.Plan) *run {
	s := &run{cfg: cfg, client: client, journal: j, log: cfg.Logger, plan: p}
	s.jobs = cfg.Shard.jobs(p.Jobs)
	// Report rows in plan order. No map from row to report row: at 200,000
	// rows it costs more memory than the binary search by line costs time.
	s.planRows = p.Rows
	if cfg.Shard.Count > 0 {
		s.planRows = nil
		for _, job := range s.jobs {
			s.planRows = append(s.planRows, job.Rows...)
		}
		slices.SortFunc(s.planRows, func(a, b *plan.Row) int { return cmp.Compare(a.Line, b.Line) })
	}
	s.rows = make([]report.Row, len(s.planRows))
	for i, row := range s.planRows {
		s.rows[i] = report.Row{
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
	s.final = make([]bool, len(s.rows))
	return s
}

// rowIndex is the position of a plan row in s.rows. Every row starts on a
// line of its own, so the line identifies it.
func (s *run) rowIndex(pr *plan.Row) int {
	i := sort.Search(len(s.rows), func(i int) bool { return s.rows[i].Line >= pr.Line })
	if i == len(s.rows) || s.planRows[i] != pr {
		panic(fmt.Sprintf("runner: plan line %d is not in this run", pr.Line))
	}
	return i
}

func (s *run) shardInfo() *report.Shard {
	if s.cfg.Shard.Count == 0 {
		return nil
	}
	return &report.Shard{Index: s.cfg.Shard.Index, Count: s.cfg.Shard.Count, Rows: len(s.rows), PlanRows: len(s.plan.Rows)}
}

func (s *run) execute(ctx context.Context) error {
	if err := s.preflight(ctx); err != nil {
		if ctx.Err() != nil {
			return s.interrupted(report.StagePreflight)
		}
		s.failUnsettled(report.StagePreflight, "not started: preflight failed", err)
		return err
	}
	if ctx.Err() != nil {
		return s.interrupted(report.StagePreflight)
	}
	s.pipeline(ctx)
	if ctx.Err() != nil {
		return s.interrupted(report.StageCheck)
	}
	return nil
}

// interrupted marks every row that has not reached a final state.
func (s *run) interrupted(stage report.Stage) error {
	s.failUnsettled(stage, "not started: run interrupted", nil)
	return ErrInterrupted
}

// failUnsettled fails every row that has no outcome yet.
func (s *run) failUnsettled(stage report.Stage, detail string, err error) {
	s.mu.Lock()
	var rows []*plan.Row
	for i, pr := range s.planRows {
		if !s.final[i] {
			rows = append(rows, pr)
		}
	}
	s.mu.Unlock()
	s.failRows(rows, stage, detail, err)
}

// setRows applies f to the report rows of the given plan rows; final marks
// them as done (OnRow is told).
func (s *run) setRows(rows []*plan.Row, final bool, f func(*report.Row)) {
	s.mu.Lock()
	var done []report.Row
	for _, pr := range rows {
		i := s.rowIndex(pr)
		if s.final[i] {
			continue // an outcome stands; a later step must not overwrite it
		}
		f(&s.rows[i])
		if final {
			s.final[i] = true
			done = append(done, s.rows[i])
		}
	}
	onRow := s.cfg.OnRow
	if onRow != nil {
		for _, r := range done {
			onRow(r)
		}
	}
	s.mu.Unlock()
}

// note changes rows without settling them (new certificate id, times).
func (s *run) note(rows []*plan.Row, f func(*report.Row)) { s.setRows(rows, false, f) }

func (s *run) failRows(rows []*plan.Row, stage report.Stage, detail string, err error) {
	s.setRows(rows, true, func(row *report.Row) {
		row.Status, row.Stage, row.Detail = report.Failed, stage, detail
		if err != nil {
			row.Error = err.Error()
		}
	})
}

func (s *run) skipRows(rows []*plan.Row, stage report.Stage, detail string) {
	s.setRows(rows, true, func(row *report.Row) {
		row.Status, row.Stage, row.Detail = report.Skipped, stage, detail
	})
}

func (s *run) succeedRows(rows []*plan.Row, stage report.Stage, detail string, at time.Time) {
	s.setRows(rows, true, func(row *report.Row) {
		row.Status, row.Stage, row.Detail = report.Succeeded, stage, detail
		switch stage {
		case report.StageDeploy:
			if row.DeployedAt.IsZero() {
				row.DeployedAt = at
			}
		case report.StageVerify:
			row.VerifiedAt = at
		}
	})
}

// settled reports whether the row has its final status.
func (s *run) settled(pr *plan.Row) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.final[s.rowIndex(pr)]
}

// warn adds a warning to rows without settling them.
func (s *run) warn(rows []*plan.Row, msg string) {
	s.note(rows, func(row *report.Row) { row.Warnings = append(row.Warnings, msg) })
}

func rowsOf(rows ...*plan.Row) []*plan.Row { return rows }
