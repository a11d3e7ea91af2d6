package runner_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"runner/keyfactor"
	"runner/kfsim"
	"runner/report"
	"runner/runner"
)

// A real Command's behaviour (issue 7): inherited permissions, capped
// pages, refusals that come as a 200, tokens that expire, inventory that
// takes its time.

func TestInheritedPermissions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		perms []string
	}{
		{"administrator with /", []string{"/"}},
		{"parents only", []string{"/certificates/", "/certificate_stores/"}},
		{"container-scoped schedule under a parent", []string{"/certificates/", "/certificate_stores/read/", "/certificate_stores/schedule/1/", "/certificate_stores/schedule/2/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, planText(row(1001, storeA), row(1001, storeD)), withPermissions(tc.perms...))
			rep := w.mustRun()
			wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
			wantRow(t, rep, 3, report.Succeeded, report.StageDeploy, "job created")
		})
	}
}

// Command caps the page size whatever was asked: 128 stores, pages of 50,
// and the plan's stores on the last page are found.
func TestCappedPagesOfStores(t *testing.T) {
	last := func(i int) string { return fmt.Sprintf("cccccccc-0000-4000-8000-%012d", i) }
	w := newWorld(t, planText(row(1001, last(126)), row(1002, last(127))), withOptions(func(o *kfsim.Options) { o.MaxPageSize = 50 }), withFixture(func(f *kfsim.Fixture) {
		// Command lists stores in the fixture's order: the plan's two
		// (seeded from it) go after 126 others, onto the third page.
		var others []kfsim.Store
		for i := range 126 {
			others = append(others, kfsim.Store{Id: last(i), ContainerId: 1, ClientMachine: fmt.Sprintf("h%d", i), StorePath: "/p", CertStoreType: 1})
		}
		f.Stores = append(others, f.Stores...)
	}))
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	wantRow(t, rep, 3, report.Succeeded, report.StageDeploy, "job created")
	pages := 0
	for _, r := range w.sim.Ledger().Requests {
		if r.Endpoint == "stores" {
			pages++
		}
	}
	if pages < 3 {
		t.Errorf("%d store pages read for 128 stores at 50 a page", pages)
	}
}

// Renew answered 200 with DENIED: the row fails at renew with Command's
// message, nothing is deployed, and the next run fails loudly again.
func TestDeniedRenewalFailsAtRenew(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1002, storeB)), withFixture(func(f *kfsim.Fixture) {
		f.Certificates[0].RenewDisposition, f.Certificates[0].DispositionMessage = "DENIED", "Policy forbids renewal of this certificate."
	}))
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Failed, report.StageRenew, "Policy forbids renewal of this certificate.")
	wantRow(t, rep, 3, report.Succeeded, report.StageDeploy, "job created")
	for _, d := range w.sim.Ledger().Deploys {
		if d.CertificateId == 0 && d.RequestId == 0 {
			t.Errorf("a deploy without a certificate: %+v", d)
		}
	}
	if n := len(w.sim.Ledger().Deploys); n != 1 {
		t.Errorf("%d deploys, want only 1002's", n)
	}
	rep = w.mustRun()
	wantRow(t, rep, 2, report.Failed, report.StageRenew, "was denied in Command")
}

// A FAILED disposition issued nothing: the row fails, and the next run may
// try again.
func TestFailedDispositionIsTriedAgainNextRun(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA)), withFixture(func(f *kfsim.Fixture) {
		f.Certificates[0].RenewDisposition, f.Certificates[0].DispositionMessage = "FAILED", "The CA is offline."
	}))
	rep := w.mustRun()
	wantRow(t, rep, 2, report.Failed, report.StageRenew, "The CA is offline.")
	rep = w.mustRun()
	wantRow(t, rep, 2, report.Failed, report.StageRenew, "The CA is offline.")
	if n := renewalsOf(w.sim.Ledger(), 1001); n != 2 {
		t.Errorf("%d renew attempts, want one per run", n)
	}
}

// advanceOnRenew moves the simulator's clock past the token's lifetime
// after the first Renew: the next request meets an expired token.
type advanceOnRenew struct {
	runner.Client
	clock *kfsim.ManualClock
	by    time.Duration
	once  atomic.Bool
}

func (c *advanceOnRenew) Renew(ctx context.Context, req keyfactor.RenewalRequest) (*keyfactor.RenewalResponse, error) {
	resp, err := c.Client.Renew(ctx, req)
	if c.once.CompareAndSwap(false, true) {
		c.clock.Advance(c.by)
	}
	return resp, err
}

