package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"runner/kfsim"
)

// These tests build the binary and use it as an operator would: `runner
// sim` in one process, runner in another, sharing the KEYFACTOR_*
// environment, with real signals (SIGINT, SIGTERM, SIGKILL). The
// simulator's ledger is the ground truth.

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// runnerBinary builds the binary once per test process.
func runnerBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "runner-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "runner")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// binSim is `runner sim` in its own process.
type binSim struct {
	url string
	env []string
}

func startBinSim(t *testing.T, ctx context.Context, args ...string) *binSim {
	t.Helper()
	bin := runnerBinary(t)
	env := append(os.Environ(), "KEYFACTOR_USERNAME=svc-runner", "KEYFACTOR_DOMAIN=CORP", "KEYFACTOR_PASSWORD=binary-test-pass")
	sim := exec.CommandContext(ctx, bin, append([]string{"sim", "--listen", "127.0.0.1:0"}, args...)...)
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
	return &binSim{url: base, env: append(env, "KEYFACTOR_HOSTNAME="+base, "RUNNER_LOG_FORMAT=json")}
}

func (s *binSim) ledger(t *testing.T) kfsim.Ledger {
	t.Helper()
	resp, err := http.Get(s.url + "/_kfsim/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l kfsim.Ledger
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatalf("decode ledger: %v", err)
	}
	return l
}

// waitFor polls the ledger until cond holds, for at most a minute.
func (s *binSim) waitFor(t *testing.T, what string, cond func(kfsim.Ledger) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if cond(s.ledger(t)) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("never saw %s in the ledger", what)
}

// runner starts the binary against the simulator.
func (s *binSim) runner(t *testing.T, ctx context.Context, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.CommandContext(ctx, runnerBinary(t), args...)
	cmd.Env = s.env
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

func exitOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

var servingLine = regexp.MustCompile(`serving Keyfactor Command at (http://\S+?)/KeyfactorAPI`)

func readBaseURL(t *testing.T, r io.Reader) string {
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

func TestBinaryAgainstRunnerSim(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	sim := startBinSim(t, ctx, "--seed", examplePlan)
	reportPath := filepath.Join(dir, "report.json")
	cmd, out := sim.runner(t, ctx, "--report", reportPath, "--state", filepath.Join(dir, "state.db"), examplePlan)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("runner: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "25 rows: 25 succeeded") {
		t.Errorf("summary:\n%s", out)
	}
	if strings.Contains(out.String(), "binary-test-pass") {
		t.Error("the password appears in the output")
	}
	l := sim.ledger(t)
	renewed := map[int]int{}
	for _, r := range l.Renewals {
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
	for _, d := range l.Deploys {
		stores += len(d.Successful)
	}
	if stores != 25 {
		t.Errorf("%d stores deployed per the ledger, want 25", stores)
	}
	if _, err := os.Stat(reportPath); err != nil {
		t.Errorf("report not written: %v", err)
	}
}

// killPlan is 40 certificates, one store each.
func killPlan(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("certificate_id,store_id\n")
	for i := range 40 {
		fmt.Fprintf(&b, "%d,%08d-0000-4000-8000-000000000001\n", 5000+i, i)
	}
	return writePlan(t, b.String())
}

// kill -9 in the middle of a run, then the same command again, with and
// without --force: every row is reported, no plan certificate is renewed
// twice, and every renewal of the killed run is deployed. Without --force
// the rerun renews only what the killed run did not; with it, the rerun
// also renews each certificate the killed run finished (its new one, once)
// and reports every row succeeded, never "not due".
func TestKillNineMidRunThenRerun(t *testing.T) {
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("force=%v", force), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			dir := t.TempDir()
			planPath := killPlan(t)
			sim := startBinSim(t, ctx, "--seed", planPath, "--latency", "20ms", "--job-delay", "0s")
			state := filepath.Join(dir, "state.db")
			cmd, _ := sim.runner(t, ctx, "--state", state, "--concurrency", "4", planPath)
			sim.waitFor(t, "five renewals", func(l kfsim.Ledger) bool { return len(l.Renewals) >= 5 })
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			killed := sim.ledger(t)

			args := []string{"--state", state, "--report", filepath.Join(dir, "rerun.json"), "--concurrency", "4"}
			if force {
				args = append(args, "--force")
			}
			cmd, out := sim.runner(t, ctx, append(args, planPath)...)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("rerun: %v\n%s", err, out)
			}
			rep := readReport(t, filepath.Join(dir, "rerun.json"))
			if len(rep.Rows) != 40 {
				t.Fatalf("%d rows reported, want 40", len(rep.Rows))
			}
			for _, r := range rep.Rows {
				// Without --force, a certificate the killed run renewed and
				// deployed is current now, and not due.
				doneBefore := !force && r.Status == "skipped" && strings.Contains(r.Detail, "now certificate")
				if r.Status != "succeeded" && !doneBefore {
					t.Errorf("line %d: %s at %s: %s", r.Line, r.Status, r.Stage, r.Detail)
				}
			}
			l := sim.ledger(t)
			renewals := map[int]int{}
			renewedBy := map[int]bool{} // the certificates the plan's renewals issued
			for _, r := range l.Renewals {
				renewals[r.OldCertificateId]++
				if r.OldCertificateId >= 5000 && r.OldCertificateId < 5040 {
					renewedBy[r.NewCertificateId] = true
				}
			}
			for i := range 40 {
				if n := renewals[5000+i]; n != 1 {
					t.Errorf("certificate %d renewed %d times", 5000+i, n)
				}
			}
			// Any other renewal is --force renewing what a plan renewal
			// issued, once; a renewal the killed run left in flight is
			// settled and deployed, not renewed again.
			for old, n := range renewals {
				if old >= 5000 && old < 5040 {
					continue
				}
				switch {
				case !force:
					t.Errorf("certificate %d, not in the plan, renewed %d times without --force", old, n)
				case !renewedBy[old]:
					t.Errorf("certificate %d renewed by --force, but no renewal of the plan issued it", old)
				case n != 1:
					t.Errorf("certificate %d renewed %d times by --force, want once", old, n)
				}
			}
			// Each renewal the killed run made reached its store.
			for _, r := range killed.Renewals {
				if !deployedSomewhere(l, r.NewCertificateId) {
					t.Errorf("renewal %d of %d (killed run) was never deployed", r.NewCertificateId, r.OldCertificateId)
				}
			}
		})
	}
}

