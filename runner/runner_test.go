package runner_test

import (
	"context"
	"errors"
	"path/filepath"
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
	checkLedgerMatchesReport(t, w, rep)
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
	checkLedgerMatchesReport(t, w, rep)
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
	}))
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	wantRow(t, rep, 3, report.Failed, report.StagePreflight, "store not found")
}

func TestNotDueRowsAreSkippedUnlessForced(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1002, storeB, "", "", "", "", "", "10d")), withFixture(func(f *kfsim.Fixture) {
		for i := range f.Certificates {
			f.Certificates[i].NotAfter = time.Now().Add(200 * 24 * time.Hour)
		}
	}))
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Skipped, report.StageCheck, "not due until "+time.Now().Add(170*24*time.Hour).UTC().Format("2006-01-02"))
	wantRow(t, rep, 3, report.Skipped, report.StageCheck, "not due until "+time.Now().Add(190*24*time.Hour).UTC().Format("2006-01-02"))
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

func TestDeployFailingUntilWindowCloses(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1001, storeB)))
	rule, err := kfsim.ParseFault("deploy:503")
	if err != nil {
		t.Fatal(err)
	}
	w.sim.SetFaults(rule)
	w.cfg.Window, w.cfg.WindowMargin = 2*time.Second, 500*time.Millisecond
	rep := w.mustRun()
	for _, line := range []int{2, 3} {
		r := wantRow(t, rep, line, report.Failed, report.StageDeploy, "window expired")
		if r.NewCertificateID == 0 {
			t.Errorf("line %d: a window-expired row must carry the new certificate id so nothing is lost", line)
		}
	}
	l := w.sim.Ledger()
	if n := renewalsOf(l, 1001); n != 1 {
		t.Errorf("renewed %d times, want 1", n)
	}
	deployAttempts := 0
	for _, r := range l.Requests {
		if r.Endpoint == "deploy" {
			deployAttempts++
		}
	}
	if deployAttempts < 2 {
		t.Errorf("deploy attempted %d times; retryable failures must be retried until the deadline", deployAttempts)
	}

	// A rerun after the window finds the earlier renewal and does not
	// renew again.
	w.sim.SetFaults()
	w.cfg.Now = func() time.Time { return time.Now().Add(time.Minute) }
	rep = w.mustRun()
	wantRow(t, rep, 2, report.Failed, report.StageDeploy, "never deployed to this store")
	if n := renewalsOf(w.sim.Ledger(), 1001); n != 1 {
		t.Errorf("rerun renewed again: %d renewals", n)
	}
}

func TestUnknownRenewOutcomeIsResolvedWithoutSecondRenewal(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1002, storeB)))
	rule, err := kfsim.ParseFault("renew:drop-after:times=1")
	if err != nil {
		t.Fatal(err)
	}
	w.sim.SetFaults(rule)
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
	checkLedgerMatchesReport(t, w, rep)
}

func TestRetryableRenewIsRetried(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA)))
	rule, err := kfsim.ParseFault("renew:429:times=2,retry-after=0s")
	if err != nil {
		t.Fatal(err)
	}
	w.sim.SetFaults(rule)
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	if n := renewalsOf(w.sim.Ledger(), 1001); n != 1 {
		t.Errorf("renewed %d times, want 1", n)
	}
}

func TestApprovalDeploysByRequestID(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA, "", "", "", "NeedsApproval", `ca\Issuing`)), withFixture(func(f *kfsim.Fixture) {
		f.Templates = append(f.Templates, kfsim.Template{Name: "NeedsApproval", RequiresApproval: true})
	}))
	rep := w.mustRun()
	r := wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "awaits approval")
	if r.RequestID == 0 || r.NewCertificateID != 0 {
		t.Errorf("pending renewal: request id %d, new certificate id %d", r.RequestID, r.NewCertificateID)
	}
	l := w.sim.Ledger()
	if len(l.Deploys) != 1 || l.Deploys[0].RequestId != r.RequestID || l.Deploys[0].CertificateId != 0 {
		t.Fatalf("want one deploy by request id %d, got %+v", r.RequestID, l.Deploys)
	}
	if _, err := w.sim.Approve(r.RequestID); err != nil {
		t.Fatalf("approve: %v", err)
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
}

