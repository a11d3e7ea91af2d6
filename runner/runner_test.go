package runner_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"runner/journal"
	"runner/keyfactor"
	"runner/kfsim"
	"runner/report"
	"runner/runner"
)

func TestHappyPathRenewsOnceAndDeploysToEveryStore(t *testing.T) {
	w := newWorld(t, planText(
		row(1001, storeA, "www", "true"),
		row(1001, storeB, "www", "true"),
		row(1002, storeC),
		row(1003, storeA, "api", "true"),
	))
	rep := w.mustRun()
	for line := 2; line <= 5; line++ {
		r := wantRow(t, rep, line, report.Succeeded, report.StageDeploy, "job created")
		if r.NewCertificateID == 0 || r.RenewedAt.IsZero() || r.DeployedAt.IsZero() {
			t.Errorf("line %d: missing new certificate id or times: %+v", line, r)
		}
	}
	l := w.sim.Ledger()
	for _, id := range []int{1001, 1002, 1003} {
		if n := renewalsOf(l, id); n != 1 {
			t.Errorf("certificate %d renewed %d times, want 1", id, n)
		}
	}
	// One Deploy call per certificate, with all its stores.
	if len(l.Deploys) != 3 {
		t.Errorf("%d deploy calls, want 3: %+v", len(l.Deploys), l.Deploys)
	}
}

func TestContainerWithoutSchedulePermission(t *testing.T) {
	w := newWorld(t, planText(
		row(1001, storeA),
		row(1001, storeD), // container 2
		row(1002, storeD), // only store in container 2: never renewed
	), withPermissions(keyfactor.PermCertificatesRead, keyfactor.PermEnrollPFX, keyfactor.PermStoresRead, "/certificate_stores/schedule/1/"))
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	wantRow(t, rep, 3, report.Failed, report.StagePreflight, "permission /certificate_stores/schedule/ missing for container 2")
	wantRow(t, rep, 4, report.Failed, report.StagePreflight, "permission /certificate_stores/schedule/ missing for container 2")
	l := w.sim.Ledger()
	if n := renewalsOf(l, 1002); n != 0 {
		t.Errorf("certificate 1002 has no deployable store but was renewed %d times", n)
	}
	if n := renewalsOf(l, 1001); n != 1 {
		t.Errorf("certificate 1001 renewed %d times, want 1", n)
	}
}

func TestUnknownStoreFailsAtPreflight(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1001, storeB)), withFixture(func(f *kfsim.Fixture) {
		var kept []kfsim.Store
		for _, s := range f.Stores {
			if s.Id != storeB {
				kept = append(kept, s)
			}
		}
		f.Stores = kept
		for i := range f.Certificates {
			f.Certificates[i].Locations = f.Certificates[i].Locations[:1]
		}
	}))
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	wantRow(t, rep, 3, report.Failed, report.StagePreflight, "store not found")
}

func TestNotDueRowsAreSkippedUnlessForced(t *testing.T) {
	// One instant for the fixture and the expected dates, at noon UTC so
	// no rounding of it can cross a day.
	notAfter := time.Now().UTC().Truncate(24 * time.Hour).Add(200*24*time.Hour + 12*time.Hour)
	w := newWorld(t, planText(row(1001, storeA), row(1002, storeB, "", "", "", "", "", "10d")), withFixture(func(f *kfsim.Fixture) {
		for i := range f.Certificates {
			f.Certificates[i].NotAfter = notAfter
		}
	}))
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Skipped, report.StageCheck, "not due until "+notAfter.Add(-30*24*time.Hour).Format("2006-01-02"))
	wantRow(t, rep, 3, report.Skipped, report.StageCheck, "not due until "+notAfter.Add(-10*24*time.Hour).Format("2006-01-02"))
	if n := len(w.sim.Ledger().Renewals); n != 0 {
		t.Fatalf("%d renewals of certificates that are not due", n)
	}

	w.cfg.Force = true
	rep = w.mustRun()
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	if n := len(w.sim.Ledger().Renewals); n != 2 {
		t.Fatalf("--force: %d renewals, want 2", n)
	}
}

