package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"

	"runner/journal"
	"runner/kfsim"
)

const twoCerts = "certificate_id,store_id\n" +
	"1001,11111111-1111-4111-8111-111111111111\n" +
	"1002,22222222-2222-4222-8222-222222222222\n"

// Outputs never destroy inputs (issue 8 §1): refused before anything is
// contacted, and the plan (and every other file) is left as it was. The
// symlink cases reach the checks that compare resolved paths, which a
// plain name stops short of at the extension checks.
func TestOutputsThatWouldDestroyAnInputAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string          // empty files made beside the plan first
		links map[string]string // symlinks made beside the plan first: name → target
		args  []string
		want  string
	}{
		{name: "failed plan is the plan", args: []string{"--failed-plan", "plan.csv"}, want: "--failed-plan plan.csv is the plan itself"},
		{name: "failed plan is the plan, spelt ./", args: []string{"--failed-plan", "./plan.csv"}, want: "is the plan itself"},
		{name: "report is the plan", args: []string{"--report", "PLANDIR/plan.csv"}, want: "is the plan itself"},
		{name: "two outputs on one path", args: []string{"--report", "r.csv", "--failed-plan", "./r.csv"}, want: "are the same file"},
		{name: "a report twice", args: []string{"--report", "r.json", "--report", "r.json"}, want: "are the same file"},
		{name: "failed plan that is not CSV", args: []string{"--failed-plan", "f.json"}, want: "its name must end in .csv"},
		{name: "metrics not .prom", args: []string{"--metrics-file", "m.txt"}, want: "only files ending in .prom"},
		{name: "state named like a plan", args: []string{"--state", "plan.csv"}, want: "a state file is a database"},
		{name: "report named like a state file", args: []string{"--state", "s.db", "--report", "s.db"}, want: "unknown extension"},
		{name: "state is the plan, through a symlink", links: map[string]string{"s.db": "plan.csv"},
			args: []string{"--state", "s.db"}, want: "--state s.db is the plan itself: the journal would be written over the plan\nrunner: hint: leave --state out"},
		{name: "report is the state, through a symlink", files: []string{"s.db"}, links: map[string]string{"r.json": "s.db"},
			args: []string{"--state", "s.db", "--report", "r.json"}, want: "--report r.json is the state file: writing it would destroy the journal"},
		{name: "failed plan is the plan, through a symlink", links: map[string]string{"f.csv": "plan.csv"},
			args: []string{"--failed-plan", "f.csv"}, want: "--failed-plan f.csv is the plan itself"},
		{name: "output into a missing directory", args: []string{"--report", "nowhere/r.json"}, want: "directory nowhere does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			planPath := filepath.Join(dir, "plan.csv")
			if err := os.WriteFile(planPath, []byte(twoCerts), 0o600); err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{"plan.csv": true}
			for _, f := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
					t.Fatal(err)
				}
				want[f] = true
			}
			for name, target := range tc.links {
				if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
				want[name] = true
			}
			t.Chdir(dir)
			args := []string{"--simulate"}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "PLANDIR", dir))
			}
			r := runMain(t, context.Background(), append(args, "plan.csv")...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 with %q", r.code, r.stderr, tc.want)
			}
			if got := mustRead(t, planPath); got != twoCerts {
				t.Fatalf("the plan was changed:\n%s", got)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if !want[e.Name()] {
					t.Errorf("file written: %s", e.Name())
				}
			}
			for _, f := range tc.files {
				if got := mustRead(t, filepath.Join(dir, f)); got != "" {
					t.Errorf("%s was written: %q", f, got)
				}
			}
			for name, target := range tc.links {
				if got, err := os.Readlink(filepath.Join(dir, name)); err != nil || got != target {
					t.Errorf("symlink %s → %s became %q (%v)", name, target, got, err)
				}
			}
		})
	}
}

