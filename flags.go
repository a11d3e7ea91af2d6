package main

import (
	"fmt"
	"github.com/urfave/cli/v2"
	"time"

	"runner/runner"
)

// connectionFlags follow the environment variables of Keyfactor's own
// tools (kfutil). Secrets have no value flag, so they never show in the
// process list: they come from the environment or from a file.
func connectionFlags() []cli.Flag {
	const cat = "Command connection"
	return []cli.Flag{
		&cli.StringFlag{Name: "hostname", Category: cat, EnvVars: []string{"KEYFACTOR_HOSTNAME"}, Usage: "Command host, host:port or https:// URL (http:// only for loopback)"},
		&cli.IntFlag{Name: "port", Category: cat, EnvVars: []string{"KEYFACTOR_PORT"}, Usage: "port, when --hostname has none (0 means 443)"},
		&cli.StringFlag{Name: "api-path", Category: cat, EnvVars: []string{"KEYFACTOR_API_PATH"}, Value: "KeyfactorAPI", Usage: "API base path (KeyfactorAPI, or Keyfactor/API on newer servers)"},
		&cli.StringFlag{Name: "username", Category: cat, EnvVars: []string{"KEYFACTOR_USERNAME"}, Usage: "Basic auth user (user, DOMAIN\\user or user@domain)"},
		&cli.StringFlag{Name: "domain", Category: cat, EnvVars: []string{"KEYFACTOR_DOMAIN"}, Usage: "Active Directory domain for Basic auth"},
		&cli.StringFlag{Name: "password-file", Category: cat, Usage: "file holding the Basic auth password (or set KEYFACTOR_PASSWORD)"},
		&cli.StringFlag{Name: "client-id", Category: cat, EnvVars: []string{"KEYFACTOR_AUTH_CLIENT_ID"}, Usage: "OAuth2 client id (client credentials)"},
		&cli.StringFlag{Name: "client-secret-file", Category: cat, Usage: "file holding the OAuth2 client secret (or set KEYFACTOR_AUTH_CLIENT_SECRET)"},
		&cli.StringFlag{Name: "token-url", Category: cat, EnvVars: []string{"KEYFACTOR_AUTH_TOKEN_URL"}, Usage: "OAuth2 token endpoint"},
		&cli.StringFlag{Name: "scopes", Category: cat, EnvVars: []string{"KEYFACTOR_AUTH_SCOPES"}, Usage: "OAuth2 scopes, comma-separated"},
		&cli.StringFlag{Name: "audience", Category: cat, EnvVars: []string{"KEYFACTOR_AUTH_AUDIENCE"}, Usage: "OAuth2 audience"},
		&cli.StringFlag{Name: "access-token-file", Category: cat, Usage: "file holding a ready bearer token (or set KEYFACTOR_AUTH_ACCESS_TOKEN)"},
		&cli.StringFlag{Name: "ca-cert", Category: cat, EnvVars: []string{"KEYFACTOR_CA_CERT"}, Usage: "CA certificate to trust for Command: a path or PEM text"},
		&cli.BoolFlag{Name: "skip-verify", Category: cat, EnvVars: []string{"KEYFACTOR_SKIP_VERIFY"}, Usage: "do not verify Command's TLS certificate (unsafe; warns on every run)"},
		&cli.IntFlag{Name: "client-timeout", Category: cat, EnvVars: []string{"KEYFACTOR_CLIENT_TIMEOUT"}, Value: 60, Usage: "seconds before one API request times out"},
		&cli.IntFlag{Name: "collection-id", Category: cat, EnvVars: []string{"RUNNER_COLLECTION_ID"}, Usage: "certificate collection to read and renew through (for accounts with collection-level permissions only)"},
	}
}

// Flags of run, plan and schedule, each defined once and picked by name.
const (
	catRun     = "Run"
	catOutput  = "Output"
	catVerify  = "Verification"
	catFleet   = "Nightly and fleet"
	catLogging = "Logging"
)

