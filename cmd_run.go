package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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

// runAction is `runner PLAN.csv`, `runner run` and (dryRun) `runner plan`.
func runAction(c *cli.Context, dryRun bool) error {
	path, err := planArg(c)
	if err != nil {
		return err
	}
	logger, err := newLogger(c.String("log-format"), c.String("log-level"), c.App.ErrWriter)
	if err != nil {
		return err
	}
	cfg, err := runConfig(c, dryRun, logger)
	if err != nil {
		return err
	}
	reports := c.StringSlice("report")
	if err := checkReportPaths(reports, c.String("failed-plan")); err != nil {
		return err
	}
	p, err := plan.Load(path, plan.Options{AllowPlainPasswords: c.Bool("allow-plain-passwords")})
	if err != nil {
		return err
	}

	var clientCfg keyfactor.Config
	statePath := c.String("state")
	if c.Bool("simulate") {
		sim, err := startSimulator(p, logger)
		if err != nil {
			return err
		}
		defer sim.Close()
		clientCfg = sim.clientConfig
		if statePath == "" {
			// A simulated world is new each time; so is its journal.
			dir, err := os.MkdirTemp("", "runner-simulate-")
			if err != nil {
				return fmt.Errorf("create a state directory for --simulate: %w", err)
			}
			defer os.RemoveAll(dir)
			statePath = filepath.Join(dir, "state.db")
		}
		logger.Info("running against the built-in Command simulator", "url", sim.url)
	} else {
		if clientCfg, err = connectionConfig(c); err != nil {
			return err
		}
	}
	clientCfg.Logger = logger
	clientCfg.MaxConnsPerHost = cfg.Concurrency * 2
	if r := c.Float64("rate"); r > 0 {
		clientCfg.Limiter = rate.NewLimiter(rate.Limit(r), max(1, int(r)))
	}
	client, err := keyfactor.New(clientCfg)
	if err != nil {
		return usageError{msg: err.Error(), hint: "set the connection with KEYFACTOR_HOSTNAME and credentials (see runner --help), or try --simulate"}
	}
	cfg.Identity = client.Identity()

	if statePath == "" {
		statePath = path + ".state"
	}
	j, err := journal.Open(statePath)
	if err != nil {
		return err
	}
	defer j.Close()

	r := &runner.Runner{Client: client, Journal: j, Config: cfg}
	rep, runErr := r.Run(c.Context, p)
	if writeErr := writeReports(c.App.Writer, rep, reports, c.String("failed-plan")); writeErr != nil {
		printError(c.App.ErrWriter, writeErr)
		if runErr == nil {
			runErr = errRowsFailed
		}
	}
	if runErr != nil {
		return runErr
	}
	if rep.Counts()[report.Failed] > 0 {
		return errRowsFailed
	}
	return nil
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
		Window:         c.Duration("window"),
		WindowMargin:   c.Duration("window-margin"),
		Verify:         c.Bool("verify"),
		VerifyTimeout:  c.Duration("verify-timeout"),
		VerifyInterval: c.Duration("verify-interval"),
		MaxRenewals:    c.Int("max-renewals"),
		LegacyDeploy:   c.Bool("legacy-deploy"),
		Logger:         logger,
	}
	if cfg.Concurrency < 1 {
		return cfg, usageError{msg: fmt.Sprintf("--concurrency: must be at least 1, got %d", cfg.Concurrency)}
	}
	if c.Float64("rate") < 0 {
		return cfg, usageError{msg: fmt.Sprintf("--rate: must be 0 (unlimited) or more, got %g", c.Float64("rate"))}
	}
	if cfg.Window <= 0 || cfg.WindowMargin < 0 || cfg.WindowMargin >= cfg.Window {
		return cfg, usageError{msg: fmt.Sprintf("--window %s and --window-margin %s: the margin must be at least 0 and less than the window", cfg.Window, cfg.WindowMargin)}
	}
	if cfg.MaxRenewals < 0 {
		return cfg, usageError{msg: fmt.Sprintf("--max-renewals: must be 0 (no cap) or more, got %d", cfg.MaxRenewals)}
	}
	rb, err := plan.ParseRenewBefore(c.String("renew-before"))
	if err != nil {
		return cfg, usageError{msg: fmt.Sprintf("--renew-before: %v", err), hint: "use a duration like 30d or 720h, or a share of the lifetime like 33%"}
	}
	cfg.RenewBefore = rb
	if s := c.String("job-time"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return cfg, usageError{msg: fmt.Sprintf("--job-time: not an ISO 8601 UTC time: %q", s), hint: "e.g. --job-time 2026-11-24T02:00:00Z"}
		}
		cfg.JobTime = t.UTC()
	}
	return cfg, nil
}