// An OAuth token that expires within a run is fetched again; no row fails
// with 401.
func TestOAuthTokenExpiringMidRunIsRenewed(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1002, storeB), row(1003, storeC)), withManualClock(),
		withOptions(func(o *kfsim.Options) { o.TokenLifetime, o.Window = time.Minute, time.Hour }),
		withFixture(func(f *kfsim.Fixture) {
			f.Clients = []kfsim.OAuthClient{{ClientID: "runner-bot", ClientSecret: "bot-secret-for-tests", Permissions: renewPerms}}
		}))
	client, err := keyfactor.New(keyfactor.Config{Hostname: w.srv.URL, APIPath: w.sim.BasePath(), ClientID: "runner-bot", ClientSecret: "bot-secret-for-tests",
		TokenURL: w.srv.URL + "/_kfsim/oauth/token", Timeout: 5 * time.Second, GetRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	w.cfg.Concurrency, w.cfg.Identity = 1, "runner-bot"
	rep, err := w.runWith(context.Background(), &advanceOnRenew{Client: client, clock: w.clock, by: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for line := 2; line <= 4; line++ {
		wantRow(t, rep, line, report.Succeeded, report.StageDeploy, "job created")
	}
	var unauthorized, tokens int
	for _, r := range w.sim.Ledger().Requests {
		switch {
		case r.Endpoint == "token":
			tokens++
		case r.Status == 401:
			unauthorized++
		}
	}
	if unauthorized == 0 || tokens < 2 {
		t.Errorf("the token never expired (401s: %d, tokens: %d): the test proves nothing", unauthorized, tokens)
	}
}

// Inventory takes its time (Command: about 30 s after the job); --verify
// waits for it and the rows succeed at verify, seen in the store. The
// runner reads the simulator's clock, and each poll after a certificate's
// first is 20 s later (advanceOnVerifyReads): the first two polls come
// before inventory shows the certificate, the third after.
func TestVerifyWaitsForSlowInventory(t *testing.T) {
	const inventory = 30 * time.Second
	w := newWorld(t, planText(row(1001, storeA), row(1002, storeB)), withManualClock(), withOptions(func(o *kfsim.Options) {
		o.JobDelay, o.InventoryDelay = -1, inventory
	}))
	w.shareClock()
	w.cfg.Verify, w.cfg.VerifyTimeout, w.cfg.VerifyInterval = true, 10*time.Minute, 20*time.Millisecond
	rep, err := w.runWith(context.Background(), &advanceOnVerifyReads{Client: w.client, clock: w.clock, by: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l := w.sim.Ledger()
	for _, tc := range []struct {
		line  int
		store string
	}{{2, storeA}, {3, storeB}} {
		r := wantRow(t, rep, tc.line, report.Succeeded, report.StageVerify, "seen in store")
		job := jobOf(t, l, r.NewCertificateID, tc.store)
		if job.State != kfsim.JobSucceeded || job.InventoryAt.Sub(job.RunAt) != inventory {
			t.Fatalf("line %d: job %+v, want one that succeeded and shows in inventory %s after it ran", tc.line, job, inventory)
		}
		// Polls before inventory showed the certificate, then exactly one
		// after it (the one that saw it), which is the last.
		reads := certificateReads(l, r.NewCertificateID)
		before := 0
		for _, at := range reads {
			if at.Before(job.InventoryAt) {
				before++
			}
		}
		if before == 0 || before != len(reads)-1 {
			t.Errorf("line %d: reads of %d at %v, inventory at %s: want reads before it, then one after", tc.line, r.NewCertificateID, reads, job.InventoryAt)
		}
		if r.VerifiedAt.Before(job.InventoryAt) {
			t.Errorf("line %d verified at %s, before inventory showed it at %s", tc.line, r.VerifiedAt, job.InventoryAt)
		}
	}
}

// cancelAfterDeploys cancels the run when the n-th Deploy returns.
type cancelAfterDeploys struct {
	runner.Client
	n       int32
	deploys atomic.Int32
	cancel  context.CancelFunc
}

func (c *cancelAfterDeploys) Deploy(ctx context.Context, req keyfactor.DeployRequest) (*keyfactor.DeployResponse, error) {
	resp, err := c.Client.Deploy(ctx, req)
	if c.deploys.Add(1) == c.n {
		c.cancel()
	}
	return resp, err
}

// Verification never holds a renew→deploy worker: with one worker and an
// inventory that never answers, every certificate is still deployed.
func TestVerificationNeverDelaysAnotherDeploy(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA), row(1002, storeB), row(1003, storeC)), withOptions(func(o *kfsim.Options) {
		o.JobDelay, o.InventoryDelay = -1, 24*time.Hour
	}))
	w.cfg.Verify, w.cfg.VerifyTimeout, w.cfg.VerifyInterval, w.cfg.Concurrency = true, time.Hour, 10*time.Millisecond, 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan *report.Report)
	go func() {
		rep, _ := w.runWith(ctx, &cancelAfterDeploys{Client: w.client, n: 3, cancel: cancel})
		done <- rep
	}()
	select {
	case rep := <-done:
		for line := 2; line <= 4; line++ {
			wantRow(t, rep, line, report.Failed, report.StageVerify, "not verified: run interrupted")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the second deploy never went out while the first certificate was being verified")
	}
}