// advanceOnDeploy moves the simulator's clock (shared with the runner) by
// `by` after every Deploy, as if each attempt had taken that long.
type advanceOnDeploy struct {
	runner.Client
	clock *kfsim.ManualClock
	by    time.Duration
}

func (c *advanceOnDeploy) Deploy(ctx context.Context, req keyfactor.DeployRequest) (*keyfactor.DeployResponse, error) {
	resp, err := c.Client.Deploy(ctx, req)
	c.clock.Advance(c.by)
	return resp, err
}

// A renewal whose deploy never got through before its window closed is
// reported once with its id, then judged from what the stores hold.
func TestWindowExpiredRenewalIsReportedOnceThenJudgedFromTheStores(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1001, storeB)), withManualClock())
	w.shareClock()
	w.sim.SetFaults(mustFault(t, "deploy:503"))
	// Window 5m, margin 30s: a deploy may go out until 4m30s after the
	// renewal. Each failed attempt takes 2 minutes of the clock, so the
	// attempts go at +0, +2m and +4m, and the next (+6m) would be late.
	rep, err := w.runWith(context.Background(), &advanceOnDeploy{Client: w.client, clock: w.clock, by: 2 * time.Minute})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var newID int
	for _, line := range []int{2, 3} {
		r := wantRow(t, rep, line, report.Failed, report.StageDeploy, "window expired")
		if r.NewCertificateID == 0 {
			t.Errorf("line %d: a window-expired row must carry the new certificate id so nothing is lost", line)
		}
		newID = r.NewCertificateID
	}
	deployAttempts := 0
	for _, r := range w.sim.Ledger().Requests {
		if r.Endpoint == "deploy" {
			deployAttempts++
		}
	}
	if deployAttempts != 3 {
		t.Errorf("deploy attempted %d times, want 3 (at +0, +2m, +4m): retryable failures are retried until the deadline, and not past it", deployAttempts)
	}

	// Ten minutes later the window is gone: the rows are not failed again,
	// and 1001, still in the stores and due, is renewed as any due
	// certificate is, without --force.
	w.sim.SetFaults()
	w.advance(10 * time.Minute)
	w.restart()
	rep = w.mustRun()
	for _, line := range []int{2, 3} {
		r := wantRow(t, rep, line, report.Succeeded, report.StageDeploy, "job created")
		if r.NewCertificateID == newID {
			t.Errorf("line %d deployed the orphaned %d, whose staging is gone", line, newID)
		}
	}
	if n := renewalsOf(w.sim.Ledger(), 1001); n != 2 {
		t.Errorf("renewals of 1001: %d, want the orphaned one and one more", n)
	}
}

// A renewal orphaned by a crash (its run never came back to deploy it) is
// reported once by the next run; the runs after that leave it in the
// journal's history and go by the certificate in the stores.
func TestOrphanedRenewalIsReportedOnce(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA)), withManualClock(), withFixture(func(f *kfsim.Fixture) {
		f.Certificates[0].NotAfter = time.Now().Add(200 * 24 * time.Hour) // not due
	}))
	newID := renewBehindTheRunnersBack(t, w, true)
	w.advance(10 * time.Minute)
	rep := w.mustRun()
	r := wantRow(t, rep, 2, report.Failed, report.StageDeploy, "window expired")
	if r.NewCertificateID != newID || !strings.Contains(r.Detail, fmt.Sprint(newID)) {
		t.Errorf("the orphan report must carry %d: %+v", newID, r)
	}
	for range 2 {
		w.restart()
		rep = w.mustRun()
		wantRow(t, rep, 2, report.Skipped, report.StageCheck, "not due until")
	}
	if n := renewalsOf(w.sim.Ledger(), 1001); n != 1 {
		t.Errorf("renewals of 1001: %d, want only the orphaned one", n)
	}
}

func TestUnknownRenewOutcomeIsResolvedWithoutSecondRenewal(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1002, storeB)))
	w.sim.SetFaults(mustFault(t, "renew:drop-after:times=1"))
	w.cfg.Concurrency = 1
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	wantRow(t, rep, 3, report.Succeeded, report.StageDeploy, "job created")
	l := w.sim.Ledger()
	lost := 0
	for _, r := range l.Renewals {
		if r.ResponseLost {
			lost++
		}
	}
	if lost != 1 {
		t.Fatalf("the fault did not lose a renew response (lost=%d): the test proves nothing", lost)
	}
	if renewalsOf(l, 1001) != 1 || renewalsOf(l, 1002) != 1 {
		t.Errorf("renewals: 1001×%d 1002×%d, want 1 each", renewalsOf(l, 1001), renewalsOf(l, 1002))
	}
}