// connectionConfig reads the Command connection from flags, the
// environment and secret files.
func connectionConfig(c *cli.Context) (keyfactor.Config, error) {
	cfg := keyfactor.Config{
		Hostname:   c.String("hostname"),
		Port:       c.Int("port"),
		APIPath:    c.String("api-path"),
		Username:   c.String("username"),
		Domain:     c.String("domain"),
		ClientID:   c.String("client-id"),
		TokenURL:   c.String("token-url"),
		Audience:   c.String("audience"),
		CACert:     c.String("ca-cert"),
		SkipVerify: c.Bool("skip-verify"),
		Timeout:    time.Duration(c.Int("client-timeout")) * time.Second,
		UserAgent:  "runner",
	}
	if s := c.String("scopes"); s != "" {
		for _, scope := range strings.Split(s, ",") {
			if scope = strings.TrimSpace(scope); scope != "" {
				cfg.Scopes = append(cfg.Scopes, scope)
			}
		}
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
	return cfg, nil
}

// secret reads a secret from a file flag, else from the environment.
func secret(file, env, flag string) (string, error) {
	if file == "" {
		return os.Getenv(env), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", usageError{msg: fmt.Sprintf("%s: %v", flag, err)}
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// checkReportPaths refuses report names whose format is unknown before
// anything is renewed.
func checkReportPaths(reports []string, failedPlan string) error {
	for _, p := range reports {
		if err := report.CheckPath(p); err != nil {
			return usageError{msg: "--" + err.Error(), hint: "use a name ending in .json, .csv or .md"}
		}
		if err := dirExists(p); err != nil {
			return usageError{msg: fmt.Sprintf("--report %s: %v", p, err)}
		}
	}
	if failedPlan != "" {
		if err := dirExists(failedPlan); err != nil {
			return usageError{msg: fmt.Sprintf("--failed-plan %s: %v", failedPlan, err)}
		}
	}
	return nil
}

func dirExists(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory %s does not exist", dir)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// writeReports writes every report file, the failed plan and the summary.
func writeReports(stdout io.Writer, rep *report.Report, reports []string, failedPlan string) error {
	var errs []error
	for _, p := range reports {
		if err := report.WriteFile(p, rep); err != nil {
			errs = append(errs, fmt.Errorf("write report %s: %w", p, err))
		}
	}
	if failedPlan != "" {
		if err := report.WriteFailedPlan(failedPlan, rep); err != nil {
			errs = append(errs, fmt.Errorf("write failed plan %s: %w", failedPlan, err))
		}
	}
	if err := report.WriteSummary(stdout, rep); err != nil {
		errs = append(errs, fmt.Errorf("write summary: %w", err))
	}
	return errors.Join(errs...)
}

// newLogger logs to stderr: text on a terminal, JSON otherwise (cron,
// systemd and Kubernetes collect JSON better).
func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{msg: fmt.Sprintf("--log-level: unknown level %q", level), hint: "use debug, info, warn or error"}
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{msg: fmt.Sprintf("--log-format: unknown format %q", format), hint: "use text or json"}
}

// validateAction is `runner validate PLAN.csv`: every error at once.
func validateAction(c *cli.Context) error {
	path, err := planArg(c)
	if err != nil {
		return err
	}
	p, err := plan.Load(path, plan.Options{AllowPlainPasswords: c.Bool("allow-plain-passwords")})
	if err != nil {
		return err
	}
	stores := map[string]bool{}
	for _, r := range p.Rows {
		stores[r.StoreID] = true
	}
	fmt.Fprintf(c.App.Writer, "%s: ok: %d rows, %d certificates, %d stores\n", path, len(p.Rows), len(p.Jobs), len(stores))
	return nil
}
