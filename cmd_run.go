package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/time/rate"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/report"
	"runner/runner"
)

// invocation is everything one run needs, read from the command line once;
// schedule reuses it for every run.
type invocation struct {
	planPath string
	dryRun   bool
	simulate bool
	cfg      runner.Config
	client   keyfactor.Config // unless simulate
	rate     float64
	state    string // --state, "" for the default
	waitLock time.Duration
	outputs  outputs
	planOpts plan.Options

	quiet        bool
	progress     string
	webhook      string
	notifyAlways bool
	jitter       time.Duration

	// configErr is a mistake in the flags or the connection settings
	// (readInvocation): runOnce writes the not-run report and returns it.
	configErr error

	log      *slog.Logger
	logGate  *logGate
	stdout   io.Writer
	stderr   io.Writer
	terminal bool // stdout is a terminal
}

// runAction is `runner PLAN.csv`, `runner run` and (dryRun) `runner plan`.
func runAction(c *cli.Context, dryRun bool) error {
	inv, err := readInvocation(c, dryRun)
	if err != nil {
		if inv == nil {
			return err
		}
		// A configuration mistake found once the outputs are known: the
		// run does not happen, but each --report (and the webhook) says
		// why, as for any other run that does not happen. No jitter: there
		// is nothing to spread over time.
		inv.configErr = err
		_, err = inv.runOnce(c.Context, time.Now())
		return err
	}
	if err := runner.Jitter(c.Context, inv.jitter, nil, nil); err != nil {
		return runner.ErrInterrupted // a signal during the jitter: nothing was started
	}
	_, err = inv.runOnce(c.Context, time.Now())
	return err
}

// readInvocation validates every flag before anything is contacted. It
// returns a nil invocation for a mistake that leaves nowhere to report it
// (no plan, a bad log setting, an output or webhook that cannot be used);
// for any later mistake it returns the invocation read so far with the
// error, so runAction can write the not-run report. schedule refuses to
// start on either.
func readInvocation(c *cli.Context, dryRun bool) (*invocation, error) {
	path, err := planArg(c)
	if err != nil {
		return nil, err
	}
	inv := &invocation{planPath: path, dryRun: dryRun, stdout: c.App.Writer, stderr: c.App.ErrWriter, terminal: isTerminal(c.App.Writer)}
	inv.quiet = boolFlag(c, "quiet")
	if inv.log, inv.logGate, err = newLogger(stringFlag(c, "log-format"), stringFlag(c, "log-level"), c.App.ErrWriter, inv.quiet); err != nil {
		return nil, err
	}
	inv.outputs = outputs{reports: c.StringSlice("report"), failedPlan: stringFlag(c, "failed-plan"), metrics: stringFlag(c, "metrics-file")}
	if err := inv.outputs.checkFormats(); err != nil {
		return nil, err
	}
	inv.webhook = stringFlag(c, "notify-webhook")
	switch stringFlag(c, "notify") {
	case "", "failure":
	case "always":
		inv.notifyAlways = true
	default:
		return nil, usageError{msg: fmt.Sprintf("--notify: unknown mode %q", stringFlag(c, "notify")), hint: "use failure or always"}
	}
	if inv.webhook != "" {
		if err := report.CheckWebhookURL(inv.webhook); err != nil {
			return nil, usageError{msg: "--notify-webhook: " + err.Error()}
		}
	}
	inv.planOpts = plan.Options{AllowPlainPasswords: c.Bool("allow-plain-passwords"), AllowPastJobTime: c.Bool("allow-past-job-time")}
	inv.simulate = c.Bool("simulate")
	inv.state = c.String("state")
	if err := inv.readSettings(c); err != nil {
		return inv, err
	}
	return inv, nil
}

