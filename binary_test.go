package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"runner/kfsim"
)

// TestBinaryAgainstRunnerSim builds the binary and uses it as an operator
// would: `runner sim` in one process, `runner PLAN.csv` in another, sharing
// the KEYFACTOR_* environment; the simulator's ledger is the ground truth.
func TestBinaryAgainstRunnerSim(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "runner")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := append(os.Environ(), "KEYFACTOR_USERNAME=svc-runner", "KEYFACTOR_DOMAIN=CORP", "KEYFACTOR_PASSWORD=binary-test-pass")

	sim := exec.CommandContext(ctx, bin, "sim", "--listen", "127.0.0.1:0", "--seed", examplePlan)
	sim.Env = env
	stdout, err := sim.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sim.Process.Signal(os.Interrupt)
		_ = sim.Wait()
	})
	base := readBaseURL(t, stdout)

	reportPath := filepath.Join(dir, "report.json")
	run := exec.CommandContext(ctx, bin, "--report", reportPath, "--state", filepath.Join(dir, "state.db"), examplePlan)
	run.Env = append(env, "KEYFACTOR_HOSTNAME="+base, "RUNNER_LOG_FORMAT=json")
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("runner: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "25 rows: 25 succeeded") {
		t.Errorf("summary:\n%s", out)
	}
	if strings.Contains(string(out), "binary-test-pass") {
		t.Error("the password appears in the output")
	}

	resp, err := http.Get(base + "/_kfsim/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ledger kfsim.Ledger
	if err := json.NewDecoder(resp.Body).Decode(&ledger); err != nil {
		t.Fatalf("decode ledger: %v", err)
	}
	renewed := map[int]int{}
	for _, r := range ledger.Renewals {
		renewed[r.OldCertificateId]++
		if r.Identity != `CORP\svc-runner` {
			t.Errorf("renewal by %q", r.Identity)
		}
	}
	if len(renewed) != 10 {
		t.Errorf("%d certificates renewed, want the plan's 10", len(renewed))
	}
	for id, n := range renewed {
		if n != 1 {
			t.Errorf("certificate %d renewed %d times", id, n)
		}
	}
	stores := 0
	for _, d := range ledger.Deploys {
		stores += len(d.Successful)
	}
	if stores != 25 {
		t.Errorf("%d stores deployed per the ledger, want 25", stores)
	}
	if _, err := os.Stat(reportPath); err != nil {
		t.Errorf("report not written: %v", err)
	}
}

var servingLine = regexp.MustCompile(`serving Keyfactor Command at (http://\S+?)/KeyfactorAPI`)

func readBaseURL(t *testing.T, r interface{ Read([]byte) (int, error) }) string {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
			go func() { // keep draining so the simulator never blocks on stdout
				for sc.Scan() {
				}
			}()
			return m[1]
		}
	}
	t.Fatalf("runner sim never printed its address: %v", sc.Err())
	return ""
}