// newRunFlags builds the flags of run, plan and schedule afresh (urfave/cli
// keeps state in flag values, so each command gets its own), by name.
func newRunFlags() map[string]cli.Flag {
	return map[string]cli.Flag{
		"simulate":              &cli.BoolFlag{Name: "simulate", Category: catRun, EnvVars: []string{"RUNNER_SIMULATE"}, Usage: "run against the built-in Command simulator, seeded from the plan, on loopback"},
		"concurrency":           &cli.IntFlag{Name: "concurrency", Category: catRun, EnvVars: []string{"RUNNER_CONCURRENCY"}, Value: runner.DefaultConcurrency, Usage: "renew→deploy pairs under way at once (certificate reads and verification get as many requests in flight)"},
		"rate":                  &cli.Float64Flag{Name: "rate", Category: catRun, EnvVars: []string{"RUNNER_RATE"}, Usage: "API requests per second, shared by all requests (0 = unlimited)"},
		"renew-before":          &cli.StringFlag{Name: "renew-before", Category: catRun, EnvVars: []string{"RUNNER_RENEW_BEFORE"}, Value: "30d", Usage: "renew when less than this is left: 30d, 720h or 33% of the lifetime"},
		"force":                 &cli.BoolFlag{Name: "force", Category: catRun, EnvVars: []string{"RUNNER_FORCE"}, Usage: "renew every certificate that has no renewal under way, due or not"},
		"state":                 &cli.StringFlag{Name: "state", Category: catRun, EnvVars: []string{"RUNNER_STATE"}, Usage: "journal file (default: one file per Command in $RUNNER_STATE_DIR, else ~/.local/state/runner/, /var/lib/runner/ as root)"},
		"wait-lock":             &cli.DurationFlag{Name: "wait-lock", Category: catRun, EnvVars: []string{"RUNNER_WAIT_LOCK"}, Usage: "wait this long for another run holding the state (default: give up at once, exit 4)"},
		"window":                &cli.DurationFlag{Name: "window", Category: catRun, EnvVars: []string{"RUNNER_WINDOW"}, Value: runner.DefaultWindow, Usage: "Command's staging window"},
		"window-margin":         &cli.DurationFlag{Name: "window-margin", Category: catRun, EnvVars: []string{"RUNNER_WINDOW_MARGIN"}, Value: runner.DefaultWindowMargin, Usage: "stop trying to deploy this long before the window ends"},
		"job-time":              &cli.StringFlag{Name: "job-time", Category: catRun, EnvVars: []string{"RUNNER_JOB_TIME"}, Usage: "run management jobs at this UTC time (2026-11-24T02:00:00Z) unless the row says"},
		"allow-past-job-time":   &cli.BoolFlag{Name: "allow-past-job-time", Category: catRun, EnvVars: []string{"RUNNER_ALLOW_PAST_JOB_TIME"}, Usage: "accept job_time values in the past (the jobs then run at once)"},
		"max-renewals":          &cli.IntFlag{Name: "max-renewals", Category: catRun, EnvVars: []string{"RUNNER_MAX_RENEWALS"}, Usage: "renew at most N certificates in this run, the oldest due first (0 = no cap)"},
		"legacy-deploy":         &cli.BoolFlag{Name: "legacy-deploy", Category: catRun, EnvVars: []string{"RUNNER_LEGACY_DEPLOY"}, Usage: "send the pre-9.4 StoreIds/StoreTypes deploy shape"},
		"allow-plain-passwords": &cli.BoolFlag{Name: "allow-plain-passwords", Category: catRun, EnvVars: []string{"RUNNER_ALLOW_PLAIN_PASSWORDS"}, Usage: "accept literal entry passwords in the plan"},
		"drift":                 &cli.StringFlag{Name: "drift", Category: catRun, EnvVars: []string{"RUNNER_DRIFT"}, Value: "warn", Usage: "stores that differ from the plan: warn, or fail the rows"},
		"report":                &cli.StringSliceFlag{Name: "report", Category: catOutput, EnvVars: []string{"RUNNER_REPORT"}, Usage: "write a report; format by extension: .json .csv .md .html .xml (JUnit); {time} becomes the start time (repeatable)"},
		"failed-plan":           &cli.StringFlag{Name: "failed-plan", Category: catOutput, EnvVars: []string{"RUNNER_FAILED_PLAN"}, Usage: "write a plan (.csv) of only the failed rows, to rerun"},
		"metrics-file":          &cli.StringFlag{Name: "metrics-file", Category: catOutput, EnvVars: []string{"RUNNER_METRICS_FILE"}, Usage: "write a Prometheus textfile (.prom) for node_exporter's textfile collector"},
		"quiet":                 &cli.BoolFlag{Name: "quiet", Category: catOutput, EnvVars: []string{"RUNNER_QUIET"}, Usage: "print nothing but failures"},
		"progress":              &cli.StringFlag{Name: "progress", Category: catOutput, EnvVars: []string{"RUNNER_PROGRESS"}, Value: "auto", Usage: "progress bar on the terminal: auto, always or never"},
		"notify-webhook":        &cli.StringFlag{Name: "notify-webhook", Category: catOutput, EnvVars: []string{"RUNNER_NOTIFY_WEBHOOK"}, Usage: "post a JSON summary (Slack/Teams-compatible text) to this URL"},
		"notify":                &cli.StringFlag{Name: "notify", Category: catOutput, EnvVars: []string{"RUNNER_NOTIFY"}, Value: "failure", Usage: "when to post to --notify-webhook: failure or always"},
		"verify":                &cli.BoolFlag{Name: "verify", Category: catVerify, EnvVars: []string{"RUNNER_VERIFY"}, Usage: "wait until inventory shows each new certificate in its stores"},
		"verify-timeout":        &cli.DurationFlag{Name: "verify-timeout", Category: catVerify, EnvVars: []string{"RUNNER_VERIFY_TIMEOUT"}, Value: runner.DefaultVerifyTimeout, Usage: "how long --verify waits after each deploy (inventory can take minutes)"},
		"verify-interval":       &cli.DurationFlag{Name: "verify-interval", Category: catVerify, EnvVars: []string{"RUNNER_VERIFY_INTERVAL"}, Value: runner.DefaultVerifyInterval, Usage: "first wait between reads of a deployed certificate (it grows to 30s)"},
		"shard":                 &cli.StringFlag{Name: "shard", Category: catFleet, EnvVars: []string{"RUNNER_SHARD"}, Usage: "take shard I/N of the plan's certificates (e.g. 2/4): N machines split a plan with no overlap"},
		"shard-count":           &cli.IntFlag{Name: "shard-count", Category: catFleet, EnvVars: []string{"RUNNER_SHARD_COUNT"}, Usage: "N shards, this one's index from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job)"},
		"jitter":                &cli.DurationFlag{Name: "jitter", Category: catFleet, EnvVars: []string{"RUNNER_JITTER"}, Usage: "delay the start by a random time up to this (from the environment it is ignored on a terminal)"},
		"log-format":            &cli.StringFlag{Name: "log-format", Category: catLogging, EnvVars: []string{"RUNNER_LOG_FORMAT"}, Usage: "text or json (default: text on a terminal, json otherwise)"},
		"log-level":             &cli.StringFlag{Name: "log-level", Category: catLogging, EnvVars: []string{"RUNNER_LOG_LEVEL"}, Value: "info", Usage: "debug, info, warn or error"},
	}
}

