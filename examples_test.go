package main

// Every file in examples/ is checked here, so that none can rot: the plan
// loads; every cron spec parses (robfig/cron's standard parser, and
// runner.ParseSchedule for --cron); every runner command line — the
// crontab's, each ExecStart=, the CronJob's command and args — is parsed by
// the real command line, so an unknown or misspelt flag, a bad value or a
// flag after the plan fails; the systemd units and the Kubernetes manifest
// are parsed strictly and their wiring checked (credentials, writable
// paths, the shard count, the Secret and ConfigMap references).
// TestExampleChecksCatchMistakes shows each check catching the mistake it is
// for.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the examples name zones (Europe/Berlin); do not depend on the machine's tzdata

	"github.com/robfig/cron/v3"
	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"

	"runner/plan"
	"runner/runner"
)

// exampleCheck checks one example file, given its content; t is only for
// t.Setenv, the errors are returned so TestExampleChecksCatchMistakes can expect them.
type exampleCheck func(t *testing.T, path string, data []byte) []error

// exampleChecks names the check of every file in examples/.
var exampleChecks = map[string]exampleCheck{
	"examples/plan.csv":                        checkPlanExample,
	"examples/secrets/pem-entry-password.txt":  checkPlanSecretFile,
	"examples/crontab":                         checkCrontab,
	"examples/systemd/runner.env":              checkEnvFileExample,
	"examples/systemd/runner.service":          checkServiceUnit("run"),
	"examples/systemd/runner-schedule.service": checkServiceUnit("schedule"),
	"examples/systemd/runner.timer":            checkTimerUnit,
	"examples/kubernetes/runner.yaml":          checkKubernetes,
}

func TestExamples(t *testing.T) {
	for name, check := range exampleChecks {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range check(t, name, data) {
				t.Error(err)
			}
		})
	}
}

// TestExamplesAreAllChecked: a new example needs a check.
func TestExamplesAreAllChecked(t *testing.T) {
	found := map[string]bool{}
	err := filepath.WalkDir("examples", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			found[filepath.ToSlash(p)] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range found {
		if exampleChecks[p] == nil {
			t.Errorf("%s has no check in exampleChecks", p)
		}
	}
	for p := range exampleChecks {
		if !found[p] {
			t.Errorf("exampleChecks names %s, which is not in examples/", p)
		}
	}
}

// TestExampleChecksCatchMistakes breaks each example the way it could rot and
// expects its check to say so.
func TestExampleChecksCatchMistakes(t *testing.T) {
	tests := []struct {
		name, file, old, new, want string
	}{
		{"plan: bad store id", "examples/plan.csv", "6513270e-269e-4d37-b2a7-4de452e6b438", "6513270e", "store_id"},
		{"crontab: misspelt flag", "examples/crontab", "--jitter 30m", "--jiter 30m", "flag provided but not defined"},
		{"crontab: flag after the plan", "examples/crontab", " /etc/runner/plan.csv", " /etc/runner/plan.csv --quiet", "expected one PLAN.csv"},
		{"crontab: bad schedule", "examples/crontab", "15 2 * * *", "15 25 * * *", "schedule"},
		{"crontab: % in the command", "examples/crontab", "--jitter 30m", "--jitter 30m --renew-before 33%", "%"},
		{"crontab: bad report format", "examples/crontab", "{time}.json", "{time}.jsn", "--report"},
		{"crontab: unknown variable", "examples/crontab", "KEYFACTOR_HOSTNAME=", "KEYFACTOR_HOST=", "KEYFACTOR_HOST"},
		{"crontab: password in the file", "examples/crontab", "KEYFACTOR_USERNAME=svc-renew", "KEYFACTOR_PASSWORD=hunter2", "KEYFACTOR_PASSWORD"},
		{"crontab: no jitter", "examples/crontab", "--jitter 30m ", "", "--jitter"},
		{"env file: a secret", "examples/systemd/runner.env", "KEYFACTOR_USERNAME=svc-renew", "KEYFACTOR_PASSWORD=hunter2", "KEYFACTOR_PASSWORD"},
		{"env file: a backslash", "examples/systemd/runner.env", "KEYFACTOR_USERNAME=svc-renew", `KEYFACTOR_USERNAME=CORP\svc`, "KEYFACTOR_USERNAME"},
		{"service: unknown section", "examples/systemd/runner.service", "[Service]", "[Servce]", "Servce"},
		{"service: misspelt directive", "examples/systemd/runner.service", "ProtectSystem=strict", "ProtectSystems=strict", "ProtectSystems"},
		{"service: no state directory", "examples/systemd/runner.service", "StateDirectory=runner", "StateDirectory=runnr", "StateDirectory"},
		{"service: state elsewhere", "examples/systemd/runner.service", "RUNNER_STATE_DIR=%S/runner", "RUNNER_STATE_DIR=/srv/runner", "RUNNER_STATE_DIR"},
		{"service: unknown specifier", "examples/systemd/runner.service", "RUNNER_STATE_DIR=%S/runner", "RUNNER_STATE_DIR=%Q/runner", "%Q"},
		{"service: output not writable", "examples/systemd/runner.service", "--failed-plan /var/lib/runner/failed.csv", "--failed-plan /srv/failed.csv", "not writable"},
		{"service: misspelt flag", "examples/systemd/runner.service", "--metrics-file", "--metric-file", "flag provided but not defined"},
		{"service: wrong credential", "examples/systemd/runner.service", "LoadCredential=keyfactor-password:", "LoadCredential=kf-password:", "credential"},
		{"service: short stop timeout", "examples/systemd/runner.service", "TimeoutStopSec=6min", "TimeoutStopSec=90s", "TimeoutStopSec"},
		{"service: not sandboxed", "examples/systemd/runner.service", "NoNewPrivileges=yes", "NoNewPrivileges=no", "NoNewPrivileges"},
		{"schedule: bad cron spec", "examples/systemd/runner-schedule.service", `--cron "15 2 * * *"`, `--cron "15 2 * *"`, "cron spec"},
		{"schedule: bad zone", "examples/systemd/runner-schedule.service", "--tz Europe/Berlin", "--tz Europe/Berln", "time zone"},
		{"schedule: no restart", "examples/systemd/runner-schedule.service", "Restart=on-failure", "Restart=no", "Restart"},
		{"timer: not persistent", "examples/systemd/runner.timer", "Persistent=true", "Persistent=false", "Persistent"},
		{"timer: no delay", "examples/systemd/runner.timer", "RandomizedDelaySec=30min", "RandomizedDelaySec=0", "RandomizedDelaySec"},
		{"timer: other unit", "examples/systemd/runner.timer", "Unit=runner.service", "Unit=renewer.service", "renewer.service"},
		{"k8s: misspelt field", "examples/kubernetes/runner.yaml", "subPathExpr:", "subPathExp:", "subPathExp"},
		{"k8s: concurrency", "examples/kubernetes/runner.yaml", "concurrencyPolicy: Forbid", "concurrencyPolicy: Allow", "concurrencyPolicy"},
		{"k8s: not indexed", "examples/kubernetes/runner.yaml", "completionMode: Indexed", "completionMode: NonIndexed", "completionMode"},
		{"k8s: completions differ from parallelism", "examples/kubernetes/runner.yaml", "completions: 3", "completions: 4", "equal"},
		{"k8s: completions differ from --shard-count", "examples/kubernetes/runner.yaml", "completions: 3\n      parallelism: 3", "completions: 4\n      parallelism: 4", "--shard-count must agree"},
		{"k8s: bad cron spec", "examples/kubernetes/runner.yaml", `schedule: "15 2 * * *"`, `schedule: "15 2 * *"`, "schedule"},
		{"k8s: misspelt flag", "examples/kubernetes/runner.yaml", "- --failed-plan", "- --failed-plans", "flag provided but not defined"},
		{"k8s: secret key not created", "examples/kubernetes/runner.yaml", "key: username", "key: user", "runner-keyfactor"},
		{"k8s: password mount", "examples/kubernetes/runner.yaml", "- /run/secrets/keyfactor/password", "- /run/secrets/kf/password", "--password-file"},
		{"k8s: writable root", "examples/kubernetes/runner.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem"},
		{"k8s: shared journal", "examples/kubernetes/runner.yaml", "subPathExpr: 3-shards/shard-$(JOB_COMPLETION_INDEX)", "subPathExpr: 3-shards", "JOB_COMPLETION_INDEX"},
		{"k8s: report off the volume", "examples/kubernetes/runner.yaml", "- /var/lib/runner/{time}.json", "- /tmp/{time}.json", "not writable"},
		{"k8s: plan not mounted", "examples/kubernetes/runner.yaml", "subPath: plan.csv", "subPath: plans.csv", "plan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte(tt.old)) {
				t.Fatalf("%s no longer contains %q: update this case", tt.file, tt.old)
			}
			broken := bytes.Replace(data, []byte(tt.old), []byte(tt.new), 1)
			errs := exampleChecks[tt.file](t, tt.file, broken)
			for _, err := range errs {
				if strings.Contains(err.Error(), tt.want) {
					t.Logf("caught: %v", err)
					return
				}
			}
			t.Errorf("check of the broken %s: want an error mentioning %q, got %v", tt.file, tt.want, errs)
		})
	}
}