func TestRerunAfterSuccessDoesNotRenewAgain(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1001, storeB)))
	first := w.mustRun()
	newID := wantRow(t, first, 2, report.Succeeded, report.StageDeploy, "job created").NewCertificateID
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Skipped, report.StageCheck, "renewed as ")
	if n := renewalsOf(w.sim.Ledger(), 1001); n != 1 {
		t.Fatalf("rerun renewed certificate 1001 again (%d renewals)", n)
	}
	if n := renewalsOf(w.sim.Ledger(), newID); n != 0 {
		t.Fatalf("rerun renewed the fresh certificate %d", newID)
	}
}

func TestAuthenticationFailureIsPreflightError(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA)))
	bad, err := keyfactor.New(keyfactor.Config{Hostname: w.srv.URL, APIPath: w.sim.BasePath(), Username: testUser, Domain: testDomain, Password: "wrong", GetRetries: 0})
	if err != nil {
		t.Fatal(err)
	}
	r := &runner.Runner{Client: bad, Journal: w.journal, Config: w.cfg}
	rep, err := r.Run(context.Background(), w.plan)
	var pe *runner.PreflightError
	if !errors.As(err, &pe) {
		t.Fatalf("want *PreflightError, got %v", err)
	}
	wantRow(t, rep, 2, report.Failed, report.StagePreflight, "preflight failed")
	if strings.Contains(rep.Rows[0].Error, "wrong") {
		t.Errorf("the password leaked into the report: %q", rep.Rows[0].Error)
	}
	if len(w.sim.Ledger().Renewals) != 0 {
		t.Fatal("renewed despite failed preflight")
	}
}

// cancelOnRenew cancels the run's context when the first Renew is sent,
// as a first Ctrl-C in the middle of a run would.
type cancelOnRenew struct {
	runner.Client
	cancel context.CancelFunc
	calls  atomic.Int32
}

func (c *cancelOnRenew) Renew(ctx context.Context, req keyfactor.RenewalRequest) (*keyfactor.RenewalResponse, error) {
	if c.calls.Add(1) == 1 {
		c.cancel()
	}
	return c.Client.Renew(ctx, req)
}

func TestInterruptFinishesInFlightWorkAndReportsTheRest(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1002, storeB), row(1003, storeC)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &cancelOnRenew{Client: w.client, cancel: cancel}
	w.cfg.Concurrency = 1
	r := &runner.Runner{Client: client, Journal: w.journal, Config: w.cfg}
	rep, err := r.Run(ctx, w.plan)
	if !errors.Is(err, runner.ErrInterrupted) || !rep.Run.Interrupted {
		t.Fatalf("want ErrInterrupted and an interrupted report, got %v", err)
	}
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	wantRow(t, rep, 3, report.Failed, report.StageCheck, "not started: run interrupted")
	wantRow(t, rep, 4, report.Failed, report.StageCheck, "not started: run interrupted")
	if n := len(w.sim.Ledger().Renewals); n != 1 {
		t.Fatalf("%d renewals after interrupt, want only the in-flight one", n)
	}
	checkLedgerMatchesReport(t, w, rep)
}

func TestVerifyWaitsForInventory(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1001, storeB)), withFixture(func(f *kfsim.Fixture) {
		for i := range f.Stores {
			if f.Stores[i].Id == storeB {
				f.Stores[i].FailJobs = "orchestrator could not reach host"
			}
		}
	}))
	w.cfg.Verify, w.cfg.VerifyTimeout, w.cfg.VerifyInterval = true, 2*time.Second, 20*time.Millisecond
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Succeeded, report.StageVerify, "seen in store")
	wantRow(t, rep, 3, report.Failed, report.StageVerify, "not seen in the store")
}