func TestRetryableRenewIsRetried(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA)))
	w.sim.SetFaults(mustFault(t, "renew:429:times=2,retry-after=0s"))
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	if n := renewalsOf(w.sim.Ledger(), 1001); n != 1 {
		t.Errorf("renewed %d times, want 1", n)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1001, storeB), row(1002, storeC)))
	w.cfg.DryRun = true
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Skipped, report.StageCheck, "would renew certificate 1001 and deploy it to 2 store(s)")
	l := w.sim.Ledger()
	if len(l.Renewals) != 0 || len(l.Deploys) != 0 {
		t.Fatalf("dry run changed Command: %d renewals, %d deploys", len(l.Renewals), len(l.Deploys))
	}
	for _, r := range l.Requests {
		if r.Method != "GET" {
			t.Errorf("dry run sent %s %s", r.Method, r.Path)
		}
	}
	if _, ok, _ := w.journal.Lineage(1001); ok {
		t.Error("dry run wrote to the journal")
	}
}

func TestRerunAfterSuccessDoesNotRenewAgain(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1001, storeB)))
	first := w.mustRun()
	newID := wantRow(t, first, 2, report.Succeeded, report.StageDeploy, "job created").NewCertificateID
	w.restart()
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Skipped, report.StageCheck, "now certificate ")
	if n := renewalsOf(w.sim.Ledger(), 1001); n != 1 {
		t.Fatalf("rerun renewed certificate 1001 again (%d renewals)", n)
	}
	if n := renewalsOf(w.sim.Ledger(), newID); n != 0 {
		t.Fatalf("rerun renewed the fresh certificate %d", newID)
	}
}

func TestAuthenticationFailureIsPreflightError(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA)))
	bad, err := keyfactor.New(keyfactor.Config{Hostname: w.srv.URL, APIPath: w.sim.BasePath(), Username: testUser, Domain: testDomain, Password: "wrong-password", GetRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := w.runWith(context.Background(), bad)
	var pe *runner.PreflightError
	if !errors.As(err, &pe) || keyfactor.CauseOf(err) != keyfactor.CauseUnauthorized {
		t.Fatalf("want a *PreflightError caused by 401, got %v", err)
	}
	wantRow(t, rep, 2, report.Failed, report.StagePreflight, "preflight failed")
	if strings.Contains(rep.Rows[0].Error, "wrong-password") {
		t.Errorf("the password leaked into the report: %q", rep.Rows[0].Error)
	}
	if len(w.sim.Ledger().Renewals) != 0 {
		t.Fatal("renewed despite failed preflight")
	}
}

// cancelOnRenew cancels the run's context once the first Renew has been
// answered, as a first Ctrl-C arriving while it was in flight would.
type cancelOnRenew struct {
	runner.Client
	cancel context.CancelFunc
	calls  atomic.Int32
}

func (c *cancelOnRenew) Renew(ctx context.Context, req keyfactor.RenewalRequest) (*keyfactor.RenewalResponse, error) {
	resp, err := c.Client.Renew(ctx, req)
	if c.calls.Add(1) == 1 {
		c.cancel()
	}
	return resp, err
}

func TestInterruptFinishesInFlightWorkAndReportsTheRest(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1002, storeB), row(1003, storeC)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.cfg.Concurrency = 1
	rep, err := w.runWith(ctx, &cancelOnRenew{Client: w.client, cancel: cancel})
	if !errors.Is(err, runner.ErrInterrupted) || !rep.Run.Interrupted {
		t.Fatalf("want ErrInterrupted and an interrupted report, got %v", err)
	}
	// The Renew in flight when the signal came runs on to its deploy; no
	// other certificate is started.
	var done, interrupted int
	for _, r := range rep.Rows {
		switch {
		case r.Status == report.Succeeded && r.Detail == "job created":
			done++
		case r.Status == report.Failed && strings.Contains(r.Detail, "interrupted"):
			interrupted++
		default:
			t.Errorf("line %d: %s %q", r.Line, r.Status, r.Detail)
		}
	}
	if done != 1 || interrupted != 2 {
		t.Errorf("%d rows deployed and %d interrupted, want 1 and 2", done, interrupted)
	}
	if n := len(w.sim.Ledger().Renewals); n != 1 {
		t.Fatalf("%d renewals after interrupt, want only the in-flight one", n)
	}
}