// readSettings reads the rest of the run's flags and the connection.
func (inv *invocation) readSettings(c *cli.Context) error {
	var err error
	if inv.cfg, err = runConfig(c, inv.dryRun, inv.log); err != nil {
		return err
	}
	if !inv.simulate {
		if inv.client, err = connectionConfig(c); err != nil {
			return err
		}
	}
	inv.rate = c.Float64("rate")
	if err := checkRate(inv.rate); err != nil {
		return err
	}
	inv.waitLock = c.Duration("wait-lock")
	if err := checkWaitLock(inv.waitLock); err != nil {
		return err
	}
	inv.progress = stringFlag(c, "progress")
	switch inv.progress {
	case "", "auto", "always", "never":
	default:
		return usageError{msg: fmt.Sprintf("--progress: unknown mode %q", inv.progress), hint: "use auto, always or never"}
	}
	if inv.jitter, err = jitterOf(c, isTerminal(c.App.ErrWriter)); err != nil {
		return err
	}
	return nil
}

// boolFlag, stringFlag, durationFlag and intFlag read a flag that only some
// commands define (plan has no --quiet), as its zero value where absent.
func boolFlag(c *cli.Context, name string) bool {
	if !hasFlag(c, name) {
		return false
	}
	return c.Bool(name)
}

func stringFlag(c *cli.Context, name string) string {
	if !hasFlag(c, name) {
		return ""
	}
	return c.String(name)
}

func durationFlag(c *cli.Context, name string) time.Duration {
	if !hasFlag(c, name) {
		return 0
	}
	return c.Duration(name)
}

func intFlag(c *cli.Context, name string) int {
	if !hasFlag(c, name) {
		return 0
	}
	return c.Int(name)
}