func TestMaxRenewalsCapsTheRun(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1002, storeB), row(1003, storeC)))
	w.cfg.MaxRenewals = 2
	rep := w.mustRun()
	wantRow(t, rep, 4, report.Skipped, report.StageCheck, "--max-renewals 2")
	if n := len(w.sim.Ledger().Renewals); n != 2 {
		t.Fatalf("%d renewals, want 2", n)
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
// journals it the way that run did before it stopped.
func renewBehindTheRunnersBack(t *testing.T, w *world, complete bool) int {
	t.Helper()
	started := time.Now().UTC()
	if err := w.journal.BeginRenewal(journal.Renewal{Key: "id:1001", OldCertificateID: 1001, Subject: "CN=app1001.example.internal, O=Example, C=US", StartedAt: started}); err != nil {
		t.Fatal(err)
	}
	resp, err := w.client.Renew(context.Background(), keyfactor.RenewalRequest{CertificateId: 1001, Timestamp: started})
	if err != nil {
		t.Fatal(err)
	}
	if complete {
		if err := w.journal.CompleteRenewal("id:1001", resp.KeyfactorId, resp.KeyfactorRequestId, started); err != nil {
			t.Fatal(err)
		}
	}
	return resp.KeyfactorId
}

func TestResumeDeploysAnEarlierRenewalInsideItsWindow(t *testing.T) {
	for _, tc := range []struct {
		name     string
		complete bool // the earlier run learned the new id before it stopped
	}{
		{"crash after renew", true},
		{"crash before the renew answer", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, planText(row(1001, storeA), row(1001, storeB)))
			newID := renewBehindTheRunnersBack(t, w, tc.complete)
			rep := w.mustRun()
			for _, line := range []int{2, 3} {
				if r := wantRow(t, rep, line, report.Succeeded, report.StageDeploy, "job created"); r.NewCertificateID != newID {
					t.Errorf("line %d deployed %d, want the earlier renewal %d", line, r.NewCertificateID, newID)
				}
			}
			if n := renewalsOf(w.sim.Ledger(), 1001); n != 1 {
				t.Fatalf("%d renewals of 1001, want only the earlier one", n)
			}
			checkLedgerMatchesReport(t, w, rep)
		})
	}
}

func TestInFlightAttemptThatNeverReachedCommandIsAbandoned(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA)))
	if err := w.journal.BeginRenewal(journal.Renewal{Key: "id:1001", OldCertificateID: 1001, Subject: "CN=app1001.example.internal, O=Example, C=US", StartedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
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
			NotBefore: time.Now().Add(-400 * 24 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour), TemplateName: "WebServer"}}
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

// noPermissionsEndpoint is an older Command without
// GET /Security/My/Permissions.
type noPermissionsEndpoint struct{ runner.Client }

func (noPermissionsEndpoint) MyPermissions(context.Context) ([]string, error) {
	return nil, &keyfactor.APIError{Method: "GET", Endpoint: "/Security/My/Permissions", Status: 404, Message: "not found"}
}

func TestOlderCommandWithoutPermissionsEndpointLeavesChecksToDeploy(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1001, storeD)),
		withPermissions(keyfactor.PermCertificatesRead, keyfactor.PermEnrollPFX, keyfactor.PermStoresRead, "/certificate_stores/schedule/1/"))
	r := &runner.Runner{Client: noPermissionsEndpoint{w.client}, Journal: w.journal, Config: w.cfg}
	rep, err := r.Run(context.Background(), w.plan)
	if err != nil {
		t.Fatalf("a 404 from /Security/My/Permissions must be tolerated: %v", err)
	}
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	// Unchecked in preflight, the store without permission lands in FailedStores.
	wantRow(t, rep, 3, report.Failed, report.StageDeploy, "FailedStores")
	checkLedgerMatchesReport(t, w, rep)
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
	for _, j := range l.Jobs {
		if j.Alias != "www" || !j.Overwrite {
			t.Errorf("job %s lost alias/overwrite in the legacy shape: %+v", j.Id, j)
		}
	}
	checkLedgerMatchesReport(t, w, rep)
}