// The runner reads the simulator's clock, and each verify poll after the
// first is 4 minutes later (advanceOnVerifyReads), so the 10-minute verify
// timeout passes after the third poll, however slow the machine.
func TestVerifyWaitsForInventory(t *testing.T) {
	for _, tc := range []struct {
		name       string
		perms      []string
		wantFailed string
		wantReads  int
	}{
		// Job history shows the failed job: the row fails at once with
		// the orchestrator's message. Polls at +0 (nothing shown yet,
		// the jobs run at +50ms) and +4m (store A shows it).
		{"with job history", append([]string{"/agents/management/read/"}, renewPerms...), "failed on the orchestrator (job ", 2},
		// Without it (a user who may not read agents), only the timeout
		// ends the wait: polls at +0, +4m and +8m, after which the clock
		// stands at +12m, past the deadline; none after it.
		{"without job history", renewPerms, "job created but not seen in store after 10m0s", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, planText(row(1001, storeA), row(1001, storeB)), withManualClock(), withPermissions(tc.perms...), withFixture(func(f *kfsim.Fixture) {
				for i := range f.Stores {
					if f.Stores[i].Id == storeB {
						f.Stores[i].FailJobs = "orchestrator could not reach host"
					}
				}
			}))
			w.shareClock()
			w.cfg.Verify, w.cfg.VerifyTimeout, w.cfg.VerifyInterval = true, 10*time.Minute, 20*time.Millisecond
			rep, err := w.runWith(context.Background(), &advanceOnVerifyReads{Client: w.client, clock: w.clock, by: 4 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			a := wantRow(t, rep, 2, report.Succeeded, report.StageVerify, "seen in store")
			wantRow(t, rep, 3, report.Failed, report.StageVerify, tc.wantFailed)
			if reads := certificateReads(w.sim.Ledger(), a.NewCertificateID); len(reads) != tc.wantReads {
				t.Errorf("reads of %d at %v, want %d", a.NewCertificateID, reads, tc.wantReads)
			}
		})
	}
}

func TestMaxRenewalsDefersTheRestOldestDueFirst(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1002, storeB), row(1003, storeC)), withFixture(func(f *kfsim.Fixture) {
		// 1003 expires first, then 1001, then 1002.
		for i, days := range map[int]int{0: 10, 1: 15, 2: 5} {
			f.Certificates[i].NotAfter = time.Now().Add(time.Duration(days) * 24 * time.Hour)
		}
	}))
	w.cfg.MaxRenewals = 2
	rep := w.mustRun()
	wantRow(t, rep, 3, report.Skipped, report.StageCheck, "deferred")
	wantRow(t, rep, 3, report.Skipped, report.StageCheck, "--max-renewals 2")
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	wantRow(t, rep, 4, report.Succeeded, report.StageDeploy, "job created")
	rep = w.mustRun()
	wantRow(t, rep, 3, report.Succeeded, report.StageDeploy, "job created")
	if n := len(w.sim.Ledger().Renewals); n != 3 {
		t.Fatalf("%d renewals over two capped runs, want 3", n)
	}
}

func TestPEMStoreGetsEntryPasswordFromFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "entry.txt", "pem-pass\n")
	w := newWorld(t, planText(row(1001, storeA, "api", "true", "file:"+filepath.Join(dir, "entry.txt")), row(1002, storeB, "", "", "env:RUNNER_TEST_UNSET_PASSWORD")))
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	wantRow(t, rep, 3, report.Failed, report.StagePreflight, "RUNNER_TEST_UNSET_PASSWORD")
	if n := renewalsOf(w.sim.Ledger(), 1002); n != 0 {
		t.Fatalf("certificate 1002 was renewed though its deploy could not follow")
	}
}