// On every exit code each --report still gets a report (issue 8 §1): a
// plan error lists the rows that parsed at stage plan; a held lock says so.
func TestReportsAreWrittenOnEveryExitCode(t *testing.T) {
	dir := t.TempDir()
	t.Run("plan error", func(t *testing.T) {
		bad := writePlan(t, twoCerts+"abc,33333333-3333-4333-8333-333333333333\n")
		out := filepath.Join(dir, "plan-error.json")
		r := runMain(t, context.Background(), "--simulate", "--report", out, bad)
		if r.code != exitUsage {
			t.Fatalf("exit %d", r.code)
		}
		rep := readReport(t, out)
		if rep.Run.NotRun == nil || !strings.Contains(*rep.Run.NotRun, "plan error") || rep.Run.ExitCode != exitUsage {
			t.Errorf("not_run %v exit %d", rep.Run.NotRun, rep.Run.ExitCode)
		}
		if len(rep.Rows) != 2 || rep.Rows[0].Stage != "plan" || rep.Rows[0].Status != "failed" || !strings.Contains(rep.Rows[0].Detail, "not run") {
			t.Errorf("rows that parsed must be listed at stage plan: %+v", rep.Rows)
		}
	})
	t.Run("configuration error", func(t *testing.T) {
		t.Setenv("KEYFACTOR_HOSTNAME", "http://command.example.com")
		t.Setenv("KEYFACTOR_USERNAME", "u")
		t.Setenv("KEYFACTOR_PASSWORD", "p")
		out := filepath.Join(dir, "config-error.json")
		r := runMain(t, context.Background(), "--report", out, "--state", filepath.Join(dir, "s.db"), writePlan(t, twoCerts))
		if r.code != exitUsage || !strings.Contains(r.stderr, "plain http is only allowed for loopback") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if rep := readReport(t, out); rep.Run.NotRun == nil || !strings.Contains(*rep.Run.NotRun, "configuration error") || len(rep.Rows) != 2 {
			t.Errorf("report: %+v", rep)
		}
	})
	// Mistakes in flags and settings that readInvocation finds: the run
	// does not happen, and the report and the webhook still say why.
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{name: "KEYFACTOR_HOSTNAME not set", env: map[string]string{"KEYFACTOR_HOSTNAME": ""}, want: "no Command server: KEYFACTOR_HOSTNAME (or --hostname) is not set"},
		{name: "unreadable --password-file", args: []string{"--password-file", filepath.Join(dir, "no-such-password")}, want: "--password-file: open " + filepath.Join(dir, "no-such-password")},
		{name: "bad --drift", args: []string{"--simulate", "--drift", "sometimes"}, want: `--drift: unknown mode "sometimes"`},
		{name: "bad --renew-before", args: []string{"--simulate", "--renew-before", "30x"}, want: "--renew-before: "},
		{name: "--shard-count outside an Indexed Job", env: map[string]string{"JOB_COMPLETION_INDEX": ""}, args: []string{"--simulate", "--shard-count", "3"},
			want: `--shard-count 3: JOB_COMPLETION_INDEX is ""`},
	} {
		t.Run("setting: "+tc.name, func(t *testing.T) {
			p := writePlan(t, twoCerts)
			newSimEnv(t, p)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			hook := newWebhook(t)
			out := filepath.Join(t.TempDir(), "r.json")
			r := runMain(t, context.Background(), append(append([]string{"--report", out, "--notify-webhook", hook.url}, tc.args...), p)...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "runner: error:") != 1 {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 2 and %q, said once", r.code, r.stderr, tc.want)
			}
			rep := readReport(t, out)
			if rep.Run.NotRun == nil || !strings.Contains(*rep.Run.NotRun, "configuration error: "+tc.want) || rep.Run.ExitCode != exitUsage {
				t.Errorf("not_run %v exit %d, want the configuration error and 2", rep.Run.NotRun, rep.Run.ExitCode)
			}
			if rep.Run.Command != "run" || rep.Run.DryRun || len(rep.Rows) != 2 || rep.Rows[0].Stage != "plan" || !strings.Contains(rep.Rows[0].Detail, "not run") {
				t.Errorf("report: command %q dry run %v, rows %+v", rep.Run.Command, rep.Run.DryRun, rep.Rows)
			}
			// Notify returns only after its post was answered.
			if posts := hook.posts(); len(posts) != 1 {
				t.Errorf("%d webhook posts for a run that did not happen, want 1", len(posts))
			} else if m := posts[0]; m["outcome"] != "not_run" || !strings.Contains(fmt.Sprint(m["not_run"]), tc.want) {
				t.Errorf("webhook: %v", m)
			}
		})
	}
	// `runner plan` that does not happen says so as a dry run of the plan
	// command, not as a run.
	t.Run("plan command", func(t *testing.T) {
		for _, args := range [][]string{
			{"--drift", "sometimes", writePlan(t, twoCerts)},
			{writePlan(t, twoCerts+"abc,33333333-3333-4333-8333-333333333333\n")},
		} {
			out := filepath.Join(t.TempDir(), "r.json")
			r := runMain(t, context.Background(), append([]string{"plan", "--simulate", "--report", out}, args...)...)
			if r.code != exitUsage {
				t.Fatalf("%v: exit %d\n%s", args, r.code, r.stderr)
			}
			if rep := readReport(t, out); rep.Run.NotRun == nil || rep.Run.Command != "plan" || !rep.Run.DryRun {
				t.Errorf("%v: command %q dry run %v not_run %v, want plan, a dry run, not run", args, rep.Run.Command, rep.Run.DryRun, rep.Run.NotRun)
			}
		}
	})
	t.Run("lock held", func(t *testing.T) {
		p := writePlan(t, twoCerts)
		env := newSimEnv(t, p)
		first := runMain(t, context.Background(), p)
		if first.code != exitOK {
			t.Fatalf("first run: %d %s", first.code, first.stderr)
		}
		entries, _ := os.ReadDir(env.stateDir)
		if len(entries) == 0 {
			t.Fatal("no state file in RUNNER_STATE_DIR")
		}
		statePath := filepath.Join(env.stateDir, entries[0].Name())
		holder, err := journal.Open(statePath, journal.Options{Command: env.url + "/KeyfactorAPI"})
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Close()
		out := filepath.Join(dir, "locked.json")
		r := runMain(t, context.Background(), "--report", out, "--state", statePath, p)
		if r.code != exitLocked || !strings.Contains(r.stderr, "locked by pid") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if rep := readReport(t, out); rep.Run.NotRun == nil || !strings.Contains(*rep.Run.NotRun, "another run holds the lock") || rep.Run.ExitCode != exitLocked {
			t.Errorf("report: %+v", rep.Run)
		}
	})
}