// --- the plan ---

func checkPlanExample(_ *testing.T, name string, data []byte) []error {
	p, err := plan.Parse(bytes.NewReader(data), name, plan.Options{})
	if err != nil {
		return []error{err}
	}
	var errs []error
	if len(p.Rows) == 0 {
		errs = append(errs, fmt.Errorf("%s: no rows", name))
	}
	for _, r := range p.Rows {
		if r.Password.Kind != plan.SecretFile {
			continue
		}
		// Relative to the plan, as plan.Load takes it.
		ref := r.Password.Ref
		if !filepath.IsAbs(ref) {
			ref = filepath.Join(filepath.Dir(name), ref)
		}
		if _, err := os.Stat(ref); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: password file: %v", name, r.Line, err))
		}
	}
	return errs
}

// checkPlanSecretFile: the file is an entry password the example plan uses.
func checkPlanSecretFile(_ *testing.T, name string, _ []byte) []error {
	p, err := plan.Load("examples/plan.csv", plan.Options{})
	if err != nil {
		return []error{err}
	}
	for _, r := range p.Rows {
		if r.Password.Kind == plan.SecretFile && filepath.Clean(r.Password.Ref) == filepath.Clean(name) {
			return nil
		}
	}
	return []error{fmt.Errorf("%s: no row of examples/plan.csv uses it", name)}
}

// --- command lines ---

// parseRunnerCommand runs the real command line on argv with every action
// replaced by a recorder, in the environment env (and no other RUNNER_* or
// KEYFACTOR_* variable), and returns the command that would have run.
func parseRunnerCommand(t *testing.T, argv []string, env map[string]string) (string, *cli.Context, error) {
	setExampleEnv(t, env)
	app := newApp(io.Discard, io.Discard)
	var got string
	var ctx *cli.Context
	record := func(name string) cli.ActionFunc {
		return func(c *cli.Context) error {
			got, ctx = name, c
			return nil
		}
	}
	app.Action = record("run") // runner [flags] PLAN.csv
	var replace func(prefix string, cmds []*cli.Command)
	replace = func(prefix string, cmds []*cli.Command) {
		for _, cmd := range cmds {
			cmd.Action = record(prefix + cmd.Name)
			replace(prefix+cmd.Name+" ", cmd.Subcommands)
		}
	}
	replace("", app.Commands)
	if err := app.RunContext(context.Background(), argv); err != nil {
		return "", nil, err
	}
	if ctx == nil {
		return "", nil, errors.New("no command ran")
	}
	return got, ctx, nil
}

