package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"runner/journal"
)

// The command line is run in-process (Main) against the built-in
// simulator; binary_test.go runs the built binary once as a user would.

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
			want: exitPreflight, wantStderr: "preflight"},
		{name: "locked state", args: []string{"--simulate", "--state", lockedState, examplePlan}, want: exitLocked, wantStderr: "another runner"},
		{name: "interrupted", ctx: cancelled, args: []string{"--simulate", examplePlan}, want: exitInterrupted},
		{name: "validate ok", args: []string{"validate", examplePlan}, want: exitOK},
		{name: "validate bad", args: []string{"validate", bad}, want: exitUsage, wantStderr: "store_id: not a GUID"},
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

func TestSimulateWritesReportsAndFailedPlan(t *testing.T) {
	dir := t.TempDir()
	planPath := writePlan(t, "certificate_id,store_id,password\n"+
		"1001,11111111-1111-4111-8111-111111111111,\n"+
		"1002,22222222-2222-4222-8222-222222222222,env:RUNNER_TEST_NEVER_SET\n")
	jsonPath, csvPath, mdPath, failed := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.csv"), filepath.Join(dir, "r.md"), filepath.Join(dir, "failed.csv")
	r := runMain(t, context.Background(), "--simulate", "--report", jsonPath, "--report", csvPath, "--report", mdPath, "--failed-plan", failed, planPath)
	if r.code != exitRowsFailed {
		t.Fatalf("exit %d, want 1: %s", r.code, r.stderr)
	}
	var rep struct {
		Run struct {
			Counts map[string]int `json:"counts"`
		} `json:"run"`
		Rows []struct {
			Line   int    `json:"line"`
			Status string `json:"status"`
		} `json:"rows"`
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report JSON: %v", err)
	}
	if len(rep.Rows) != 2 || rep.Run.Counts["succeeded"] != 1 || rep.Run.Counts["failed"] != 1 {
		t.Errorf("report: %+v", rep)
	}
	fp, err := os.ReadFile(failed)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(fp), "1002,22222222-2222-4222-8222-222222222222,env:RUNNER_TEST_NEVER_SET") || strings.Contains(string(fp), "1001") {
		t.Errorf("failed plan should hold only line 3:\n%s", fp)
	}
	for _, p := range []string{csvPath, mdPath} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("report %s not written: %v", p, err)
		}
	}
	if !strings.Contains(r.stdout, "1 succeeded, 1 failed") {
		t.Errorf("summary missing from stdout:\n%s", r.stdout)
	}
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

// TestRateLimitIsWiredIntoTheClient shows --rate reaching every request:
// at one request per 1000 s only the first request goes out; the limiter
// refuses the second at once because its wait would outlast the deadline,
// where an unlimited run finishes.
func TestRateLimitIsWiredIntoTheClient(t *testing.T) {
	for _, tc := range []struct {
		rate       string
		want       int
		wantStderr string
	}{
		{"0", exitOK, ""},
		{"0.001", exitPreflight, "wait for rate limit"},
	} {
		t.Run("rate="+tc.rate, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			r := runMain(t, ctx, "--simulate", "--rate", tc.rate, examplePlan)
			if r.code != tc.want || !strings.Contains(r.stderr, tc.wantStderr) {
				t.Fatalf("exit %d, want %d with %q in stderr:\n%s", r.code, tc.want, tc.wantStderr, r.stderr)
			}
		})
	}
}