// renewBehindTheRunnersBack renews 1001 as an earlier run would have, and
// journals it the way that run did before it stopped (killed).
func renewBehindTheRunnersBack(t *testing.T, w *world, complete bool) int {
	t.Helper()
	started := time.Now().UTC()
	r, err := w.journal.Begin(1001, journal.Renewal{OldCertificateID: 1001, Subject: "CN=app1001.example.internal, O=Example, C=US", StartedAt: started})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := w.client.Renew(context.Background(), keyfactor.RenewalRequest{CertificateId: 1001, Timestamp: started})
	if err != nil {
		t.Fatal(err)
	}
	if complete {
		if err := w.journal.Update(1001, r.Seq, func(x *journal.Renewal) {
			x.State, x.NewCertificateID, x.RequestID, x.RenewedAt = journal.StateRenewed, resp.KeyfactorId, resp.KeyfactorRequestId, started
		}); err != nil {
			t.Fatal(err)
		}
	}
	w.restart()
	return resp.KeyfactorId
}

func TestResumeDeploysAnEarlierRenewalInsideItsWindow(t *testing.T) {
	for _, tc := range []struct {
		name     string
		complete bool // the earlier run learned the new id before it stopped
		force    bool
	}{
		{"crash after renew", true, false},
		{"crash before the renew answer", false, false},
		{"crash after renew, rerun with --force", true, true},
		{"crash before the renew answer, rerun with --force", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, planText(row(1001, storeA), row(1001, storeB)))
			newID := renewBehindTheRunnersBack(t, w, tc.complete)
			w.cfg.Force = tc.force
			rep := w.mustRun()
			for _, line := range []int{2, 3} {
				if r := wantRow(t, rep, line, report.Succeeded, report.StageDeploy, "job created"); r.NewCertificateID != newID {
					t.Errorf("line %d deployed %d, want the earlier renewal %d", line, r.NewCertificateID, newID)
				}
			}
			if n := renewalsOf(w.sim.Ledger(), 1001); n != 1 {
				t.Fatalf("%d renewals of 1001, want only the earlier one", n)
			}
		})
	}
}