// hasFlag reports whether the command being run defines the flag itself
// (for `runner PLAN.csv`, the root command's flags are the app's). Reading
// one it does not define would find the root's, set from the environment.
func hasFlag(c *cli.Context, name string) bool {
	for _, f := range c.Command.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// jitterOf reads --jitter. Taken from the environment (RUNNER_JITTER) it
// is ignored on a terminal: an operator trying the command by hand should
// not wait for a delay meant for cron.
func jitterOf(c *cli.Context, terminal bool) (time.Duration, error) {
	d := durationFlag(c, "jitter")
	if d < 0 {
		return 0, usageError{msg: fmt.Sprintf("--jitter: must not be negative, got %s", d)}
	}
	if d > 0 && terminal && !givenOnCommandLine(os.Args, "jitter") {
		return 0, nil
	}
	return d, nil
}

// givenOnCommandLine reports whether args carry --name or -name.
func givenOnCommandLine(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// planArg returns the one PLAN.csv argument.
func planArg(c *cli.Context) (string, error) {
	switch {
	case c.NArg() == 0:
		return "", usageError{msg: "no plan given", hint: "runner [flags] PLAN.csv, e.g. runner --simulate examples/plan.csv"}
	case c.NArg() > 1:
		return "", usageError{msg: fmt.Sprintf("expected one PLAN.csv, got %d arguments: %s", c.NArg(), strings.Join(c.Args().Slice(), " ")),
			hint: "flags go before the plan: runner --report out.json plan.csv"}
	}
	return c.Args().First(), nil
}

// runConfig turns flags into the runner's configuration.
func runConfig(c *cli.Context, dryRun bool, logger *slog.Logger) (runner.Config, error) {
	cfg := runner.Config{
		Concurrency:    c.Int("concurrency"),
		Force:          c.Bool("force"),
		DryRun:         dryRun,
		Window:         durationFlag(c, "window"),
		WindowMargin:   durationFlag(c, "window-margin"),
		Verify:         boolFlag(c, "verify"),
		VerifyTimeout:  durationFlag(c, "verify-timeout"),
		VerifyInterval: durationFlag(c, "verify-interval"),
		MaxRenewals:    intFlag(c, "max-renewals"),
		LegacyDeploy:   boolFlag(c, "legacy-deploy"),
		Logger:         logger,
	}
	if cfg.Concurrency < 1 {
		return cfg, usageError{msg: fmt.Sprintf("--concurrency: must be at least 1, got %d", cfg.Concurrency)}
	}
	if !dryRun && (cfg.Window <= 0 || cfg.WindowMargin < 0 || cfg.WindowMargin >= cfg.Window) {
		return cfg, usageError{msg: fmt.Sprintf("--window %s and --window-margin %s: the margin must be at least 0 and less than the window", cfg.Window, cfg.WindowMargin)}
	}
	if cfg.MaxRenewals < 0 {
		return cfg, usageError{msg: fmt.Sprintf("--max-renewals: must be 0 (no cap) or more, got %d", cfg.MaxRenewals)}
	}
	if cfg.Verify && (cfg.VerifyTimeout <= 0 || cfg.VerifyInterval <= 0) {
		return cfg, usageError{msg: "--verify-timeout and --verify-interval must be positive"}
	}
	rb, err := plan.ParseRenewBefore(c.String("renew-before"))
	if err != nil {
		return cfg, usageError{msg: fmt.Sprintf("--renew-before: %v", err), hint: "use a duration like 30d or 720h, or a share of the lifetime like 33%"}
	}
	cfg.RenewBefore = rb
	if s := stringFlag(c, "job-time"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return cfg, usageError{msg: fmt.Sprintf("--job-time: not an ISO 8601 UTC time: %q", s), hint: "e.g. --job-time 2026-11-24T02:00:00Z"}
		}
		if t.Before(time.Now()) && !c.Bool("allow-past-job-time") {
			return cfg, usageError{msg: fmt.Sprintf("--job-time %s is in the past", s), hint: "give a future time, or --allow-past-job-time to let the jobs run at once"}
		}
		cfg.JobTime = t.UTC()
	}
	switch d := c.String("drift"); d {
	case "", "warn":
		cfg.Drift = runner.DriftWarn
	case "fail":
		cfg.Drift = runner.DriftFail
	default:
		return cfg, usageError{msg: fmt.Sprintf("--drift: unknown mode %q", d), hint: "use warn or fail"}
	}
	if cfg.Shard, err = shardOf(c.String("shard"), c.Int("shard-count"), os.Getenv("JOB_COMPLETION_INDEX")); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// shardOf reads --shard I/N, or --shard-count N with the 0-based index a
// Kubernetes Indexed Job puts in JOB_COMPLETION_INDEX.
func shardOf(spec string, count int, completionIndex string) (runner.Shard, error) {
	switch {
	case spec != "" && count != 0:
		return runner.Shard{}, usageError{msg: "--shard and --shard-count both given", hint: "use --shard I/N, or --shard-count N in a Kubernetes Indexed Job"}
	case spec != "":
		i, n, ok := strings.Cut(spec, "/")
		index, err1 := strconv.Atoi(strings.TrimSpace(i))
		total, err2 := strconv.Atoi(strings.TrimSpace(n))
		s := runner.Shard{Index: index, Count: total}
		if !ok || err1 != nil || err2 != nil || s.Valid() != nil {
			return runner.Shard{}, usageError{msg: fmt.Sprintf("--shard %q: expected I/N with 1 ≤ I ≤ N, e.g. 2/4", spec)}
		}
		return s, nil
	case count != 0:
		if count < 1 {
			return runner.Shard{}, usageError{msg: fmt.Sprintf("--shard-count: must be at least 1, got %d", count)}
		}
		idx, err := strconv.Atoi(strings.TrimSpace(completionIndex))
		if completionIndex == "" || err != nil || idx < 0 || idx >= count {
			return runner.Shard{}, usageError{msg: fmt.Sprintf("--shard-count %d: JOB_COMPLETION_INDEX is %q, expected 0 to %d", count, completionIndex, count-1),
				hint: "--shard-count is for a Kubernetes Indexed Job (completionMode: Indexed), which sets JOB_COMPLETION_INDEX; elsewhere use --shard I/N"}
		}
		return runner.Shard{Index: idx + 1, Count: count}, nil
	}
	return runner.Shard{}, nil
}

// connectionConfig reads the Command connection from flags, the
// environment and secret files.
func connectionConfig(c *cli.Context) (keyfactor.Config, error) {
	cfg := keyfactor.Config{
		Hostname:     c.String("hostname"),
		Port:         c.Int("port"),
		APIPath:      c.String("api-path"),
		Username:     c.String("username"),
		Domain:       c.String("domain"),
		ClientID:     c.String("client-id"),
		TokenURL:     c.String("token-url"),
		Audience:     c.String("audience"),
		CACert:       c.String("ca-cert"),
		SkipVerify:   c.Bool("skip-verify"),
		Timeout:      time.Duration(c.Int("client-timeout")) * time.Second,
		CollectionID: c.Int("collection-id"),
		UserAgent:    "runner/" + version(),
	}
	if s := c.String("scopes"); s != "" {
		cfg.Scopes = strings.Split(s, ",")
	}
	var err error
	if cfg.Password, err = secret(c.String("password-file"), "KEYFACTOR_PASSWORD", "--password-file"); err != nil {
		return cfg, err
	}
	if cfg.ClientSecret, err = secret(c.String("client-secret-file"), "KEYFACTOR_AUTH_CLIENT_SECRET", "--client-secret-file"); err != nil {
		return cfg, err
	}
	if cfg.AccessToken, err = secret(c.String("access-token-file"), "KEYFACTOR_AUTH_ACCESS_TOKEN", "--access-token-file"); err != nil {
		return cfg, err
	}
	if cfg.Hostname == "" {
		return cfg, usageError{msg: "no Command server: KEYFACTOR_HOSTNAME (or --hostname) is not set",
			hint: "export KEYFACTOR_HOSTNAME=command.example.com, or try the simulator: runner --simulate PLAN.csv"}
	}
	if cfg.CollectionID < 0 {
		return cfg, usageError{msg: fmt.Sprintf("--collection-id: must be a positive id, got %d", cfg.CollectionID)}
	}
	return cfg, nil
}

// secret reads a secret from a file flag, else from the environment.
func secret(file, env, flag string) (string, error) {
	if file == "" {
		return os.Getenv(env), nil
	}
	v, err := plan.ReadSecretFile(file)
	if err != nil {
		return "", usageError{msg: fmt.Sprintf("%s: %v", flag, err), hint: fmt.Sprintf("give a file runner can read that holds only the secret, or set %s instead", env)}
	}
	return v, nil
}

// connect builds the client for cfg (no request is sent) with the run's
// logger, connection pool and rate limit.
func (inv *invocation) connect(cfg keyfactor.Config) (*keyfactor.Client, error) {
	cfg.Logger = inv.log
	cfg.MaxConnsPerHost = inv.cfg.Concurrency * 2
	cfg.Limiter = requestLimiter(inv.rate)
	client, err := keyfactor.New(cfg)
	if err != nil {
		return nil, usageError{msg: err.Error(), hint: "set the connection with KEYFACTOR_HOSTNAME and credentials (see runner --help), or try --simulate"}
	}
	return client, nil
}

// requestLimiter is the limit --rate puts on every request of a run,
// retries included; nil for 0 (unlimited). A burst of one: a burst of R let
// a run start at twice the rate asked for, and --rate is a promise to
// Command's operators.
func requestLimiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSecond), 1)
}

