package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"runner/journal"
	"runner/kfsim"
	"runner/plan"
)

// The command line is run in-process (Main) against a simulator over real
// HTTP: --simulate for the demo path, or a kfsim.Server on httptest with
// the KEYFACTOR_* environment pointing at it, which is how an operator
// runs it. binary_test.go runs the built binary for what needs a process
// (signals, SIGKILL).

const examplePlan = "examples/plan.csv"

type result struct {
	code           int
	stdout, stderr string
}

func runMain(t *testing.T, ctx context.Context, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(ctx, append([]string{"runner"}, args...), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func writePlan(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plan.csv")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Distinctive credentials, so a test can look for them everywhere.
const (
	simDomain   = "CORP"
	simUsername = "svc-cli-test"
	simPassword = "pw-Zq8vLk2-distinctive"
)

// simEnv is a simulator on loopback seeded from a plan, with the
// environment of an operator pointed at it and a state directory of its
// own.
type simEnv struct {
	sim      *kfsim.Server
	url      string
	stateDir string
	// unknownRoutesOK is set by a test that sends runner to the wrong API
	// path on purpose.
	unknownRoutesOK bool
}

func newSimEnv(t *testing.T, planPath string, edit ...func(*kfsim.Options, *kfsim.Fixture)) *simEnv {
	t.Helper()
	p, err := plan.Load(planPath, plan.Options{AllowPlainPasswords: true, AllowPastJobTime: true})
	if err != nil {
		t.Fatalf("seed from %s: %v", planPath, err)
	}
	opts := kfsim.Options{JobDelay: -1, Seed: 7}
	fx := fixtureFromPlan(p, time.Now())
	fx.Users = []kfsim.User{{Username: simUsername, Domain: simDomain, Password: simPassword, Permissions: fullPermissions()}}
	for _, e := range edit {
		e(&opts, &fx)
	}
	sim := kfsim.New(opts)
	if err := sim.Load(fx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	e := &simEnv{sim: sim, url: srv.URL, stateDir: t.TempDir()}
	t.Cleanup(func() {
		if !e.unknownRoutesOK {
			sim.CheckNoUnknownRoutes(t)
		}
	})
	t.Setenv("KEYFACTOR_HOSTNAME", srv.URL)
	t.Setenv("KEYFACTOR_API_PATH", sim.BasePath())
	t.Setenv("KEYFACTOR_USERNAME", simUsername)
	t.Setenv("KEYFACTOR_DOMAIN", simDomain)
	t.Setenv("KEYFACTOR_PASSWORD", simPassword)
	t.Setenv("RUNNER_STATE_DIR", e.stateDir)
	return e
}

// renewals counts the ledger's renewals of each certificate.
func (e *simEnv) renewals() map[int]int {
	out := map[int]int{}
	for _, r := range e.sim.Ledger().Renewals {
		out[r.OldCertificateId]++
	}
	return out
}

// jsonReport is the part of the JSON report the tests read.
type jsonReport struct {
	Schema string `json:"schema"`
	Run    struct {
		Command     string         `json:"command"`
		DryRun      bool           `json:"dry_run"`
		NotRun      *string        `json:"not_run"`
		ExitCode    int            `json:"exit_code"`
		Interrupted bool           `json:"interrupted"`
		Counts      map[string]int `json:"counts"`
	} `json:"run"`
	Rows []struct {
		Line             int      `json:"line"`
		CertificateID    int      `json:"certificate_id"`
		Status           string   `json:"status"`
		Stage            string   `json:"stage"`
		Detail           string   `json:"detail"`
		NewCertificateID *int     `json:"new_certificate_id"`
		Warnings         []string `json:"warnings"`
	} `json:"rows"`
}

func readReport(t *testing.T, path string) jsonReport {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read report: %v", err)
	}
	var r jsonReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report %s is not JSON: %v", path, err)
	}
	return r
}

func TestExitCodes(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	failing := writePlan(t, "certificate_id,store_id,password\n"+
		"1001,11111111-1111-4111-8111-111111111111,\n"+
		"1002,22222222-2222-4222-8222-222222222222,env:RUNNER_TEST_NEVER_SET\n")
	bad := writePlan(t, "certificate_id,store_id\nabc,not-a-guid\n")

	lockedState := filepath.Join(t.TempDir(), "state.db")
	j, err := journal.Open(lockedState, journal.Options{Command: "https://other.example.com:443/KeyfactorAPI"})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()

	for _, tc := range []struct {
		name       string
		ctx        context.Context
		args       []string
		env        map[string]string
		want       int
		wantStderr string
	}{
		{name: "all succeeded", args: []string{"--simulate", examplePlan}, want: exitOK},
		{name: "run command", args: []string{"run", "--simulate", examplePlan}, want: exitOK},
		{name: "some rows failed", args: []string{"--simulate", failing}, want: exitRowsFailed},
		{name: "plan error", args: []string{"--simulate", bad}, want: exitUsage, wantStderr: `certificate_id: not a positive integer: "abc"`},
		{name: "no plan", args: nil, want: exitUsage, wantStderr: "no plan given"},
		{name: "flags after the plan", args: []string{examplePlan, "--simulate"}, want: exitUsage, wantStderr: "flags go before the plan"},
		{name: "unknown flag", args: []string{"--no-such-flag", examplePlan}, want: exitUsage, wantStderr: "no-such-flag"},
		{name: "bad report format", args: []string{"--simulate", "--report", "out.pdf", examplePlan}, want: exitUsage, wantStderr: ".pdf"},
		{name: "no hostname", args: []string{examplePlan}, env: map[string]string{"KEYFACTOR_HOSTNAME": ""}, want: exitUsage, wantStderr: "KEYFACTOR_HOSTNAME"},
		{name: "Command unreachable", args: []string{"--state", filepath.Join(t.TempDir(), "s.db"), examplePlan},
			env:  map[string]string{"KEYFACTOR_HOSTNAME": "http://127.0.0.1:1", "KEYFACTOR_USERNAME": "u", "KEYFACTOR_PASSWORD": "p"},
			want: exitPreflight, wantStderr: "Command did not answer: check KEYFACTOR_HOSTNAME"},
		{name: "locked state", args: []string{"--simulate", "--state", lockedState, examplePlan}, want: exitLocked, wantStderr: "locked by pid"},
		{name: "interrupted", ctx: cancelled, args: []string{"--simulate", examplePlan}, want: exitInterrupted},
		{name: "validate ok", args: []string{"validate", examplePlan}, want: exitOK},
		{name: "validate bad", args: []string{"validate", bad}, want: exitUsage, wantStderr: "store_id: not a GUID"},
		{name: "unknown command", args: []string{"shedule"}, want: exitUsage, wantStderr: `Did you mean "schedule"?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			r := runMain(t, ctx, tc.args...)
			if r.code != tc.want {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.want, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantStderr, r.stderr)
			}
		})
	}
}

func TestValidateReportsEveryErrorAtOnce(t *testing.T) {
	bad := writePlan(t, "certificate_id,store_id,overwrite\n"+
		"abc,11111111-1111-4111-8111-111111111111,true\n"+
		"1002,nope,true\n"+
		"1003,33333333-3333-4333-8333-333333333333,maybe\n")
	r := runMain(t, context.Background(), "validate", bad)
	if r.code != exitUsage {
		t.Fatalf("exit %d, want %d", r.code, exitUsage)
	}
	for _, want := range []string{":2:1: certificate_id:", ":3:6: store_id:", ":4:43: overwrite:"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

// 300 bad rows: the terminal gets the first 50 and a count, --all gets all.
func TestValidateCapsTheErrorListUnlessAll(t *testing.T) {
	var b strings.Builder
	b.WriteString("certificate_id,store_id\n")
	for range 300 {
		b.WriteString("1001,not-a-guid\n")
	}
	path := writePlan(t, b.String())
	r := runMain(t, context.Background(), "validate", path)
	if n := strings.Count(r.stderr, "store_id: not a GUID"); r.code != exitUsage || n != 50 || !strings.Contains(r.stderr, "250 more") {
		t.Errorf("exit %d, %d errors printed (want 50 and a count of 250 more):\n%.500s", r.code, n, r.stderr)
	}
	r = runMain(t, context.Background(), "validate", "--all", path)
	if n := strings.Count(r.stderr, "store_id: not a GUID"); r.code != exitUsage || n != 300 {
		t.Errorf("--all: exit %d, %d errors printed, want 300", r.code, n)
	}
}

func TestSimulateWritesReportsAndFailedPlan(t *testing.T) {
	dir := t.TempDir()
	planPath := writePlan(t, "certificate_id,store_id,password\n"+
		"1001,11111111-1111-4111-8111-111111111111,\n"+
		"1002,22222222-2222-4222-8222-222222222222,env:RUNNER_TEST_NEVER_SET\n")
	jsonPath, csvPath, mdPath, htmlPath, xmlPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.csv"), filepath.Join(dir, "r.md"), filepath.Join(dir, "r.html"), filepath.Join(dir, "r.xml")
	failed, metrics := filepath.Join(dir, "failed.csv"), filepath.Join(dir, "runner.prom")
	r := runMain(t, context.Background(), "--simulate", "--report", jsonPath, "--report", csvPath, "--report", mdPath, "--report", htmlPath, "--report", xmlPath,
		"--failed-plan", failed, "--metrics-file", metrics, planPath)
	if r.code != exitRowsFailed {
		t.Fatalf("exit %d, want 1: %s", r.code, r.stderr)
	}
	rep := readReport(t, jsonPath)
	if len(rep.Rows) != 2 || rep.Run.Counts["succeeded"] != 1 || rep.Run.Counts["failed"] != 1 || rep.Run.ExitCode != exitRowsFailed {
		t.Errorf("report: %+v", rep)
	}
	fp, err := plan.Load(failed, plan.Options{})
	if err != nil {
		t.Fatalf("the failed plan is not a plan: %v", err)
	}
	if len(fp.Rows) != 1 || fp.Rows[0].CertificateID != 1002 || fp.Rows[0].Password.String() != "env:RUNNER_TEST_NEVER_SET" {
		t.Errorf("failed plan should hold only line 3 as written: %+v", fp.Rows)
	}
	csvText := mustRead(t, csvPath)
	for _, want := range []string{"1001,11111111-1111-4111-8111-111111111111,,succeeded,deploy,job created", "1002,22222222-2222-4222-8222-222222222222,env:RUNNER_TEST_NEVER_SET,failed,preflight"} {
		if !strings.Contains(csvText, want) {
			t.Errorf("CSV report lacks %q:\n%s", want, csvText)
		}
	}
	if md := mustRead(t, mdPath); !strings.Contains(md, "| 3 | 1002 |") || !strings.Contains(md, "RUNNER\\_TEST\\_NEVER\\_SET") {
		t.Errorf("Markdown report lacks line 3:\n%s", md)
	}
	if h := mustRead(t, htmlPath); !strings.Contains(h, "<html") || !strings.Contains(h, "RUNNER_TEST_NEVER_SET") {
		t.Errorf("HTML report lacks the failed row")
	}
	if x := mustRead(t, xmlPath); !strings.Contains(x, "<testsuites") || strings.Count(x, "<testcase") != 2 || strings.Count(x, "<failure") != 1 {
		t.Errorf("JUnit report: %s", x)
	}
	if m := mustRead(t, metrics); !strings.Contains(m, `runner_rows{`) || !strings.Contains(m, `status="failed"} 1`) {
		t.Errorf("metrics file:\n%s", m)
	}
	if !strings.Contains(r.stdout, "1 succeeded, 1 failed") {
		t.Errorf("summary missing from stdout:\n%s", r.stdout)
	}
	for _, p := range []string{jsonPath, csvPath, mdPath, htmlPath, xmlPath, failed} {
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
		} else if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, st.Mode().Perm())
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPlanCommandIsADryRun(t *testing.T) {
	r := runMain(t, context.Background(), "plan", "--simulate", examplePlan)
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "25 skipped") || !strings.Contains(r.stdout, "would renew") {
		t.Errorf("dry run summary:\n%s", r.stdout)
	}
}