// setExampleEnv makes env the whole of runner's environment for a parse.
func setExampleEnv(t *testing.T, env map[string]string) {
	for name := range knownEnvVars() {
		if _, ok := env[name]; !ok {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	for name, v := range env {
		t.Setenv(name, v)
	}
}

// checkRunnerCommand parses argv as the command want ("run" or
// "schedule") and checks part of what runner checks before contacting
// anything: the run configuration (runConfig), the output formats, the
// jitter and, for schedule, the --cron spec. Not the rest of
// readInvocation: it reads the connection, whose password file exists only
// where the example is installed.
func checkRunnerCommand(t *testing.T, where string, argv []string, env map[string]string, want string) (*cli.Context, []error) {
	fail := func(format string, a ...any) []error {
		return []error{fmt.Errorf("%s: %s: %s", where, strings.Join(argv, " "), fmt.Sprintf(format, a...))}
	}
	if len(argv) == 0 || path.Base(argv[0]) != "runner" {
		return nil, fail("does not run runner")
	}
	got, c, err := parseRunnerCommand(t, argv, env)
	if err != nil {
		return nil, fail("%v", err)
	}
	if got != want {
		return nil, fail("runs %q, want %q", got, want)
	}
	var errs []error
	if c.NArg() != 1 || !strings.HasSuffix(c.Args().First(), ".csv") {
		errs = append(errs, fail("expected one PLAN.csv after the flags, got %q", c.Args().Slice())...)
	}
	if _, err := runConfig(c, false, slog.New(slog.DiscardHandler)); err != nil {
		errs = append(errs, fail("%v", err)...)
	}
	outs := outputs{reports: c.StringSlice("report"), failedPlan: c.String("failed-plan"), metrics: c.String("metrics-file")}
	if err := outs.checkFormats(); err != nil {
		errs = append(errs, fail("%v", err)...)
	}
	if _, err := jitterOf(c, false); err != nil {
		errs = append(errs, fail("%v", err)...)
	}
	if want == "schedule" {
		spec := c.String("cron")
		if _, _, err := runner.ParseSchedule(spec, c.String("tz")); err != nil {
			errs = append(errs, fail("%v", err)...)
		}
		if _, err := cron.ParseStandard(spec); err != nil {
			errs = append(errs, fail("--cron %q: %v", spec, err)...)
		}
	}
	return c, errs
}

// outputPaths are the files a command line writes besides the journal.
func outputPaths(c *cli.Context) []string {
	out := slices.Clone(c.StringSlice("report"))
	for _, f := range []string{"failed-plan", "metrics-file"} {
		if p := c.String(f); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// secretEnvVars are read by runner (cmd_run.go connectionConfig) and must
// never be written into an example.
var secretEnvVars = []string{"KEYFACTOR_PASSWORD", "KEYFACTOR_AUTH_CLIENT_SECRET", "KEYFACTOR_AUTH_ACCESS_TOKEN"}

// knownEnvVars are the variables runner reads: every flag's, the secrets,
// the state directory (journal.StateDir) and the Indexed Job's index.
func knownEnvVars() map[string]bool {
	known := map[string]bool{"RUNNER_STATE_DIR": true, "JOB_COMPLETION_INDEX": true}
	for _, n := range secretEnvVars {
		known[n] = true
	}
	add := func(flags []cli.Flag) {
		for _, f := range flags {
			if e, ok := f.(interface{ GetEnvVars() []string }); ok {
				for _, n := range e.GetEnvVars() {
					known[n] = true
				}
			}
		}
	}
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, cmd := range cmds {
			add(cmd.Flags)
			walk(cmd.Subcommands)
		}
	}
	app := newApp(io.Discard, io.Discard)
	add(app.Flags)
	walk(app.Commands)
	return known
}

// checkEnvNames refuses a RUNNER_* or KEYFACTOR_* variable runner does not
// read (a typo) and a secret written into the example.
func checkEnvNames(where string, env map[string]string) []error {
	known := knownEnvVars()
	var errs []error
	for name := range env {
		if (strings.HasPrefix(name, "RUNNER_") || strings.HasPrefix(name, "KEYFACTOR_")) && !known[name] {
			errs = append(errs, fmt.Errorf("%s: runner reads no variable %s", where, name))
		}
		if slices.Contains(secretEnvVars, name) {
			errs = append(errs, fmt.Errorf("%s: %s is a secret: give it as a file (--password-file and the like), never in an example", where, name))
		}
	}
	return errs
}

// splitCommandLine splits a command line into words as sh (and systemd's
// ExecStart=) would for the plain lines the examples hold: blanks between
// words, '…' and "…" quotes, backslash escapes, and ${NAME} replaced by
// expand (nil: no variables). Anything that would make the shell do more —
// an unquoted | & ; < > ( ) ` * ? [, or any other $ — is an error, so that
// the words checked are the words the program gets.
func splitCommandLine(s string, expand func(name string) (string, bool)) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	variable := func(i int) (int, error) { // s[i] == '$'
		end := strings.IndexByte(s[i:], '}')
		if expand == nil || !strings.HasPrefix(s[i:], "${") || end < 0 {
			return 0, fmt.Errorf("%q: unexpected $ (only ${NAME} is understood here)", s)
		}
		name := s[i+2 : i+end]
		v, ok := expand(name)
		if !ok {
			return 0, fmt.Errorf("%q: ${%s} is not set", s, name)
		}
		cur.WriteString(v)
		return end, nil
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
			continue
		case ch == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("%q: unterminated '", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case ch == '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				switch s[i] {
				case '\\':
					if i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
						i++
					}
					cur.WriteByte(s[i])
				case '$':
					n, err := variable(i)
					if err != nil {
						return nil, err
					}
					i += n
				case '`':
					return nil, fmt.Errorf("%q: unexpected `", s)
				default:
					cur.WriteByte(s[i])
				}
			}
			if i >= len(s) {
				return nil, fmt.Errorf("%q: unterminated \"", s)
			}
		case ch == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("%q: a backslash at the end", s)
			}
			i++
			cur.WriteByte(s[i])
		case ch == '$':
			n, err := variable(i)
			if err != nil {
				return nil, err
			}
			i += n
		case strings.IndexByte("|&;<>()`*?[", ch) >= 0:
			return nil, fmt.Errorf("%q: the shell would treat %q specially: quote it", s, ch)
		default:
			cur.WriteByte(ch)
		}
		inWord = true
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// --- crontab ---

var crontabVariable = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$`)

func checkCrontab(t *testing.T, name string, data []byte) []error {
	var errs []error
	env := map[string]string{}
	entries := 0
	for i, line := range strings.Split(string(data), "\n") {
		where := fmt.Sprintf("%s:%d", name, i+1)
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if m := crontabVariable.FindStringSubmatch(line); m != nil {
			env[m[1]] = strings.Trim(m[2], `"'`)
			continue
		}
		fields := strings.Fields(line)
		n := 5
		if strings.HasPrefix(line, "@") {
			n = 1
		}
		if len(fields) <= n {
			errs = append(errs, fmt.Errorf("%s: want a schedule and a command: %q", where, line))
			continue
		}
		entries++
		spec := strings.Join(fields[:n], " ")
		if _, err := cron.ParseStandard(spec); err != nil {
			errs = append(errs, fmt.Errorf("%s: schedule %q: %v", where, spec, err))
		}
		command := regexp.MustCompile(fmt.Sprintf(`^(\S+\s+){%d}`, n)).ReplaceAllString(line, "")
		if strings.Contains(command, "%") {
			errs = append(errs, fmt.Errorf("%s: cron turns %% into a newline; the command must have none", where))
			continue
		}
		argv, err := splitCommandLine(command, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", where, err))
			continue
		}
		c, cerrs := checkRunnerCommand(t, where, argv, env, "run")
		errs = append(errs, cerrs...)
		if c == nil {
			continue
		}
		// What the operator reading the example was promised.
		if c.Duration("jitter") <= 0 {
			errs = append(errs, fmt.Errorf("%s: a nightly line needs --jitter, so a fleet does not start in the same second", where))
		}
		if c.String("password-file") == "" {
			errs = append(errs, fmt.Errorf("%s: the password comes from --password-file", where))
		}
		if !slices.ContainsFunc(c.StringSlice("report"), func(p string) bool { return strings.Contains(p, timeToken) }) {
			errs = append(errs, fmt.Errorf("%s: a nightly report path needs %s, so each night keeps its own", where, timeToken))
		}
		if c.String("failed-plan") == "" || c.String("metrics-file") == "" {
			errs = append(errs, fmt.Errorf("%s: a nightly line writes --failed-plan and --metrics-file", where))
		}
	}
	if entries == 0 {
		errs = append(errs, fmt.Errorf("%s: no entry", name))
	}
	return append(errs, checkEnvNames(name, env)...)
}

// --- environment file ---

// envFileValue is what systemd's EnvironmentFile= and sh's "." read alike.
var envFileValue = regexp.MustCompile(`^[A-Za-z0-9._:/@-]*$`)

// parseEnvFile reads NAME=value lines.
func parseEnvFile(name string, data []byte) (map[string]string, []error) {
	env := map[string]string{}
	var errs []error
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		switch {
		case !ok || !crontabVariable.MatchString(line):
			errs = append(errs, fmt.Errorf("%s:%d: want NAME=value, got %q", name, i+1, line))
		case !envFileValue.MatchString(v):
			errs = append(errs, fmt.Errorf("%s:%d: %s: keep the value to letters, digits and . _ - : / @ (systemd and sh read other characters differently)", name, i+1, k))
		default:
			env[k] = v
		}
	}
	return env, append(errs, checkEnvNames(name, env)...)
}