// asyncMain is Main running in the background until stopped.
type asyncMain struct {
	cancel context.CancelFunc
	done   chan result
}

func runMainAsync(t *testing.T, args ...string) *asyncMain {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &asyncMain{cancel: cancel, done: make(chan result, 1)}
	go func() {
		var out, errOut strings.Builder
		code := Main(ctx, append([]string{"runner"}, args...), &syncWriter{w: &out}, &syncWriter{w: &errOut})
		a.done <- result{code, out.String(), errOut.String()}
	}()
	return a
}

func (a *asyncMain) stop(t *testing.T) result {
	t.Helper()
	a.cancel()
	select {
	case r := <-a.done:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("the background run did not stop")
		return result{}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// The journal is one per Command, not per plan: the failed plan, rerun as
// the README says, sees the lineage of the nightly plan, deploys the
// renewal the first run left undeployed and renews nothing twice (issue 6
// §2).
func TestFailedPlanRerunSharesTheJournal(t *testing.T) {
	dir := t.TempDir()
	planPath := filepath.Join(dir, "plan.csv")
	if err := os.WriteFile(planPath, []byte(twoCerts), 0o600); err != nil {
		t.Fatal(err)
	}
	env := newSimEnv(t, planPath)
	// The first Deploy goes through and every later one gets a proxy's 400
	// page, which is not retried: with one renew→deploy pair at a time,
	// exactly one certificate is renewed and deployed and the other renewed
	// and left undeployed, its staging window still open for the rerun
	// (a fault that lasted until the window closed would leave a renewal
	// that can no longer be deployed, and the rerun would rightly renew
	// again). Which certificate is which depends on which worker takes the
	// place first, so it is read from the report.
	env.sim.SetFaults(mustParseFault(t, "deploy:html-error:status=400,skip=1"))
	failed, firstReport := filepath.Join(dir, "failed.csv"), filepath.Join(dir, "first.json")
	r := runMain(t, context.Background(), "--concurrency", "1", "--report", firstReport, "--failed-plan", failed, planPath)
	if r.code != exitRowsFailed {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	var failedCert, newID int
	for _, row := range readReport(t, firstReport).Rows {
		if row.Status != "failed" {
			continue
		}
		if failedCert != 0 || row.Stage != "deploy" || row.NewCertificateID == nil {
			t.Fatalf("want one row failed at deploy with its new certificate, got line %d: %s at %s (new %v): %s", row.Line, row.Status, row.Stage, row.NewCertificateID, row.Detail)
		}
		failedCert, newID = row.CertificateID, *row.NewCertificateID
	}
	if failedCert == 0 {
		t.Fatal("the first run failed no row")
	}
	deploysBefore := len(env.sim.Ledger().Deploys)

	env.sim.SetFaults()
	rerunReport := filepath.Join(dir, "rerun.json")
	if r = runMain(t, context.Background(), "--report", rerunReport, failed); r.code != exitOK {
		t.Fatalf("rerun of the failed plan: exit %d\n%s", r.code, r.stderr)
	}
	rows := readReport(t, rerunReport).Rows
	if len(rows) != 1 || rows[0].CertificateID != failedCert || rows[0].Status != "succeeded" || rows[0].NewCertificateID == nil || *rows[0].NewCertificateID != newID {
		t.Errorf("rerun rows %+v: want certificate %d succeeded with the first run's new certificate %d", rows, failedCert, newID)
	}
	l := env.sim.Ledger()
	if n := len(l.Renewals); n != 2 {
		t.Errorf("%d renewals over both runs, want one of each certificate", n)
	}
	for _, id := range []int{1001, 1002} {
		if n := env.renewals()[id]; n != 1 {
			t.Errorf("certificate %d renewed %d times over both runs, want once", id, n)
		}
	}
	deployed := false
	for _, d := range l.Deploys[deploysBefore:] {
		if d.CertificateId == newID && len(d.Successful) == 1 && d.Refused == "" {
			deployed = true
		}
	}
	if !deployed {
		t.Errorf("the rerun did not deploy %d, the first run's renewal of %d: %+v", newID, failedCert, l.Deploys[deploysBefore:])
	}
	// Without a state file beside either plan: one journal, the one the
	// state directory holds for this Command.
	want, err := journal.DefaultPath(env.url + env.sim.BasePath())
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(env.stateDir); len(entries) != 1 || filepath.Join(env.stateDir, entries[0].Name()) != want {
		t.Errorf("state directory holds %v, want only %s", entries, filepath.Base(want))
	}
	for _, p := range []string{planPath + ".state", failed + ".state"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a per-plan state file %s was created", p)
		}
	}
}

func mustParseFault(t *testing.T, spec string) kfsim.FaultRule {
	t.Helper()
	r, err := kfsim.ParseFault(spec)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A comma inside a repeatable flag's value is part of the value (the
// README's own --fault example, a report path with a comma).
func TestRepeatableFlagsKeepCommas(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "night,1.json")
	r := runMain(t, context.Background(), "--simulate", "--report", out, examplePlan)
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("the report path was split at its comma: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // sim returns at once once it parsed its flags and started
	r = runMain(t, ctx, "sim", "--listen", "127.0.0.1:0", "--fault", "deploy:429:times=3,retry-after=1s", "--fault", "renew:drop-after:times=1")
	if r.code != exitOK {
		t.Errorf("sim refused the README's fault example: exit %d: %s", r.code, r.stderr)
	}
}

func TestVersionAndHelp(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		r := runMain(t, context.Background(), args...)
		if r.code != exitOK || !strings.HasPrefix(r.stdout, "runner ") || !strings.Contains(r.stdout, "go1.") {
			t.Errorf("%v: exit %d, %q", args, r.code, r.stdout)
		}
	}
	r := runMain(t, context.Background(), "help")
	if r.code != exitOK || !strings.Contains(r.stdout, "schedule") {
		t.Errorf("help: exit %d\n%s", r.code, r.stdout)
	}
	// plan --help lists the flags of a dry run only.
	r = runMain(t, context.Background(), "plan", "--help")
	for _, absent := range []string{"--failed-plan", "--verify", "--window", "--notify-webhook", "--metrics-file", "--max-renewals", "--jitter"} {
		if strings.Contains(r.stdout, absent) {
			t.Errorf("plan --help lists %s, which means nothing in a dry run", absent)
		}
	}
	for _, present := range []string{"--simulate", "--report", "--force", "--drift"} {
		if !strings.Contains(r.stdout, present) {
			t.Errorf("plan --help lacks %s", present)
		}
	}
	r = runMain(t, context.Background(), "schedule", "--help")
	if !strings.Contains(r.stdout, "Example:") || !strings.Contains(r.stdout, "next runs") {
		t.Errorf("schedule --help has no example:\n%s", r.stdout)
	}
}

// Hints follow the cause (issue 11 §3).
func TestHintsFollowTheCause(t *testing.T) {
	p := writePlan(t, twoCerts)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, e *simEnv)
		want  string
	}{
		{"wrong API path", func(t *testing.T, e *simEnv) {
			t.Setenv("KEYFACTOR_API_PATH", "Keyfactor/API")
			e.unknownRoutesOK = true
		}, "check KEYFACTOR_API_PATH"},
		{"wrong password", func(t *testing.T, e *simEnv) { t.Setenv("KEYFACTOR_PASSWORD", "not-it") }, "Command refused the credentials"},
		{"busy", func(t *testing.T, e *simEnv) { e.sim.SetFaults(mustParseFault(t, "status:503")) }, "Command is busy"},
		{"failing", func(t *testing.T, e *simEnv) { e.sim.SetFaults(mustParseFault(t, "status:500")) }, "Command failed internally"},
		{"403", func(t *testing.T, e *simEnv) { e.sim.SetFaults(mustParseFault(t, "status:html-error:status=403")) }, "the user lacks a permission in Command"},
		{"untrusted TLS", func(t *testing.T, e *simEnv) {
			srv := httptest.NewUnstartedServer(e.sim)
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
			srv.StartTLS()
			t.Cleanup(srv.Close)
			t.Setenv("KEYFACTOR_HOSTNAME", srv.URL)
		}, "Command's TLS certificate is not trusted here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSimEnv(t, p)
			tc.setup(t, e)
			r := runMain(t, context.Background(), p)
			if r.code != exitPreflight || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 3 and %q", r.code, r.stderr, tc.want)
			}
			if strings.Count(r.stderr, "runner: error:") != 1 {
				t.Errorf("a preflight failure prints one block:\n%s", r.stderr)
			}
			if strings.Contains(r.stdout, "LINE") {
				t.Errorf("a preflight failure prints no table of rows:\n%s", r.stdout)
			}
		})
	}
}