// runOnce is one run of the plan: it reads the plan, connects, takes the
// state lock, runs, and writes every output. Whatever stops it once the
// outputs passed their checks, each --report gets a report saying what
// happened; an output that would destroy a file writes nothing at all.
func (inv *invocation) runOnce(ctx context.Context, start time.Time) (*report.Report, error) {
	outs := inv.outputs.at(start)
	var client *keyfactor.Client
	var clientErr error
	statePath := inv.state
	if !inv.simulate && inv.configErr == nil {
		client, clientErr = inv.connect(inv.client)
		if clientErr == nil && statePath == "" {
			var err error
			if statePath, err = journal.DefaultPath(client.BaseURL()); err != nil {
				clientErr = usageError{msg: fmt.Sprintf("find the state directory: %v", err), hint: "set RUNNER_STATE_DIR or --state"}
			}
		}
	}
	// Outputs are checked before anything is written: a report must never
	// replace the plan, the state or another output.
	if err := outs.check(inv.planPath, statePath); err != nil {
		return nil, err
	}
	notRun := func(p *plan.Plan, reason string, err error) (*report.Report, error) {
		rep := notRunReport(inv.planPath, p, inv.dryRun, start, reason, exitCode(err))
		inv.finish(ctx, outs, rep)
		return rep, err
	}
	opts := inv.planOpts
	opts.Now = func() time.Time { return start }
	p, err := plan.Load(inv.planPath, opts)
	if inv.configErr != nil {
		// Said before a plan error, as when it stopped runner before the
		// plan was read; the rows that parsed are still listed.
		return notRun(p, "configuration error: "+inv.configErr.Error(), inv.configErr)
	}
	if err != nil {
		return notRun(p, "plan error: "+errorText(err), err)
	}
	if clientErr != nil {
		return notRun(p, "configuration error: "+clientErr.Error(), clientErr)
	}
	if inv.simulate {
		sim, err := startSimulator(p, inv.log)
		if err != nil {
			return notRun(p, "simulator error: "+err.Error(), err)
		}
		defer sim.Close()
		if client, err = inv.connect(sim.clientConfig); err != nil {
			return notRun(p, "configuration error: "+err.Error(), err)
		}
		if statePath == "" {
			// A simulated world is new each time; so is its journal.
			dir, err := os.MkdirTemp("", "runner-simulate-")
			if err != nil {
				return notRun(p, "state error", fmt.Errorf("create a state directory for --simulate: %w", err))
			}
			defer os.RemoveAll(dir)
			statePath = filepath.Join(dir, "state.db")
		}
		inv.log.Info("running against the built-in Command simulator", "url", sim.url)
	}
	inv.cfg.Identity = client.Identity()

	j, err := journal.Open(statePath, journal.Options{Command: client.BaseURL(), WaitLock: inv.waitLock, Done: ctx.Done()})
	if err != nil {
		reason := "state error: " + err.Error()
		if errors.Is(err, journal.ErrLocked) {
			reason = "another run holds the lock on the state: " + err.Error()
		}
		return notRun(p, reason, err)
	}
	defer j.Close()
	if from := j.UpgradedFrom(); from != "" {
		// Open rewrote the file in its new format: whoever keeps a copy of
		// it, or runs an older runner against it, needs to know.
		inv.log.Warn("upgraded the state file in place to this version's format; older runner versions cannot read it", "file", j.Path(), "from", from, "command", j.Command())
	}
	if inv.state == "" && !inv.simulate {
		inv.migrateLegacy(j, inv.planPath)
	}

	cfg := inv.cfg
	bar := inv.startProgress(len(p.Rows))
	cfg.OnRow = func(row report.Row) {
		inv.logGate.noticeRow(row)
		bar.add(row)
	}
	r := &runner.Runner{Client: client, Journal: j, Config: cfg}
	rep, runErr := r.Run(ctx, p)
	bar.finish()
	if runErr == nil && rep.Counts()[report.Failed] > 0 {
		runErr = errRowsFailed
	}
	if runErr != nil && !errors.Is(runErr, errRowsFailed) {
		inv.logGate.open() // a preflight failure or an interrupt is news
	}
	rep.Run.ExitCode = exitCode(runErr)
	rep.Run.CommandHost = client.BaseURL()
	stampVersion(rep)
	if err := inv.finish(ctx, outs, rep); err != nil && runErr == nil {
		runErr = err
	}
	return rep, runErr
}