func checkEnvFileExample(_ *testing.T, name string, data []byte) []error {
	env, errs := parseEnvFile(name, data)
	if env["KEYFACTOR_HOSTNAME"] == "" {
		errs = append(errs, fmt.Errorf("%s: no KEYFACTOR_HOSTNAME", name))
	}
	return errs
}

// --- systemd units ---

// unitDirectives are the sections and directives a unit may use here; one
// not listed is taken for a typo (add it if it is real).
var unitDirectives = map[string][]string{
	"Unit": {"Description", "Documentation", "Wants", "Requires", "After", "Before", "OnFailure",
		"ConditionPathExists", "StartLimitIntervalSec", "StartLimitBurst"},
	"Service": {"Type", "User", "Group", "DynamicUser", "SupplementaryGroups", "ExecStart", "ExecStartPre",
		"Environment", "EnvironmentFile", "LoadCredential", "LoadCredentialEncrypted", "StateDirectory",
		"StateDirectoryMode", "LogsDirectory", "LogsDirectoryMode", "CacheDirectory", "RuntimeDirectory",
		"ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "WorkingDirectory", "Restart", "RestartSec",
		"RestartPreventExitStatus", "SuccessExitStatus", "KillSignal", "KillMode", "TimeoutStartSec",
		"TimeoutStopSec", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
		"PrivateUsers", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
		"ProtectControlGroups", "ProtectClock", "ProtectHostname", "ProtectProc", "ProcSubset",
		"RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
		"LockPersonality", "MemoryDenyWriteExecute", "SystemCallArchitectures", "SystemCallFilter",
		"SystemCallErrorNumber", "CapabilityBoundingSet", "AmbientCapabilities", "UMask", "Nice",
		"MemoryMax", "CPUQuota", "StandardOutput", "StandardError", "SyslogIdentifier"},
	"Timer":   {"OnCalendar", "OnBootSec", "OnUnitActiveSec", "RandomizedDelaySec", "FixedRandomDelay", "Persistent", "AccuracySec", "Unit", "WakeSystem"},
	"Install": {"WantedBy", "RequiredBy", "Alias", "Also"},
}

// unitSections are the sections a unit of each type has.
var unitSections = map[string][]string{
	".service": {"Unit", "Service", "Install"},
	".timer":   {"Unit", "Timer", "Install"},
}

// unitFile is a parsed unit: section → directive → values, in order.
type unitFile map[string]map[string][]string

func (u unitFile) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// parseUnit reads a systemd unit file: [Section] lines, Key=Value lines, #
// and ; comments, and lines continued with a trailing backslash.
func parseUnit(name string, data []byte) (unitFile, []error) {
	allowed := unitSections[path.Ext(name)]
	if allowed == nil {
		return nil, []error{fmt.Errorf("%s: not a .service or .timer unit", name)}
	}
	u := unitFile{}
	var errs []error
	section := ""
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		where := fmt.Sprintf("%s:%d", name, i+1)
		line := strings.TrimSpace(lines[i])
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(lines[i])
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if !slices.Contains(allowed, section) {
				errs = append(errs, fmt.Errorf("%s: unknown section [%s] in a %s unit (want %s)", where, section, path.Ext(name), strings.Join(allowed, ", ")))
			}
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: want Key=Value, got %q", where, line))
		case section == "":
			errs = append(errs, fmt.Errorf("%s: %s before any [Section]", where, k))
		case !slices.Contains(unitDirectives[section], k):
			errs = append(errs, fmt.Errorf("%s: unknown directive %s in [%s]", where, k, section))
		default:
			u[section][k] = append(u[section][k], v)
		}
	}
	return u, errs
}

// systemdSpecifiers expands the % specifiers of a system unit that the
// examples use.
func systemdSpecifiers(s, unit string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("%q: a %% at the end", s)
		}
		i++
		switch s[i] {
		case '%':
			b.WriteByte('%')
		case 'S':
			b.WriteString("/var/lib")
		case 'L':
			b.WriteString("/var/log")
		case 'd':
			b.WriteString(credentialsDir(unit))
		default:
			return "", fmt.Errorf("%q: specifier %%%c is not one this test knows (%%S, %%L, %%d, %%%%)", s, s[i])
		}
	}
	return b.String(), nil
}

// credentialsDir is $CREDENTIALS_DIRECTORY of a system service.
func credentialsDir(unit string) string { return "/run/credentials/" + unit }

// parseTimespan reads a systemd time span: "30min", "6min", "1h 30min",
// "90" (seconds).
func parseTimespan(s string) (time.Duration, error) {
	units := map[string]time.Duration{"": time.Second, "s": time.Second, "sec": time.Second, "m": time.Minute,
		"min": time.Minute, "h": time.Hour, "hr": time.Hour, "d": 24 * time.Hour, "ms": time.Millisecond}
	re := regexp.MustCompile(`^(\d+)\s*([a-z]*)$`)
	var total time.Duration
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return 0, fmt.Errorf("empty time span")
	}
	for _, f := range fields {
		m := re.FindStringSubmatch(f)
		if m == nil || units[m[2]] == 0 {
			return 0, fmt.Errorf("time span %q: want e.g. 30s, 6min, 1h", s)
		}
		n, _ := strconv.Atoi(m[1])
		total += time.Duration(n) * units[m[2]]
	}
	return total, nil
}

func isYes(s string) bool { return s == "yes" || s == "true" || s == "on" || s == "1" }