func TestInFlightAttemptThatNeverReachedCommandIsAbandoned(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA)))
	if _, err := w.journal.Begin(1001, journal.Renewal{OldCertificateID: 1001, Subject: "CN=app1001.example.internal, O=Example, C=US", StartedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	w.restart()
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	if n := renewalsOf(w.sim.Ledger(), 1001); n != 1 {
		t.Fatalf("%d renewals, want 1", n)
	}
}

func TestThumbprintRowsResolveAndMergeWithIdRows(t *testing.T) {
	const thumb = "AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12"
	w := newWorld(t, "certificate_id,thumbprint,store_id\n"+
		",ab:12:cd:34:ef:56:ab:12:cd:34:ef:56:ab:12:cd:34:ef:56:ab:12,"+storeA+"\n"+
		"1001,,"+storeB+"\n", withFixture(func(f *kfsim.Fixture) {
		// The thumbprint row's certificate is 1001 itself, and expired.
		f.Certificates = []kfsim.Certificate{{Id: 1001, Thumbprint: thumb, IssuedDN: "CN=app1001.example.internal, O=Example, C=US",
			NotBefore: time.Now().Add(-400 * 24 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour), TemplateName: "WebServer",
			Locations: []kfsim.Location{{CertStoreId: storeA}, {CertStoreId: storeB}}}}
	}))
	rep := w.mustRun()
	a := wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	b := wantRow(t, rep, 3, report.Succeeded, report.StageDeploy, "job created")
	if a.CertificateID != 1001 || a.NewCertificateID != b.NewCertificateID {
		t.Errorf("thumbprint row resolved to %d → %d, id row → %d", a.CertificateID, a.NewCertificateID, b.NewCertificateID)
	}
	l := w.sim.Ledger()
	if n := renewalsOf(l, 1001); n != 1 {
		t.Fatalf("certificate named by thumbprint and by id renewed %d times, want 1", n)
	}
	if len(l.Deploys) != 1 || len(l.Deploys[0].Stores) != 2 {
		t.Errorf("want one deploy to both stores, got %+v", l.Deploys)
	}
}

// A thumbprint row and an id row that turn out to put one certificate into
// one store: the later row fails as a duplicate, the earlier one is
// renewed and deployed once.
func TestThumbprintAndIdRowsForOneStoreFailTheLaterRow(t *testing.T) {
	const thumb = "AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12"
	w := newWorld(t, "certificate_id,thumbprint,store_id\n,"+thumb+","+storeA+"\n1001,,"+storeA+"\n", withFixture(func(f *kfsim.Fixture) {
		// Only 1001 has the thumbprint (not the certificate seeded for the
		// thumbprint row).
		f.Certificates = slices.DeleteFunc(f.Certificates, func(c kfsim.Certificate) bool { return c.Id != 1001 })
		f.Certificates[0].Thumbprint = thumb
	}))
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	wantRow(t, rep, 3, report.Failed, report.StageCheck, "duplicate target: line 2 already deploys certificate 1001 to store "+storeA)
	if n := renewalsOf(w.sim.Ledger(), 1001); n != 1 {
		t.Errorf("certificate 1001 renewed %d times, want 1", n)
	}
}

// A certificate the batched read does not return is read on its own, and
// a 404 then fails its rows as not found; the other certificate goes on.
func TestCertificateMissingFromCommandFailsAtCheck(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1002, storeB)), withFixture(func(f *kfsim.Fixture) {
		f.Certificates = slices.DeleteFunc(f.Certificates, func(c kfsim.Certificate) bool { return c.Id == 1002 })
	}))
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	wantRow(t, rep, 3, report.Failed, report.StageCheck, "certificate 1002 not found in Command")
	if reads := certificateReads(w.sim.Ledger(), 1002); len(reads) == 0 {
		t.Error("certificate 1002 was not read on its own after the batch left it out")
	}
}

func TestPlanIdAndThumbprintThatDisagreeFailAtCheck(t *testing.T) {
	w := newWorld(t, "certificate_id,thumbprint,store_id\n1001,AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12,"+storeA+"\n", withFixture(func(f *kfsim.Fixture) {
		f.Certificates[0].Thumbprint = "FFEE" + strings.Repeat("0", 36) // Command's thumbprint of 1001
	}))
	rep := w.mustRun()
	r := wantRow(t, rep, 2, report.Failed, report.StageCheck, "certificate_id 1001 is the certificate with thumbprint")
	if !strings.Contains(r.Detail, "AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12") {
		t.Errorf("detail names only one of the two: %q", r.Detail)
	}
	if n := len(w.sim.Ledger().Renewals); n != 0 {
		t.Errorf("%d renewals of a certificate the plan names two ways", n)
	}
}

func TestOlderCommandWithoutPermissionsEndpointsLeavesChecksToDeploy(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1001, storeD)),
		withPermissions(keyfactor.PermCertificatesRead, keyfactor.PermEnrollPFX, keyfactor.PermStoresRead, "/certificate_stores/schedule/1/"),
		withOptions(func(o *kfsim.Options) { o.NoMyPermissions, o.NoSecurityMy = true, true }))
	rep, err := w.run(context.Background())
	if err != nil {
		t.Fatalf("404s from the permission endpoints must be tolerated: %v", err)
	}
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	// Unchecked in preflight, the store without permission lands in FailedStores.
	wantRow(t, rep, 3, report.Failed, report.StageDeploy, "FailedStores")
}

func TestJobTimeFromPlanOrFlag(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	flag := time.Date(2031, 6, 7, 8, 9, 10, 0, time.UTC)
	w := newWorld(t, "certificate_id,store_id,job_time\n"+
		"1001,"+storeA+","+at.Format(time.RFC3339)+"\n"+
		"1002,"+storeB+",\n")
	w.cfg.JobTime = flag
	w.mustRun()
	got := map[int]time.Time{}
	for _, d := range w.sim.Ledger().Deploys {
		if d.JobTime == nil {
			t.Fatalf("deploy of %d without JobTime", d.CertificateId)
		}
		got[d.CertificateId] = *d.JobTime
	}
	l := w.sim.Ledger()
	for _, r := range l.Renewals {
		want := flag
		if r.OldCertificateId == 1001 {
			want = at
		}
		if !got[r.NewCertificateId].Equal(want) {
			t.Errorf("certificate %d: JobTime %s, want %s", r.OldCertificateId, got[r.NewCertificateId], want)
		}
	}
	if len(l.Renewals) != 2 {
		t.Fatalf("%d renewals, want 2", len(l.Renewals))
	}
}