// errOutputsNotWritten ends a run that happened but could not write a
// report, the failed plan or the metrics file (finish printed which and
// why). It exits 1, something to look at, like failed rows: exit 2 would
// say that nothing was contacted, though certificates may have been renewed.
var errOutputsNotWritten = fmt.Errorf("some outputs could not be written: %w", errRowsFailed)

// notRunReport says that the run (or, dryRun, the `runner plan`) did not
// happen and why; the rows of the plan that could be read are listed at
// stage plan.
func notRunReport(path string, p *plan.Plan, dryRun bool, start time.Time, reason string, code int) *report.Report {
	rep := &report.Report{Run: report.Run{Start: start.UTC(), End: time.Now().UTC(), PlanFile: path, Command: map[bool]string{false: "run", true: "plan"}[dryRun],
		DryRun: dryRun, NotRun: reason, ExitCode: code}}
	if p != nil {
		rep.Run.Columns = p.Columns
		for _, row := range p.Rows {
			rep.Rows = append(rep.Rows, report.Row{Line: row.Line, CertificateID: row.CertificateID, Thumbprint: row.Thumbprint,
				StoreID: row.StoreID, Alias: row.Alias, Status: report.Failed, Stage: report.StagePlan, Detail: "not run: " + firstLine(reason), PlanValues: row.Values})
		}
	}
	stampVersion(rep)
	return rep
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// finish writes the reports, the failed plan, the metrics file and the
// summary, and sends the notification. Each failure is printed, and
// errOutputsNotWritten returned.
func (inv *invocation) finish(ctx context.Context, outs outputs, rep *report.Report) error {
	var failed bool
	fail := func(err error) {
		failed = true
		printError(inv.stderr, err)
	}
	for _, p := range outs.reports {
		if err := report.WriteFile(p, rep); err != nil {
			fail(err)
		}
	}
	if outs.failedPlan != "" && !inv.dryRun && rep.Run.NotRun == "" {
		if err := report.WriteFailedPlan(outs.failedPlan, rep); err != nil {
			fail(err)
		}
	}
	if outs.metrics != "" {
		if err := report.WriteMetrics(outs.metrics, rep); err != nil {
			fail(err)
		}
	}
	if rep.Run.NotRun == "" {
		if err := report.WriteSummary(inv.stdout, rep, report.SummaryOptions{Terminal: inv.terminal, Quiet: inv.quiet}); err != nil {
			fail(fmt.Errorf("write the summary: %w", err))
		}
	}
	if inv.webhook != "" && !inv.dryRun {
		when := report.NotifyOnFailure
		if inv.notifyAlways {
			when = report.NotifyAlways
		}
		if err := report.Notify(ctx, inv.webhook, rep, report.NotifyOptions{When: when}); err != nil {
			inv.log.Warn("could not post the notification", "err", err)
		}
	}
	if failed {
		switch {
		case rep.Run.NotRun != "":
		case inv.dryRun:
			fmt.Fprintln(inv.stderr, "runner: hint: the dry run itself went ahead: fix the file or directory named above and run it again")
		default:
			// Said once, after the files: what the operator must know
			// before deleting anything or running again.
			fmt.Fprintln(inv.stderr, "runner: hint: the run itself went ahead and its journal records what it did (a rerun renews nothing twice): fix the file or directory named above; the run's outcome is in the other outputs and the log")
		}
		return errOutputsNotWritten
	}
	return nil
}

// migrateLegacy imports the state file the old layout kept beside the plan
// (PLAN.csv.state) into the shared journal, once.
func (inv *invocation) migrateLegacy(j *journal.Journal, planPath string) {
	legacy := planPath + ".state"
	if _, err := os.Stat(legacy); err != nil {
		return
	}
	n, err := journal.MigrateLegacy(j, legacy)
	if err != nil {
		inv.logGate.open()
		inv.log.Error("could not import the old per-plan state file; its renewals are not known to this run", "file", legacy, "journal", j.Path(), "err", err)
		return
	}
	inv.logGate.open()
	inv.log.Info("imported the old per-plan state file into the shared journal", "file", legacy, "journal", j.Path(), "lineages", n)
}

// validateAction is `runner validate PLAN.csv`: every error at once.
func validateAction(c *cli.Context) error {
	path, err := planArg(c)
	if err != nil {
		return err
	}
	// Validate checks exactly what Load checks, without keeping the rows:
	// a 200,000-row plan is validated in a fraction of a second.
	n, err := plan.Validate(path, plan.Options{AllowPlainPasswords: c.Bool("allow-plain-passwords"), AllowPastJobTime: c.Bool("allow-past-job-time"), Now: time.Now})
	var errs *plan.ErrorList
	if errors.As(err, &errs) && c.Bool("all") {
		for _, line := range strings.Split(errs.Summary(0), "\n") {
			fmt.Fprintf(c.App.ErrWriter, "runner: error: %s\n", line)
		}
		return printed{err}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s: ok: %d rows, %d certificates, %d stores\n", path, n.Rows, n.Certificates, n.Stores)
	return nil
}