// checkServiceUnit checks a service unit that runs want ("run" or
// "schedule"): its ExecStart= through the real command line, in the
// environment the unit gives it; the credential; the journal in
// StateDirectory=; every output where the sandbox lets it write; the
// sandbox; and a stop timeout that lets in-flight renewals finish.
func checkServiceUnit(want string) exampleCheck {
	return func(t *testing.T, name string, data []byte) []error {
		u, errs := parseUnit(name, data)
		if u == nil {
			return errs
		}
		unit := path.Base(name)
		fail := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, a...)))
		}
		s := u["Service"]
		env := map[string]string{"CREDENTIALS_DIRECTORY": credentialsDir(unit)}
		for _, f := range s["EnvironmentFile"] {
			// The example's /etc/runner/X is examples/systemd/X.
			local := filepath.Join(filepath.Dir(name), path.Base(strings.TrimPrefix(f, "-")))
			data, err := os.ReadFile(local)
			if err != nil {
				fail("EnvironmentFile=%s: no %s beside the unit: %v", f, local, err)
				continue
			}
			fileEnv, ferrs := parseEnvFile(local, data)
			errs = append(errs, ferrs...)
			for k, v := range fileEnv {
				env[k] = v
			}
		}
		unitEnv := map[string]string{}
		for _, e := range s["Environment"] {
			e, err := systemdSpecifiers(strings.Trim(e, `"`), unit)
			if err != nil {
				fail("Environment=: %v", err)
				continue
			}
			k, v, _ := strings.Cut(e, "=")
			unitEnv[k], env[k] = v, v
		}
		errs = append(errs, checkEnvNames(name+": Environment=", unitEnv)...)

		// The sandbox, and what it lets runner write.
		for _, k := range []string{"NoNewPrivileges", "PrivateTmp"} {
			if !isYes(u.get("Service", k)) {
				fail("%s=yes is required", k)
			}
		}
		if u.get("Service", "ProtectSystem") != "strict" {
			fail("ProtectSystem=strict is required")
		}
		if h := u.get("Service", "ProtectHome"); !isYes(h) && h != "read-only" && h != "tmpfs" {
			fail("ProtectHome= is required")
		}
		if user := u.get("Service", "User"); !isYes(u.get("Service", "DynamicUser")) && (user == "" || user == "root") {
			fail("run as DynamicUser=yes or a dedicated User=")
		}
		var writable []string
		for _, d := range s["StateDirectory"] {
			for _, f := range strings.Fields(d) {
				writable = append(writable, "/var/lib/"+f)
			}
		}
		for _, d := range s["LogsDirectory"] {
			for _, f := range strings.Fields(d) {
				writable = append(writable, "/var/log/"+f)
			}
		}
		for _, d := range s["ReadWritePaths"] {
			writable = append(writable, strings.Fields(d)...)
		}
		canWrite := func(p string) bool {
			return slices.ContainsFunc(writable, func(d string) bool { return p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/") })
		}
		if !slices.Contains(s["StateDirectory"], "runner") {
			fail("StateDirectory=runner is required: the journal lives in /var/lib/runner")
		}
		if d := env["RUNNER_STATE_DIR"]; d != "/var/lib/runner" {
			fail("Environment=RUNNER_STATE_DIR=%%S/runner is required (the StateDirectory), got %q", d)
		}

		// The credential the password is read from.
		creds := map[string]bool{}
		for _, lc := range s["LoadCredential"] {
			id, src, ok := strings.Cut(lc, ":")
			if !ok || !filepath.IsAbs(src) {
				fail("LoadCredential=%s: want ID:/absolute/path", lc)
			}
			creds[id] = true
		}
		if len(creds) == 0 {
			fail("the password comes through LoadCredential=")
		}

		// The command line.
		if len(s["ExecStart"]) != 1 {
			fail("want one ExecStart=, got %d", len(s["ExecStart"]))
			return errs
		}
		line, err := systemdSpecifiers(s["ExecStart"][0], unit)
		if err != nil {
			fail("ExecStart=: %v", err)
			return errs
		}
		argv, err := splitCommandLine(line, func(n string) (string, bool) { v, ok := env[n]; return v, ok })
		if err != nil {
			fail("ExecStart=: %v", err)
			return errs
		}
		c, cerrs := checkRunnerCommand(t, name+": ExecStart=", argv, env, want)
		errs = append(errs, cerrs...)
		if c == nil {
			return errs
		}
		if pf := c.String("password-file"); path.Dir(pf) != credentialsDir(unit) || !creds[path.Base(pf)] {
			fail("--password-file %s is not a credential of LoadCredential= (want ${CREDENTIALS_DIRECTORY}/ID)", pf)
		}
		for _, p := range outputPaths(c) {
			if !canWrite(p) {
				fail("%s is not writable under ProtectSystem=strict: put it in StateDirectory=, LogsDirectory= or ReadWritePaths= (have %s)", p, strings.Join(writable, " "))
			}
		}

		// A stop lets the renewals already sent be deployed.
		if u.get("Service", "KillSignal") != "SIGTERM" {
			fail("KillSignal=SIGTERM is required (runner finishes in-flight renewals on SIGTERM)")
		}
		if d, err := parseTimespan(u.get("Service", "TimeoutStopSec")); err != nil || d <= c.Duration("window") {
			fail("TimeoutStopSec=%s must be longer than the staging window (%s), so in-flight renewals are deployed", u.get("Service", "TimeoutStopSec"), c.Duration("window"))
		}
		switch want {
		case "run":
			if u.get("Service", "Type") != "oneshot" {
				fail("Type=oneshot is required for a unit a timer starts")
			}
		case "schedule":
			if u.get("Service", "Restart") != "on-failure" {
				fail("Restart=on-failure is required for runner schedule")
			}
			if u.get("Install", "WantedBy") == "" {
				fail("[Install] WantedBy= is required, so it starts at boot")
			}
		}
		return errs
	}
}

var onCalendar = regexp.MustCompile(`^(\*-\*-\* \d{2}:\d{2}(:\d{2})?|hourly|daily|weekly)$`)

func checkTimerUnit(_ *testing.T, name string, data []byte) []error {
	u, errs := parseUnit(name, data)
	if u == nil {
		return errs
	}
	fail := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, a...)))
	}
	if c := u.get("Timer", "OnCalendar"); !onCalendar.MatchString(c) {
		fail("OnCalendar=%q: want *-*-* HH:MM:SS or daily", c)
	}
	if d, err := parseTimespan(u.get("Timer", "RandomizedDelaySec")); err != nil || d <= 0 {
		fail("RandomizedDelaySec= must spread the start (got %q)", u.get("Timer", "RandomizedDelaySec"))
	}
	if !isYes(u.get("Timer", "Persistent")) {
		fail("Persistent=true is required: a night missed while the machine was off runs at boot")
	}
	service := u.get("Timer", "Unit")
	if service == "" {
		service = strings.TrimSuffix(path.Base(name), ".timer") + ".service"
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(name), service)); err != nil {
		fail("starts %s, which is not an example: %v", service, err)
	}
	if u.get("Install", "WantedBy") != "timers.target" {
		fail("[Install] WantedBy=timers.target is required")
	}
	return errs
}

// --- Kubernetes ---

