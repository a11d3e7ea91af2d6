package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `runner schedule` (issue 9 §5): at least two runs, each reading the plan
// again, so an edit between them is picked up; the first signal ends it
// with exit 0.
func TestScheduleRereadsThePlanEachRun(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed.csv")
	if err := os.WriteFile(seed, []byte(twoCerts+"1003,33333333-3333-4333-8333-333333333333\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newSimEnv(t, seed)
	planPath := filepath.Join(dir, "plan.csv")
	if err := os.WriteFile(planPath, []byte(twoCerts), 0o600); err != nil {
		t.Fatal(err)
	}
	run := runMainAsync(t, "schedule", "--cron", "@every 1s", "--run-now", "--report", filepath.Join(dir, "{time}.json"), planPath)
	waitRenewed := func(id int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for e.renewals()[id] == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("certificate %d never renewed", id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitRenewed(1001)
	if err := os.WriteFile(planPath, []byte(twoCerts+"1003,33333333-3333-4333-8333-333333333333\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitRenewed(1003)
	r := run.stop(t)
	if r.code != exitOK {
		t.Fatalf("exit %d after the signal, want 0\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "next runs") {
		t.Errorf("no next run times at start:\n%s", r.stdout)
	}
	got := e.renewals()
	if len(got) != 3 {
		t.Errorf("renewals %v, want the three certificates the plan named over the runs", got)
	}
	for _, id := range []int{1001, 1002, 1003} {
		if n := got[id]; n != 1 {
			t.Errorf("certificate %d renewed %d times over the runs, want once", id, n)
		}
	}
	reports, _ := filepath.Glob(filepath.Join(dir, "2*.json"))
	if len(reports) < 2 {
		t.Errorf("%d reports, want one per run ({time})", len(reports))
	}
}

// A bad spec or zone is refused at start (exit 2), before anything runs.
func TestScheduleRefusesABadSpec(t *testing.T) {
	for _, args := range [][]string{
		{"--cron", "15 2 * *"},
		{"--cron", "15 2 * * *", "--tz", "Mars/Olympus"},
		{},
	} {
		r := runMain(t, t.Context(), append(append([]string{"schedule"}, args...), examplePlan)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "runner: error:") {
			t.Errorf("%v: exit %d\n%s", args, r.code, r.stderr)
		}
	}
}