func TestLegacyDeployShape(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA, "www", "true"), row(1001, storeB, "www", "true")))
	w.cfg.LegacyDeploy = true
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	wantRow(t, rep, 3, report.Succeeded, report.StageDeploy, "job created")
	l := w.sim.Ledger()
	if len(l.Deploys) != 1 || !l.Deploys[0].Legacy {
		t.Fatalf("want one deploy in the pre-9.4 shape, got %+v", l.Deploys)
	}
	if len(l.Jobs) != 2 {
		t.Fatalf("%d management jobs, want one per store (2): %+v", len(l.Jobs), l.Jobs)
	}
	for _, j := range l.Jobs {
		if j.Alias != "www" || !j.Overwrite {
			t.Errorf("job %s lost alias/overwrite in the legacy shape: %+v", j.Id, j)
		}
	}
}

// The search for newer same-subject certificates goes many subjects to a
// request, and every batch stays inside IIS's query-string limit (kfsim
// refuses a longer one as IIS does, and the world fails on it), even with
// long subject names.
func TestHolderSearchBatchesFitTheQueryStringLimit(t *testing.T) {
	const n = 300
	rows := make([]string, n)
	for i := range rows {
		rows[i] = row(5000+i, storeA)
	}
	w := newWorld(t, planText(rows...), withFixture(func(f *kfsim.Fixture) {
		for i := range f.Certificates {
			c := &f.Certificates[i]
			c.IssuedCN = fmt.Sprintf("service-%d.a-rather-long-department-name.eu-west.example.com", c.Id)
			c.IssuedDN = "CN=" + c.IssuedCN
		}
	}))
	w.cfg.Concurrency = 8
	rep := w.mustRun()
	for line := 2; line <= n+1; line++ {
		wantRow(t, rep, line, report.Succeeded, report.StageDeploy, "job created")
	}
	reads := len(certificateListReads(w))
	// 3 by-id reads of 100 and, at ~20 of these subjects to a search, ~15
	// searches; one search per certificate would be 300.
	if reads == 0 || reads > n/10 {
		t.Errorf("%d certificate reads for %d certificates, want the searches batched", reads, n)
	}
}

// An IIS configured stricter than its default refuses the batched reads
// (404.15); the runner reads and searches one certificate at a time
// instead, and the night still renews each certificate once.
func TestStricterIISQueryLimitFallsBackToOneAtATime(t *testing.T) {
	const n = 30
	rows := make([]string, n)
	for i := range rows {
		rows[i] = row(5000+i, storeA)
	}
	w := newWorld(t, planText(rows...), withOptions(func(o *kfsim.Options) { o.MaxQueryString = 400 }))
	rep := w.mustRun()
	for line := 2; line <= n+1; line++ {
		wantRow(t, rep, line, report.Succeeded, report.StageDeploy, "job created")
	}
	l := w.sim.Ledger()
	reads := certificateListReads(w)
	refused := 0
	for _, r := range reads {
		if r.Status == 404 {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no batched read was refused: the test does not exercise the fallback")
	}
	if len(reads) < n {
		t.Errorf("%d certificate reads, want at least one per certificate after the refusals", len(reads))
	}
	for i := range n {
		if got := renewalsOf(l, 5000+i); got != 1 {
			t.Errorf("certificate %d renewed %d times, want 1", 5000+i, got)
		}
	}
}

// certificateListReads are the ledger's GET /Certificates requests.
func certificateListReads(w *world) []kfsim.Request {
	var out []kfsim.Request
	for _, r := range w.sim.Ledger().Requests {
		if r.Method == "GET" && r.Endpoint == "certificates" {
			out = append(out, r)
		}
	}
	return out
}