// The Kubernetes objects, with only the fields the example uses, under
// their API names (k8s.io/api batch/v1 and core/v1). They are decoded with
// KnownFields, so a misspelt field fails.
type (
	k8sMeta struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	k8sHead struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
	}
	k8sResources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	}
	k8sPVC struct {
		k8sHead  `yaml:",inline"`
		Metadata k8sMeta `yaml:"metadata"`
		Spec     struct {
			AccessModes      []string     `yaml:"accessModes"`
			StorageClassName *string      `yaml:"storageClassName"`
			Resources        k8sResources `yaml:"resources"`
		} `yaml:"spec"`
	}
	k8sCronJob struct {
		k8sHead  `yaml:",inline"`
		Metadata k8sMeta `yaml:"metadata"`
		Spec     struct {
			Schedule                   string `yaml:"schedule"`
			TimeZone                   string `yaml:"timeZone"`
			ConcurrencyPolicy          string `yaml:"concurrencyPolicy"`
			StartingDeadlineSeconds    *int64 `yaml:"startingDeadlineSeconds"`
			SuccessfulJobsHistoryLimit *int32 `yaml:"successfulJobsHistoryLimit"`
			FailedJobsHistoryLimit     *int32 `yaml:"failedJobsHistoryLimit"`
			Suspend                    *bool  `yaml:"suspend"`
			JobTemplate                struct {
				Metadata k8sMeta    `yaml:"metadata"`
				Spec     k8sJobSpec `yaml:"spec"`
			} `yaml:"jobTemplate"`
		} `yaml:"spec"`
	}
	k8sJobSpec struct {
		CompletionMode          string `yaml:"completionMode"`
		Completions             *int32 `yaml:"completions"`
		Parallelism             *int32 `yaml:"parallelism"`
		BackoffLimit            *int32 `yaml:"backoffLimit"`
		BackoffLimitPerIndex    *int32 `yaml:"backoffLimitPerIndex"`
		MaxFailedIndexes        *int32 `yaml:"maxFailedIndexes"`
		ActiveDeadlineSeconds   *int64 `yaml:"activeDeadlineSeconds"`
		TTLSecondsAfterFinished *int32 `yaml:"ttlSecondsAfterFinished"`
		Template                struct {
			Metadata k8sMeta    `yaml:"metadata"`
			Spec     k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
	}
	k8sPodSpec struct {
		RestartPolicy                 string            `yaml:"restartPolicy"`
		TerminationGracePeriodSeconds *int64            `yaml:"terminationGracePeriodSeconds"`
		ServiceAccountName            string            `yaml:"serviceAccountName"`
		AutomountServiceAccountToken  *bool             `yaml:"automountServiceAccountToken"`
		NodeSelector                  map[string]string `yaml:"nodeSelector"`
		SecurityContext               struct {
			RunAsNonRoot   *bool  `yaml:"runAsNonRoot"`
			RunAsUser      *int64 `yaml:"runAsUser"`
			RunAsGroup     *int64 `yaml:"runAsGroup"`
			FSGroup        *int64 `yaml:"fsGroup"`
			SeccompProfile *struct {
				Type string `yaml:"type"`
			} `yaml:"seccompProfile"`
		} `yaml:"securityContext"`
		Containers []k8sContainer `yaml:"containers"`
		Volumes    []k8sVolume    `yaml:"volumes"`
	}
	k8sContainer struct {
		Name            string           `yaml:"name"`
		Image           string           `yaml:"image"`
		ImagePullPolicy string           `yaml:"imagePullPolicy"`
		Command         []string         `yaml:"command"`
		Args            []string         `yaml:"args"`
		Env             []k8sEnv         `yaml:"env"`
		Resources       k8sResources     `yaml:"resources"`
		VolumeMounts    []k8sVolumeMount `yaml:"volumeMounts"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
			RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
			Capabilities             *struct {
				Add  []string `yaml:"add"`
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
	}
	k8sEnv struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			SecretKeyRef    *k8sKeyRef `yaml:"secretKeyRef"`
			ConfigMapKeyRef *k8sKeyRef `yaml:"configMapKeyRef"`
		} `yaml:"valueFrom"`
	}
	k8sKeyRef struct {
		Name     string `yaml:"name"`
		Key      string `yaml:"key"`
		Optional *bool  `yaml:"optional"`
	}
	k8sVolumeMount struct {
		Name        string `yaml:"name"`
		MountPath   string `yaml:"mountPath"`
		SubPath     string `yaml:"subPath"`
		SubPathExpr string `yaml:"subPathExpr"`
		ReadOnly    bool   `yaml:"readOnly"`
	}
	k8sKeyToPath struct {
		Key  string `yaml:"key"`
		Path string `yaml:"path"`
		Mode *int32 `yaml:"mode"`
	}
	k8sVolume struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name        string         `yaml:"name"`
			DefaultMode *int32         `yaml:"defaultMode"`
			Items       []k8sKeyToPath `yaml:"items"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName  string         `yaml:"secretName"`
			DefaultMode *int32         `yaml:"defaultMode"`
			Items       []k8sKeyToPath `yaml:"items"`
			Optional    *bool          `yaml:"optional"`
		} `yaml:"secret"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"persistentVolumeClaim"`
		EmptyDir *struct {
			Medium    string `yaml:"medium"`
			SizeLimit string `yaml:"sizeLimit"`
		} `yaml:"emptyDir"`
	}
)

// jobCompletionIndexPath is where the Job controller puts the index
// (kubernetes pkg/controller/job, addCompletionIndexEnvVariable).
const jobCompletionIndexPath = "metadata.annotations['batch.kubernetes.io/job-completion-index']"

// kubectlObjects are the Secrets and ConfigMaps the example's header tells
// the operator to create (kubectl create secret generic|configmap NAME
// --from-literal=KEY=… --from-file=KEY=PATH), by name, with their keys and
// the local files named.
type kubectlObjects struct {
	secrets, configMaps map[string]map[string]string // name → key → source file ("" for a literal)
}