// runFlags are the flags of run (and of schedule, with its own).
func runFlags() []cli.Flag {
	return pickFlags("simulate", "concurrency", "rate", "renew-before", "force", "state", "wait-lock", "window", "window-margin", "job-time", "allow-past-job-time", "max-renewals", "legacy-deploy", "allow-plain-passwords", "drift", "report", "failed-plan", "metrics-file", "quiet", "progress", "notify-webhook", "notify", "verify", "verify-timeout", "verify-interval", "shard", "shard-count", "jitter", "log-format", "log-level")
}

// planFlags are the flags that mean something in a dry run: nothing is
// renewed, deployed, verified or scheduled, so no window, verification,
// failed plan, metrics or notification.
func planFlags() []cli.Flag {
	return pickFlags("simulate", "concurrency", "rate", "renew-before", "force", "state", "wait-lock", "allow-past-job-time", "allow-plain-passwords", "drift", "report", "shard", "shard-count", "log-format", "log-level")
}

func pickFlags(names ...string) []cli.Flag {
	all := newRunFlags()
	out := make([]cli.Flag, 0, len(names))
	for _, n := range names {
		f, ok := all[n]
		if !ok {
			panic("no flag " + n)
		}
		out = append(out, f)
	}
	return out
}

func validateFlags() []cli.Flag {
	return append(pickFlags("allow-plain-passwords", "allow-past-job-time"),
		&cli.BoolFlag{Name: "all", Usage: "list every error, not only the first 50"})
}

// checkRate is the one rule for --rate, in every command that has it.
func checkRate(rate float64) error {
	if rate < 0 {
		return usageError{msg: fmt.Sprintf("--rate: must be 0 (unlimited) or more, got %g", rate)}
	}
	return nil
}

// checkWaitLock is the one rule for --wait-lock.
func checkWaitLock(d time.Duration) error {
	if d < 0 {
		return usageError{msg: fmt.Sprintf("--wait-lock: must not be negative, got %s", d), hint: "e.g. --wait-lock 10m, or 0 to refuse at once when another run holds the lock"}
	}
	return nil
}