func deployedSomewhere(l kfsim.Ledger, certID int) bool {
	for _, d := range l.Deploys {
		if d.CertificateId == certID && len(d.Successful) > 0 && d.Refused == "" {
			return true
		}
	}
	return false
}

// SIGINT while a Renew waits out a long Retry-After: the process exits 130
// without waiting it out, and no Renew is sent after the signal.
func TestSigintDuringALongRetryAfter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	planPath := writePlan(t, twoCerts)
	sim := startBinSim(t, ctx, "--seed", planPath, "--fault", "renew:429:retry-after=3600s")
	cmd, out := sim.runner(t, ctx, "--state", filepath.Join(dir, "s.db"), "--report", filepath.Join(dir, "r.json"), "--concurrency", "1", planPath)
	sim.waitFor(t, "a refused renew", func(l kfsim.Ledger) bool {
		for _, r := range l.Requests {
			if r.Endpoint == "renew" && r.Status == http.StatusTooManyRequests {
				return true
			}
		}
		return false
	})
	renewsAtSignal := countRenewRequests(sim.ledger(t))
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	// Exiting at all shows the hour-long wait was cut short (the test's
	// own deadline is two minutes); no clock is needed for it.
	err := cmd.Wait()
	if code := exitOf(err); code != exitInterrupted {
		t.Fatalf("exit %d, want 130\n%s", code, out)
	}
	if n := countRenewRequests(sim.ledger(t)); n != renewsAtSignal {
		t.Errorf("%d Renew requests after the signal", n-renewsAtSignal)
	}
	rep := readReport(t, filepath.Join(dir, "r.json"))
	if !rep.Run.Interrupted || len(rep.Rows) != 2 {
		t.Errorf("report: %+v", rep.Run)
	}
}

func countRenewRequests(l kfsim.Ledger) int {
	n := 0
	for _, r := range l.Requests {
		if r.Endpoint == "renew" {
			n++
		}
	}
	return n
}

// SIGINT during --verify: polling stops, the unconfirmed rows are
// reported not verified (never succeeded), exit 130.
func TestSigintDuringVerify(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	planPath := writePlan(t, twoCerts)
	sim := startBinSim(t, ctx, "--seed", planPath, "--job-delay", "0s", "--inventory-delay", "1h")
	cmd, out := sim.runner(t, ctx, "--state", filepath.Join(dir, "s.db"), "--report", filepath.Join(dir, "r.json"), "--verify", "--verify-interval", "50ms", planPath)
	sim.waitFor(t, "both deploys", func(l kfsim.Ledger) bool { return len(l.Deploys) >= 2 })
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := exitOf(cmd.Wait()); code != exitInterrupted {
		t.Fatalf("exit %d, want 130\n%s", code, out)
	}
	rows := readReport(t, filepath.Join(dir, "r.json")).Rows
	if len(rows) != 2 {
		t.Errorf("%d rows reported, want the plan's 2", len(rows))
	}
	for _, r := range rows {
		if r.Status != "failed" || r.Stage != "verify" || !strings.Contains(r.Detail, "not verified") {
			t.Errorf("line %d: %s at %s: %s", r.Line, r.Status, r.Stage, r.Detail)
		}
	}
}

// `runner schedule`, SIGTERM in the middle of a run: the run's in-flight
// deploys finish, its report is written, the process exits 0, and no run
// starts after the signal.
func TestScheduleSigtermMidRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	planPath := killPlan(t)
	sim := startBinSim(t, ctx, "--seed", planPath, "--latency", "30ms", "--job-delay", "0s")
	cmd, out := sim.runner(t, ctx, "schedule", "--cron", "@every 1s", "--run-now", "--state", filepath.Join(dir, "s.db"),
		"--report", filepath.Join(dir, "{time}.json"), "--concurrency", "2", planPath)
	sim.waitFor(t, "a renewal", func(l kfsim.Ledger) bool { return len(l.Renewals) >= 1 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitOf(cmd.Wait()); code != exitOK {
		t.Fatalf("exit %d, want 0\n%s", code, out)
	}
	l := sim.ledger(t)
	for _, r := range l.Renewals {
		if !deployedSomewhere(l, r.NewCertificateId) {
			t.Errorf("renewal of %d left undeployed by the signal", r.OldCertificateId)
		}
	}
	reports, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(reports) != 1 {
		t.Fatalf("%d reports, want the one run's", len(reports))
	}
	if rep := readReport(t, reports[0]); !rep.Run.Interrupted {
		t.Errorf("the run's report does not say it was interrupted: %+v", rep.Run)
	}
}