// A night with nothing due prints nothing when not on a terminal: cron
// mails whatever a job prints (issue 9 §3).
func TestQuietWhenNothingHappened(t *testing.T) {
	p := writePlan(t, twoCerts)
	newSimEnv(t, p, func(_ *kfsim.Options, f *kfsim.Fixture) {
		for i := range f.Certificates {
			f.Certificates[i].NotAfter = time.Now().Add(200 * 24 * time.Hour)
		}
	})
	r := runMain(t, context.Background(), p)
	if r.code != exitOK || r.stdout != "" || r.stderr != "" {
		t.Errorf("exit %d; stdout %q; stderr %q: want nothing at all", r.code, r.stdout, r.stderr)
	}
}

// --quiet prints failures only: a night that renewed everything (which
// without --quiet prints its summary and log lines) prints nothing, and a
// failing one prints the counts and the failed row, not the row that
// succeeded.
func TestQuietPrintsOnlyFailures(t *testing.T) {
	p := writePlan(t, twoCerts)
	e := newSimEnv(t, p)
	r := runMain(t, context.Background(), "--quiet", p)
	if r.code != exitOK || r.stdout != "" || r.stderr != "" {
		t.Errorf("renewing night: exit %d; stdout %q; stderr %q: want nothing at all", r.code, r.stdout, r.stderr)
	}
	if got := e.renewals(); got[1001] != 1 || got[1002] != 1 {
		t.Fatalf("renewals %v: the night was to renew both", got)
	}

	failing := writePlan(t, "certificate_id,store_id,password\n"+
		"1001,11111111-1111-4111-8111-111111111111,\n"+
		"1002,22222222-2222-4222-8222-222222222222,env:RUNNER_TEST_NEVER_SET\n")
	newSimEnv(t, failing)
	r = runMain(t, context.Background(), "--quiet", failing)
	if r.code != exitRowsFailed || !strings.Contains(r.stdout, "2 rows: 1 succeeded, 1 failed") {
		t.Fatalf("failing night: exit %d\nstdout %s", r.code, r.stdout)
	}
	var rows []string
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 1 && (f[1] == "1001" || f[1] == "1002") {
			rows = append(rows, line)
		}
	}
	if len(rows) != 1 || !strings.HasPrefix(rows[0], "3 ") || !strings.Contains(rows[0], "failed") {
		t.Errorf("rows printed %q, want only line 3 (1002), the failed one:\n%s", rows, r.stdout)
	}
	if strings.Contains(r.stdout, "renewed ") || strings.Contains(r.stderr, "renewed and deployed") {
		t.Errorf("--quiet printed what succeeded:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
}

// A run that renews prints its summary and its per-certificate log lines.
func TestARunThatRenewedIsNotQuiet(t *testing.T) {
	p := writePlan(t, twoCerts)
	newSimEnv(t, p)
	r := runMain(t, context.Background(), p)
	if r.code != exitOK || !strings.Contains(r.stdout, "2 rows: 2 succeeded") || !strings.Contains(r.stderr, "renewed and deployed") {
		t.Errorf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
}

// --rate R is a limiter of R requests a second with a burst of one (a
// burst of R would let a run start at twice the rate); 0 is no limiter.
func TestRequestLimiter(t *testing.T) {
	if l := requestLimiter(0); l != nil {
		t.Errorf("--rate 0: limiter %v, want none", l)
	}
	for _, r := range []float64{0.5, 10, 250} {
		if l := requestLimiter(r); l == nil || l.Limit() != rate.Limit(r) || l.Burst() != 1 {
			t.Errorf("--rate %g: limiter %+v, want limit %g and burst 1", r, l, r)
		}
	}
}

// --rate reaches the client that every request goes through. Without a
// clock: at one request per 10,000 seconds in a run given an hour, the
// first request spends the only token, and the limiter refuses the second
// at once because its wait would pass the deadline; Command sees one
// request.
func TestRateIsWiredToTheClient(t *testing.T) {
	p := writePlan(t, twoCerts)
	e := newSimEnv(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	r := runMain(t, ctx, "--rate", "0.0001", p)
	if r.code != exitPreflight || !strings.Contains(r.stderr, "wait for rate limit") {
		t.Errorf("exit %d, want 3 with the limiter's refusal:\n%s", r.code, r.stderr)
	}
	if n := len(e.sim.Ledger().Requests); n != 1 {
		t.Errorf("%d requests reached Command, want 1", n)
	}
}

// The webhook gets a JSON summary with a text field on failure, and
// nothing on success unless --notify always.
func TestNotifyWebhook(t *testing.T) {
	hook := newWebhook(t)
	failing := writePlan(t, "certificate_id,store_id,password\n1001,11111111-1111-4111-8111-111111111111,env:RUNNER_TEST_NEVER_SET\n")
	if r := runMain(t, context.Background(), "--simulate", "--notify-webhook", hook.url, failing); r.code != exitRowsFailed {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r := runMain(t, context.Background(), "--simulate", "--notify-webhook", hook.url, examplePlan); r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got := hook.posts(); len(got) != 1 || !strings.Contains(got[0]["text"].(string), "failed") {
		t.Errorf("posts: %v, want one for the failing run", got)
	}
	if r := runMain(t, context.Background(), "--simulate", "--notify-webhook", hook.url, "--notify", "always", examplePlan); r.code != exitOK {
		t.Fatalf("exit %d", r.code)
	}
	if got := hook.posts(); len(got) != 2 {
		t.Errorf("--notify always: %d posts, want 2", len(got))
	}
}

// webhook is a --notify-webhook endpoint that keeps every JSON body
// posted to it.
type webhook struct {
	url string
	mu  sync.Mutex
	got []map[string]any
}

func newWebhook(t *testing.T) *webhook {
	t.Helper()
	h := &webhook{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.got = append(h.got, m)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// posts are the bodies posted so far.
func (h *webhook) posts() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// renewedAs makes the world one in which certificate old was renewed as
// newID before the test (by a runner whose journal the test writes): newID,
// valid for a year, holds old's places in the stores.
func renewedAs(old, newID int) func(*kfsim.Options, *kfsim.Fixture) {
	return func(_ *kfsim.Options, f *kfsim.Fixture) {
		for i, c := range f.Certificates {
			if c.Id != old {
				continue
			}
			c.Id, c.Thumbprint, c.SerialNumber = newID, "", ""
			c.NotBefore, c.NotAfter = time.Now().Add(-24*time.Hour), time.Now().Add(365*24*time.Hour)
			f.Certificates[i].Locations = nil
			f.Certificates = append(f.Certificates, c)
			return
		}
		panic(fmt.Sprintf("no certificate %d in the fixture", old))
	}
}

// The old layout kept a state file beside each plan. It is imported into
// the shared journal, once, and said so; the run goes on from it: 1001,
// renewed as 5001 by the old layout, is not renewed again.
func TestLegacyStateBesideThePlanIsImported(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "plan.csv")
	if err := os.WriteFile(p, []byte(twoCerts), 0o600); err != nil {
		t.Fatal(err)
	}
	writeLegacyState(t, p+".state", 1001, 5001)
	e := newSimEnv(t, p, renewedAs(1001, 5001))
	r := runMain(t, context.Background(), p)
	if r.code != exitOK {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "imported the old per-plan state file") {
		t.Errorf("no word of the import:\n%s", r.stderr)
	}
	if _, err := os.Stat(p + ".state"); err == nil {
		t.Error("the old state file is still there to be imported again")
	}
	if got := e.renewals(); got[1001] != 0 || got[1002] != 1 {
		t.Errorf("renewals %v: want 1002 renewed and 1001 (already renewed as 5001) not", got)
	}
	path, err := journal.DefaultPath(e.url + e.sim.BasePath())
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(path, journal.Options{Command: e.url + e.sim.BasePath()})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	lin, ok, err := j.Lineage(1001)
	latest, _ := lin.Latest()
	// The request id is the old file's: an adoption of 5001 from the
	// stores would have none.
	if err != nil || !ok || latest.Kind != journal.KindRenewal || latest.NewCertificateID != 5001 || latest.RequestID != 90001 {
		t.Errorf("journal lineage of 1001: %+v (found %v, %v), want the imported renewal as 5001, request 90001", lin, ok, err)
	}
}

// A state file of the old format named with --state is upgraded in place
// when it is opened; the run says so, once, as a warning (which a quiet
// night still prints).
func TestOldStateFileIsUpgradedAndSaidSo(t *testing.T) {
	p := writePlan(t, twoCerts)
	state := filepath.Join(t.TempDir(), "old.db")
	writeLegacyState(t, state, 1001, 5001)
	newSimEnv(t, p, renewedAs(1001, 5001))
	r := runMain(t, context.Background(), "--state", state, p)
	if r.code != exitOK || !strings.Contains(r.stderr, "upgraded the state file in place") || !strings.Contains(r.stderr, "runner.journal/v1") ||
		!strings.Contains(r.stderr, `"level":"WARN"`) {
		t.Errorf("exit %d, want 0 and a warning of the upgrade:\n%s", r.code, r.stderr)
	}
	if r = runMain(t, context.Background(), "--state", state, p); strings.Contains(r.stderr, "upgraded") {
		t.Errorf("a file upgraded once is upgraded again:\n%s", r.stderr)
	}
}

// Skip-verify warns on every run; plain http is refused for any host but
// loopback.
func TestTransportSafety(t *testing.T) {
	p := writePlan(t, twoCerts)
	t.Setenv("KEYFACTOR_USERNAME", "u")
	t.Setenv("KEYFACTOR_PASSWORD", "p")
	t.Setenv("KEYFACTOR_HOSTNAME", "http://10.1.2.3")
	if r := runMain(t, context.Background(), "--state", filepath.Join(t.TempDir(), "s.db"), p); r.code != exitUsage || !strings.Contains(r.stderr, "plain http is only allowed for loopback") {
		t.Errorf("http to a remote host: exit %d %s", r.code, r.stderr)
	}
	newSimEnv(t, p)
	t.Setenv("KEYFACTOR_SKIP_VERIFY", "true")
	for range 2 {
		if r := runMain(t, context.Background(), p); !strings.Contains(r.stderr, "TLS certificate verification is off") {
			t.Errorf("no skip-verify warning:\n%s", r.stderr)
		}
	}
	// The warning of `runner sim` on an address beyond loopback is decided
	// by isLoopbackHost (simtls_test.go): listening on all interfaces to
	// see it would open the simulator to the network for the test.
}

// writeLegacyState writes a state file in the old per-plan layout
// (runner.journal/v1): certificate old renewed as newID, deployed to one
// store.
func writeLegacyState(t *testing.T, path string, old, newID int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Now().Add(-24 * time.Hour).UTC()
	list, _ := json.Marshal([]map[string]any{{
		"key": fmt.Sprintf("id:%d", old), "old_certificate_id": old, "subject": "CN=old", "started_at": at,
		"new_certificate_id": newID, "request_id": 90001, "renewed_at": at,
		"stores": map[string]any{"11111111-1111-4111-8111-111111111111": map[string]any{"status": "job-created", "at": at}},
	}})
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("schema"), []byte("runner.journal/v1")); err != nil {
			return err
		}
		r, err := tx.CreateBucket([]byte("renewals"))
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket([]byte("runs")); err != nil {
			return err
		}
		return r.Put([]byte(fmt.Sprintf("id:%d", old)), list)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestShardFlags(t *testing.T) {
	for _, tc := range []struct {
		spec  string
		count int
		index string
		want  string // "I/N", or the error
	}{
		{spec: "2/3", want: "2/3"},
		{spec: " 1 / 1 ", want: "1/1"},
		{spec: "4/3", want: "expected I/N with 1 ≤ I ≤ N"},
		{spec: "0/3", want: "expected I/N"},
		{spec: "two/3", want: "expected I/N"},
		{count: 4, index: "0", want: "1/4"},
		{count: 4, index: "3", want: "4/4"},
		{count: 4, index: "4", want: "JOB_COMPLETION_INDEX is \"4\", expected 0 to 3"},
		{count: 4, index: "", want: "Indexed Job"},
		{spec: "1/2", count: 2, index: "0", want: "both given"},
		{want: "0/0"},
	} {
		s, err := shardOf(tc.spec, tc.count, tc.index)
		got := s.String()
		if err != nil {
			got = err.Error() + " " + hintFor(err)
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("shardOf(%q, %d, %q) = %q, want %q", tc.spec, tc.count, tc.index, got, tc.want)
		}
	}
}

// --progress always draws the bar on stderr even off a terminal; the
// default draws nothing there.
func TestProgressBar(t *testing.T) {
	r := runMain(t, context.Background(), "--simulate", "--progress", "always", examplePlan)
	if r.code != exitOK || !strings.Contains(r.stderr, "/25, ") {
		t.Errorf("exit %d, no bar on stderr:\n%s", r.code, r.stderr)
	}
	r = runMain(t, context.Background(), "--simulate", examplePlan)
	if strings.Contains(r.stderr, "/25, ") {
		t.Errorf("a bar off a terminal:\n%s", r.stderr)
	}
}

// A run that happened but could not write an output keeps its own exit
// code, never 2 ("nothing was contacted"): 1 when rows failed, and 1 when
// every row succeeded. The file is named once, with what to do next, and
// the other outputs are written. A directory where the report goes passes
// the checks made before the run and fails the write after it.
func TestAnOutputThatCannotBeWrittenAfterTheRun(t *testing.T) {
	failing := writePlan(t, "certificate_id,store_id,password\n"+
		"1001,11111111-1111-4111-8111-111111111111,\n"+
		"1002,22222222-2222-4222-8222-222222222222,env:RUNNER_TEST_NEVER_SET\n")
	for _, tc := range []struct {
		name, plan string
		counts     map[string]int
		exit       int // of the run itself, as the report that was written says
		command    string
		hint       string
	}{
		{"every row succeeded", examplePlan, map[string]int{"succeeded": 25, "failed": 0, "skipped": 0}, exitOK, "run", "the run itself went ahead"},
		{"rows failed", failing, map[string]int{"succeeded": 1, "failed": 1, "skipped": 0}, exitRowsFailed, "run", "the run itself went ahead"},
		{"a dry run", examplePlan, map[string]int{"succeeded": 0, "failed": 0, "skipped": 25}, exitOK, "plan", "the dry run itself went ahead"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bad, good := filepath.Join(dir, "r.json"), filepath.Join(dir, "good.json")
			if err := os.Mkdir(bad, 0o700); err != nil {
				t.Fatal(err)
			}
			r := runMain(t, context.Background(), tc.command, "--simulate", "--report", bad, "--report", good, tc.plan)
			if r.code != exitRowsFailed {
				t.Errorf("exit %d, want 1\n%s", r.code, r.stderr)
			}
			// Said once, not wrapped at every boundary ("write report r.json:
			// write report r.json: …").
			if n := strings.Count(r.stderr, "write report"); n != 1 || !strings.Contains(r.stderr, "runner: error: write report "+bad+":") {
				t.Errorf("want one error naming %s:\n%s", bad, r.stderr)
			}
			if !strings.Contains(r.stderr, "runner: hint: "+tc.hint) {
				t.Errorf("no word of what to do next:\n%s", r.stderr)
			}
			rep := readReport(t, good)
			if rep.Run.NotRun != nil || rep.Run.ExitCode != tc.exit || fmt.Sprint(rep.Run.Counts) != fmt.Sprint(tc.counts) {
				t.Errorf("the report that was written: not_run %v exit %d counts %v, want the run's own (%d, %v)", rep.Run.NotRun, rep.Run.ExitCode, rep.Run.Counts, tc.exit, tc.counts)
			}
		})
	}
}

// --password-file holds the password without its line end: the run
// authenticates with it (the ledger names the identity) even with a wrong
// KEYFACTOR_PASSWORD beside it. A file that is not there stops the run
// before Command is contacted, naming the flag, the file and the way out.
func TestPasswordFile(t *testing.T) {
	p := writePlan(t, twoCerts)
	e := newSimEnv(t, p)
	t.Setenv("KEYFACTOR_PASSWORD", "not-it")
	file := filepath.Join(t.TempDir(), "keyfactor-password")
	if err := os.WriteFile(file, []byte(simPassword+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runMain(t, context.Background(), "--password-file", file, p); r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	l := e.sim.Ledger()
	if len(l.Renewals) != 2 {
		t.Errorf("%d renewals, want 2", len(l.Renewals))
	}
	for _, rn := range l.Renewals {
		if rn.Identity != simDomain+`\`+simUsername {
			t.Errorf("renewal of %d by %q", rn.OldCertificateId, rn.Identity)
		}
	}
	requests := len(l.Requests)
	missing := filepath.Join(t.TempDir(), "no-such-file")
	r := runMain(t, context.Background(), "--password-file", missing, p)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--password-file: open "+missing+": no such file") || !strings.Contains(r.stderr, "or set KEYFACTOR_PASSWORD") {
		t.Errorf("exit %d, want 2 naming the file:\n%s", r.code, r.stderr)
	}
	if n := len(e.sim.Ledger().Requests); n != requests {
		t.Errorf("%d requests sent with no password", n-requests)
	}
	// An empty file is a mistake (a secret not yet written), not an empty
	// password: refused before anything is sent.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runMain(t, context.Background(), "--password-file", empty, p)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--password-file: file "+empty+" is empty") {
		t.Errorf("empty file: exit %d, want 2 naming it:\n%s", r.code, r.stderr)
	}
	if n := len(e.sim.Ledger().Requests); n != requests {
		t.Errorf("%d requests sent with an empty password file", n-requests)
	}
}

// Run flags refused before anything is contacted (exit 2), each naming
// itself and what it got.
func TestRunFlagsRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--wait-lock", "-1s"}, "--wait-lock: must not be negative, got -1s"},
		{[]string{"--rate", "-1"}, "--rate: must be 0 (unlimited) or more, got -1"},
		{[]string{"--job-time", "2026-11-24 02:00"}, `--job-time: not an ISO 8601 UTC time: "2026-11-24 02:00"`},
		{[]string{"--job-time", "tomorrow"}, "not an ISO 8601 UTC time"},
		{[]string{"--job-time", "2001-01-01T00:00:00Z"}, "--job-time 2001-01-01T00:00:00Z is in the past"},
	} {
		r := runMain(t, context.Background(), append(append([]string{"--simulate"}, tc.args...), examplePlan)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, want 2 and %q:\n%s", tc.args, r.code, tc.want, r.stderr)
		}
	}
}

// --job-time reaches every Deploy, in UTC whatever offset it was written
// with; a past one is accepted with --allow-past-job-time.
func TestJobTime(t *testing.T) {
	future := time.Now().Add(48 * time.Hour).Truncate(time.Second).UTC()
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		args []string
		want time.Time
	}{
		{[]string{"--job-time", future.In(time.FixedZone("", 2*60*60)).Format(time.RFC3339)}, future},
		{[]string{"--allow-past-job-time", "--job-time", past.Format(time.RFC3339)}, past},
	} {
		p := writePlan(t, twoCerts)
		e := newSimEnv(t, p)
		if r := runMain(t, context.Background(), append(tc.args, p)...); r.code != exitOK {
			t.Fatalf("%v: exit %d\n%s", tc.args, r.code, r.stderr)
		}
		deploys := e.sim.Ledger().Deploys
		if len(deploys) != 2 {
			t.Errorf("%v: %d deploys, want 2", tc.args, len(deploys))
		}
		for _, d := range deploys {
			if d.JobTime == nil || !d.JobTime.Equal(tc.want) {
				t.Errorf("%v: deploy of %d with job time %v, want %s", tc.args, d.CertificateId, d.JobTime, tc.want)
			}
		}
	}
}

// Off a terminal the log gate holds info records and lets warnings through
// at once; opening it releases what it held in order, the oldest dropped
// past maxHeld, and later records pass. Closed again (the next scheduled
// run), an error opens it: the held record comes out before the error.
func TestLogGateHoldsInfoUntilNews(t *testing.T) {
	var buf strings.Builder
	log, gate, err := newLogger("json", "info", &buf, false)
	if err != nil {
		t.Fatal(err)
	}
	lines := func() []map[string]any {
		t.Helper()
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			out = append(out, m)
		}
		buf.Reset()
		return out
	}
	for i := range maxHeld + 2 {
		log.Info("held", "i", i)
	}
	if buf.Len() != 0 {
		t.Fatalf("info records passed a closed gate:\n%.300s", buf.String())
	}
	log.Warn("warning")
	if got := lines(); len(got) != 1 || got[0]["msg"] != "warning" {
		t.Fatalf("want the warning alone at once, got %v", got)
	}
	gate.open()
	got := lines()
	if len(got) != maxHeld {
		t.Fatalf("%d records released, want the last %d held", len(got), maxHeld)
	}
	for k, m := range got {
		if m["msg"] != "held" || m["i"] != float64(k+2) {
			t.Fatalf("record %d released: %v, want held i=%d (in order, the two oldest dropped)", k, m, k+2)
		}
	}
	log.Info("after")
	if got := lines(); len(got) != 1 || got[0]["msg"] != "after" {
		t.Errorf("an open gate held a record: %v", got)
	}
	gate.close()
	log.Info("before the error")
	log.Error("error")
	if got := lines(); len(got) != 2 || got[0]["msg"] != "before the error" || got[1]["msg"] != "error" {
		t.Errorf("an error after a held record: %v, want both, in order", got)
	}
}
