package main

import (
	"time"

	"github.com/urfave/cli/v2"
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
		&cli.BoolFlag{Name: "skip-verify", Category: cat, EnvVars: []string{"KEYFACTOR_SKIP_VERIFY"}, Usage: "do not verify Command's TLS certificate (unsafe; logs a warning)"},
		&cli.IntFlag{Name: "client-timeout", Category: cat, EnvVars: []string{"KEYFACTOR_CLIENT_TIMEOUT"}, Value: 60, Usage: "seconds before one API request times out"},
		&cli.BoolFlag{Name: "legacy-deploy", Category: cat, EnvVars: []string{"RUNNER_LEGACY_DEPLOY"}, Usage: "send the pre-9.4 StoreIds/StoreTypes deploy shape"},
	}
}

// runFlags are the flags of run and plan.
func runFlags() []cli.Flag {
	const cat = "Run"
	return []cli.Flag{
		&cli.BoolFlag{Name: "simulate", Category: cat, EnvVars: []string{"RUNNER_SIMULATE"}, Usage: "run against the built-in Command simulator, seeded from the plan, on loopback"},
		&cli.IntFlag{Name: "concurrency", Category: cat, EnvVars: []string{"RUNNER_CONCURRENCY"}, Value: 8, Usage: "renew→deploy workers"},
		&cli.Float64Flag{Name: "rate", Category: cat, EnvVars: []string{"RUNNER_RATE"}, Usage: "API requests per second, shared by all workers (0 = unlimited)"},
		&cli.StringFlag{Name: "renew-before", Category: cat, EnvVars: []string{"RUNNER_RENEW_BEFORE"}, Value: "30d", Usage: "renew when less than this is left: 30d, 720h or 33% of the lifetime"},
		&cli.BoolFlag{Name: "force", Category: cat, EnvVars: []string{"RUNNER_FORCE"}, Usage: "renew every certificate, due or not"},
		&cli.StringSliceFlag{Name: "report", Category: cat, EnvVars: []string{"RUNNER_REPORT"}, Usage: "write a report; format by extension: .csv .json .md (repeatable)"},
		&cli.StringFlag{Name: "failed-plan", Category: cat, EnvVars: []string{"RUNNER_FAILED_PLAN"}, Usage: "write a plan of only the failed rows, to rerun"},
		&cli.StringFlag{Name: "state", Category: cat, EnvVars: []string{"RUNNER_STATE"}, Usage: "journal file (default: PLAN.csv.state beside the plan)"},
		&cli.DurationFlag{Name: "window", Category: cat, EnvVars: []string{"RUNNER_WINDOW"}, Value: 5 * time.Minute, Usage: "Command's staging window"},
		&cli.DurationFlag{Name: "window-margin", Category: cat, EnvVars: []string{"RUNNER_WINDOW_MARGIN"}, Value: 30 * time.Second, Usage: "stop trying to deploy this long before the window ends"},
		&cli.BoolFlag{Name: "verify", Category: cat, EnvVars: []string{"RUNNER_VERIFY"}, Usage: "wait until inventory shows each new certificate in its stores"},
		&cli.DurationFlag{Name: "verify-timeout", Category: cat, EnvVars: []string{"RUNNER_VERIFY_TIMEOUT"}, Value: 10 * time.Minute, Usage: "how long --verify waits"},
		&cli.DurationFlag{Name: "verify-interval", Category: cat, EnvVars: []string{"RUNNER_VERIFY_INTERVAL"}, Value: 5 * time.Second, Usage: "how often --verify reads the certificates"},
		&cli.StringFlag{Name: "job-time", Category: cat, EnvVars: []string{"RUNNER_JOB_TIME"}, Usage: "run management jobs at this UTC time (2026-11-24T02:00:00Z) unless the row says"},
		&cli.IntFlag{Name: "max-renewals", Category: cat, EnvVars: []string{"RUNNER_MAX_RENEWALS"}, Usage: "renew at most N certificates in this run (0 = no cap)"},
		&cli.BoolFlag{Name: "allow-plain-passwords", Category: cat, EnvVars: []string{"RUNNER_ALLOW_PLAIN_PASSWORDS"}, Usage: "accept literal entry passwords in the plan"},
		&cli.StringFlag{Name: "log-format", Category: cat, EnvVars: []string{"RUNNER_LOG_FORMAT"}, Usage: "text or json (default: text on a terminal, json otherwise)"},
		&cli.StringFlag{Name: "log-level", Category: cat, EnvVars: []string{"RUNNER_LOG_LEVEL"}, Value: "info", Usage: "debug, info, warn or error"},
	}
}