func parseKubectlCreates(header string) (kubectlObjects, []error) {
	objs := kubectlObjects{secrets: map[string]map[string]string{}, configMaps: map[string]map[string]string{}}
	var errs []error
	var lines []string
	for _, l := range strings.Split(header, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#"))
		if n := len(lines); n > 0 && strings.HasSuffix(lines[n-1], `\`) {
			lines[n-1] = strings.TrimSuffix(lines[n-1], `\`) + " " + l
			continue
		}
		lines = append(lines, l)
	}
	for _, l := range lines {
		var into map[string]map[string]string
		switch {
		case strings.HasPrefix(l, "kubectl create secret generic "):
			into = objs.secrets
		case strings.HasPrefix(l, "kubectl create configmap "):
			into = objs.configMaps
		default:
			continue
		}
		words, err := splitCommandLine(l, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		words = slices.DeleteFunc(words, func(w string) bool { return w == "generic" })
		name := words[3]
		keys := map[string]string{}
		for _, w := range words[4:] {
			for _, flag := range []string{"--from-literal=", "--from-file="} {
				if rest, ok := strings.CutPrefix(w, flag); ok {
					k, src, _ := strings.Cut(rest, "=")
					if flag == "--from-literal=" {
						src = ""
					}
					keys[k] = src
				}
			}
		}
		into[name] = keys
	}
	return objs, errs
}

// decodeStrict decodes one YAML document into v, refusing unknown fields.
func decodeStrict(doc *yaml.Node, v any) error {
	b, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// parseQuantity reads a Kubernetes quantity the example uses: 256Mi, 1Gi,
// 100m (CPU), 2.
func parseQuantity(s string) (float64, error) {
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"m", 1e-3}, {"", 1}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(n, 64)
			if err == nil {
				return f * u.mult, nil
			}
		}
	}
	return 0, fmt.Errorf("quantity %q: want e.g. 256Mi or 100m", s)
}

// expandK8s expands $(NAME) as Kubernetes does in args and subPathExpr;
// $$ is a literal $.
func expandK8s(s string, env map[string]string) string {
	re := regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	return re.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

func checkKubernetes(t *testing.T, name string, data []byte) []error {
	var errs []error
	fail := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, a...)))
	}
	header, _, _ := strings.Cut(string(data), "\n---\n")
	objs, kerrs := parseKubectlCreates(header)
	errs = append(errs, kerrs...)

	var cronJobs []k8sCronJob
	pvcs := map[string]k8sPVC{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fail("document %d: %v", i, err)
			return errs
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue // the header's comments
		}
		var head k8sHead
		if err := doc.Decode(&head); err != nil {
			fail("document %d: %v", i, err)
			continue
		}
		switch head.Kind {
		case "CronJob":
			var cj k8sCronJob
			if err := decodeStrict(&doc, &cj); err != nil {
				fail("CronJob: %v", err)
				continue
			}
			if cj.APIVersion != "batch/v1" {
				fail("CronJob: apiVersion %q, want batch/v1", cj.APIVersion)
			}
			cronJobs = append(cronJobs, cj)
		case "PersistentVolumeClaim":
			var pvc k8sPVC
			if err := decodeStrict(&doc, &pvc); err != nil {
				fail("PersistentVolumeClaim: %v", err)
				continue
			}
			if len(pvc.Spec.AccessModes) == 0 || pvc.Spec.Resources.Requests["storage"] == "" {
				fail("PersistentVolumeClaim %s: needs accessModes and a storage request", pvc.Metadata.Name)
			}
			pvcs[pvc.Metadata.Name] = pvc
		default:
			fail("document %d: kind %q is not one this test knows (CronJob, PersistentVolumeClaim)", i, head.Kind)
		}
	}
	if len(cronJobs) != 1 {
		fail("want one CronJob, got %d", len(cronJobs))
		return errs
	}
	cj := cronJobs[0]
	where := name + ": CronJob " + cj.Metadata.Name
	failCJ := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, a...)))
	}

	if _, err := cron.ParseStandard(cj.Spec.Schedule); err != nil {
		failCJ("schedule %q: %v", cj.Spec.Schedule, err)
	}
	if cj.Spec.TimeZone != "" {
		if _, err := time.LoadLocation(cj.Spec.TimeZone); err != nil {
			failCJ("timeZone: %v", err)
		}
	}
	if cj.Spec.ConcurrencyPolicy != "Forbid" {
		failCJ("concurrencyPolicy %q: want Forbid, so two nights never share the journals", cj.Spec.ConcurrencyPolicy)
	}
	if d := cj.Spec.StartingDeadlineSeconds; d == nil || *d <= 0 {
		failCJ("startingDeadlineSeconds is required")
	}
	job := cj.Spec.JobTemplate.Spec
	if job.CompletionMode != "Indexed" {
		failCJ("completionMode %q: want Indexed (--shard-count takes the index from it)", job.CompletionMode)
	}
	if job.Completions == nil || job.Parallelism == nil || *job.Completions != *job.Parallelism || *job.Completions < 1 {
		failCJ("completions and parallelism must be set and equal (every shard runs at once)")
		return errs
	}
	shards := int(*job.Completions)
	pod := job.Template.Spec
	if pod.RestartPolicy != "Never" {
		failCJ("restartPolicy %q: want Never", pod.RestartPolicy)
	}
	if p := pod.SecurityContext.RunAsNonRoot; p == nil || !*p {
		failCJ("securityContext.runAsNonRoot: true is required")
	}
	if len(pod.Containers) != 1 {
		failCJ("want one container, got %d", len(pod.Containers))
		return errs
	}
	ctr := pod.Containers[0]
	if p := ctr.SecurityContext.ReadOnlyRootFilesystem; p == nil || !*p {
		failCJ("container securityContext.readOnlyRootFilesystem: true is required")
	}
	if p := ctr.SecurityContext.AllowPrivilegeEscalation; p == nil || *p {
		failCJ("container securityContext.allowPrivilegeEscalation: false is required")
	}
	for _, q := range []struct {
		what string
		m    map[string]string
		key  string
	}{{"requests", ctr.Resources.Requests, "cpu"}, {"requests", ctr.Resources.Requests, "memory"}, {"limits", ctr.Resources.Limits, "memory"}} {
		if _, err := parseQuantity(q.m[q.key]); err != nil {
			failCJ("resources.%s.%s: %v", q.what, q.key, err)
		}
	}
	if req, err1 := parseQuantity(ctr.Resources.Requests["memory"]); err1 == nil {
		if lim, err2 := parseQuantity(ctr.Resources.Limits["memory"]); err2 == nil && lim < req {
			failCJ("the memory limit is below the request")
		}
	}

	// The environment, as for index i.
	literal := map[string]string{}
	var indexFromAnnotation bool
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			literal[e.Name] = e.Value
			if slices.Contains(secretEnvVars, e.Name) {
				failCJ("env %s: a secret must come from a Secret, never a value", e.Name)
			}
		case e.ValueFrom.FieldRef != nil:
			if e.Name != "JOB_COMPLETION_INDEX" || e.ValueFrom.FieldRef.FieldPath != jobCompletionIndexPath {
				failCJ("env %s: fieldRef %q is not the completion index", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			indexFromAnnotation = true
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if _, ok := objs.secrets[ref.Name][ref.Key]; !ok {
				failCJ("env %s: secretKeyRef %s/%s: the header creates no such Secret key", e.Name, ref.Name, ref.Key)
			}
		default:
			failCJ("env %s: valueFrom this test does not know", e.Name)
		}
	}
	if !indexFromAnnotation {
		failCJ("env JOB_COMPLETION_INDEX must be declared from %s, for subPathExpr", jobCompletionIndexPath)
	}
	envNames := map[string]string{}
	for _, e := range ctr.Env {
		envNames[e.Name] = ""
	}
	errs = append(errs, checkEnvNames(where+": env", envNames)...)

	// The volumes and what is mounted where.
	volumes := map[string]k8sVolume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	// fileAt says which Secret or ConfigMap key is the file at p, if any.
	fileAt := func(p string) (kind, obj, key string) {
		for _, m := range ctr.VolumeMounts {
			v := volumes[m.Name]
			var key string
			switch {
			case m.MountPath == p && m.SubPath != "":
				key = m.SubPath
			case m.MountPath == path.Dir(p) && m.SubPath == "":
				key = path.Base(p)
			default:
				continue
			}
			switch {
			case v.Secret != nil:
				for _, it := range v.Secret.Items {
					if it.Path == key {
						return "Secret", v.Secret.SecretName, it.Key
					}
				}
				if len(v.Secret.Items) == 0 {
					return "Secret", v.Secret.SecretName, key
				}
			case v.ConfigMap != nil:
				return "ConfigMap", v.ConfigMap.Name, key
			}
		}
		return "", "", ""
	}

	argv := append(slices.Clone(ctr.Command), ctr.Args...)
	for i := range shards {
		env := map[string]string{"JOB_COMPLETION_INDEX": strconv.Itoa(i)}
		for k, v := range literal {
			env[k] = expandK8s(v, env)
		}
		for _, e := range ctr.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				env[e.Name] = "from-secret"
			}
		}
		args := make([]string, len(argv))
		for j, a := range argv {
			args[j] = expandK8s(a, env)
		}
		c, cerrs := checkRunnerCommand(t, fmt.Sprintf("%s: index %d", where, i), args, env, "run")
		errs = append(errs, cerrs...)
		if c == nil {
			return errs
		}
		cfg, err := runConfig(c, false, slog.New(slog.DiscardHandler))
		if err == nil && cfg.Shard != (runner.Shard{Index: i + 1, Count: shards}) {
			failCJ("index %d runs shard %s, want %d/%d: completions and --shard-count must agree", i, cfg.Shard, i+1, shards)
			return errs
		}
		if i > 0 {
			continue
		}
		// The wiring, once.
		if kind, obj, key := fileAt(c.String("password-file")); kind != "Secret" || objs.secrets[obj] == nil {
			failCJ("--password-file %s is not a key of a Secret the header creates (found %s %q key %q)", c.String("password-file"), kind, obj, key)
		} else if _, ok := objs.secrets[obj][key]; !ok {
			failCJ("--password-file %s is key %q of Secret %s, which the header does not create", c.String("password-file"), key, obj)
		}
		planPath := c.Args().First()
		kind, obj, key := fileAt(planPath)
		src, ok := objs.configMaps[obj][key]
		if kind != "ConfigMap" || !ok || src == "" {
			failCJ("the plan %s is not a key of a ConfigMap the header creates from a file (found %s %q key %q)", planPath, kind, obj, key)
		} else if p, err := plan.Load(src, plan.Options{}); err != nil {
			failCJ("the ConfigMap's plan: %v", err)
		} else {
			// Entry passwords are files relative to the plan: in the pod, a
			// key of a Secret the header creates.
			for _, r := range p.Rows {
				if r.Password.Kind != plan.SecretFile {
					continue
				}
				rel, _ := filepath.Rel(filepath.Dir(src), r.Password.Ref)
				inPod := path.Join(path.Dir(planPath), filepath.ToSlash(rel))
				if kind, obj, key := fileAt(inPod); kind != "Secret" {
					failCJ("%s:%d: the entry password file:%s is %s in the pod, which no Secret is mounted at", src, r.Line, rel, inPod)
				} else if _, ok := objs.secrets[obj][key]; !ok {
					failCJ("%s:%d: the entry password is key %q of Secret %s, which the header does not create", src, r.Line, key, obj)
				}
			}
		}

		// The journal: each index its own directory of a claimed volume,
		// named by the shard count; the outputs on it (the root file
		// system is read-only).
		stateDir := env["RUNNER_STATE_DIR"]
		var stateMount *k8sVolumeMount
		for j, m := range ctr.VolumeMounts {
			if m.MountPath == stateDir {
				stateMount = &ctr.VolumeMounts[j]
			}
		}
		switch {
		case stateDir == "" || stateMount == nil:
			failCJ("RUNNER_STATE_DIR %q is not a volume mount", stateDir)
		case volumes[stateMount.Name].PersistentVolumeClaim == nil || pvcs[volumes[stateMount.Name].PersistentVolumeClaim.ClaimName].Metadata.Name == "":
			failCJ("the state volume %s is not a PersistentVolumeClaim of this file", stateMount.Name)
		case !strings.Contains(stateMount.SubPathExpr, "$(JOB_COMPLETION_INDEX)"):
			failCJ("the state mount needs subPathExpr with $(JOB_COMPLETION_INDEX): each index its own journal")
		case !strings.Contains(stateMount.SubPathExpr, fmt.Sprintf("%d-shards/", shards)):
			failCJ("the state mount's subPathExpr %q must name the shard count (%d-shards/): a new count needs new journals", stateMount.SubPathExpr, shards)
		}
		for _, p := range outputPaths(c) {
			if stateDir == "" || !strings.HasPrefix(p, stateDir+"/") {
				failCJ("%s is not writable: the root file system is read-only; write it under RUNNER_STATE_DIR %s", p, stateDir)
			}
		}
		if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= c.Duration("window") {
			failCJ("terminationGracePeriodSeconds must be longer than the staging window (%s), so in-flight renewals are deployed", c.Duration("window"))
		}
	}
	return errs
}

// --- the checkers' own pieces ---

func TestSplitCommandLine(t *testing.T) {
	env := map[string]string{"D": "/run/x"}
	expand := func(n string) (string, bool) { v, ok := env[n]; return v, ok }
	tests := []struct {
		name    string
		in      string
		expand  bool
		want    []string
		wantErr string
	}{
		{name: "words", in: "runner  --a b\tc", want: []string{"runner", "--a", "b", "c"}},
		{name: "single quotes", in: `runner '{time} x' y`, want: []string{"runner", "{time} x", "y"}},
		{name: "double quotes", in: `runner --cron "15 2 * * *"`, want: []string{"runner", "--cron", "15 2 * * *"}},
		{name: "escapes", in: `a\ b "c\"d\x"`, want: []string{"a b", `c"d\x`}},
		{name: "variable", in: "runner ${D}/pw", expand: true, want: []string{"runner", "/run/x/pw"}},
		{name: "unset variable", in: "runner ${E}/pw", expand: true, wantErr: "not set"},
		{name: "no variables in cron", in: "runner ${D}", wantErr: "unexpected $"},
		{name: "bare $", in: "runner $D", expand: true, wantErr: "unexpected $"},
		{name: "glob", in: "runner *.csv", wantErr: "specially"},
		{name: "pipe", in: "runner x | mail", wantErr: "specially"},
		{name: "unterminated", in: `runner "x`, wantErr: "unterminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ex func(string) (string, bool)
			if tt.expand {
				ex = expand
			}
			got, err := splitCommandLine(tt.in, ex)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("splitCommandLine(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("splitCommandLine(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseTimespan(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"6min", 6 * time.Minute, true},
		{"30min", 30 * time.Minute, true},
		{"90", 90 * time.Second, true},
		{"1h 30min", 90 * time.Minute, true},
		{"30s", 30 * time.Second, true},
		{"5 parsecs", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTimespan(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("parseTimespan(%q) = %s, %v; want %s (ok %v)", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseRunnerCommand(t *testing.T) {
	tests := []struct {
		name    string
		argv    []string
		want    string
		wantErr string
	}{
		{name: "root is run", argv: []string{"runner", "--quiet", "p.csv"}, want: "run"},
		{name: "run", argv: []string{"runner", "run", "--quiet", "p.csv"}, want: "run"},
		{name: "schedule", argv: []string{"runner", "schedule", "--cron", "@daily", "p.csv"}, want: "schedule"},
		{name: "unknown flag", argv: []string{"runner", "--quite", "p.csv"}, wantErr: "flag provided but not defined"},
		{name: "bad value", argv: []string{"runner", "--jitter", "soon", "p.csv"}, wantErr: "jitter"},
		{name: "schedule flag on run", argv: []string{"runner", "--cron", "@daily", "p.csv"}, wantErr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := parseRunnerCommand(t, tt.argv, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parse %q = %q, %v; want an error with %q", tt.argv, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parse %q = %q, %v; want %q", tt.argv, got, err, tt.want)
			}
		})
	}
}
