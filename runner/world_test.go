package runner_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"runner/journal"
	"runner/keyfactor"
	"runner/kfsim"
	"runner/plan"
	"runner/report"
	"runner/runner"
)

// The runner is tested end to end: a real keyfactor.Client talks HTTP to a
// kfsim.Server on loopback, and every run is checked against kfsim's
// ledger (checkInvariants) before the test looks at its own expectations.

var _ runner.Client = (*keyfactor.Client)(nil)

const (
	testDomain   = "CORP"
	testUser     = "svc-runner"
	testPassword = "s3cret-for-tests"
	testIdentity = testDomain + `\` + testUser
)

// Store ids used across the tests.
const (
	storeA = "11111111-1111-4111-8111-111111111111"
	storeB = "22222222-2222-4222-8222-222222222222"
	storeC = "33333333-3333-4333-8333-333333333333"
	storeD = "44444444-4444-4444-8444-444444444444" // container 2
)

// renewPerms are the permissions renewal needs, each by its own name.
var renewPerms = []string{keyfactor.PermCertificatesRead, keyfactor.PermEnrollPFX, keyfactor.PermStoresRead, keyfactor.PermStoresSchedule}

// world is one simulated Command with a runner pointed at it.
type world struct {
	t         testing.TB
	sim       *kfsim.Server
	srv       *httptest.Server
	client    *keyfactor.Client
	journal   *journal.Journal
	statePath string
	plan      *plan.Plan
	cfg       runner.Config
	dir       string
	// refusedOK lets a test expect deploys Command refuses (its window is
	// shorter than the runner's).
	refusedOK bool
	// answersEdited is set by a test whose client changes Command's answers
	// on the way (a lying server): the ledger then knows more than runner
	// could, and a failed row may have been deployed.
	answersEdited bool
	// simWindow is the simulator's staging window, the ground truth of
	// when a renewal can no longer be deployed.
	simWindow time.Duration
	// clock, when set (withManualClock), is the simulator's clock; offset is
	// how far advance moved it and the runner's clock with it.
	clock  *kfsim.ManualClock
	offset time.Duration
	// shared is set by shareClock: the runner reads the simulator's clock.
	shared bool
}

// withManualClock gives the simulator a clock that moves only by advance,
// which moves the runner's clock too.
func withManualClock() worldOption {
	return func(o *kfsim.Options, _ *kfsim.Fixture) { o.Clock = kfsim.NewManualClock(time.Now()) }
}

// advance moves both clocks by d, as if the next run happened d later.
func (w *world) advance(d time.Duration) {
	w.t.Helper()
	if w.clock == nil {
		w.t.Fatal("advance needs withManualClock")
	}
	w.clock.Advance(d)
	w.offset += d
	if w.shared {
		return // the runner reads the clock just moved
	}
	offset := w.offset
	w.cfg.Now = func() time.Time { return time.Now().Add(offset) }
}

// shareClock makes the runner read the simulator's manual clock
// (withManualClock): no time passes for either but by advance or a client
// wrapper moving the clock, so deadlines the runner measures with its clock
// (deploy window, verify timeout) pass exactly when the test says, however
// slow the machine. Only the runner's real waits between attempts (backoff,
// verify interval) still take real time; they decide nothing.
func (w *world) shareClock() {
	w.t.Helper()
	if w.clock == nil {
		w.t.Fatal("shareClock needs withManualClock")
	}
	w.shared = true
	w.cfg.Now = w.clock.Now
}

// advanceOnVerifyReads moves the simulator's clock (shared with the
// runner, shareClock) by `by` after each read with locations of a
// certificate it saw deployed (a verify poll), so each poll after a
// certificate's first is `by` later. The clock stands still while any
// certificate deployed so far has not been read yet: every certificate's
// first poll happens at the instant of its deploy, whatever the other
// certificates' polls do meanwhile.
type advanceOnVerifyReads struct {
	runner.Client
	clock *kfsim.ManualClock
	by    time.Duration

	mu     sync.Mutex
	unread map[int]bool // deployed certificate → not read since its deploy
}

func (c *advanceOnVerifyReads) Deploy(ctx context.Context, req keyfactor.DeployRequest) (*keyfactor.DeployResponse, error) {
	resp, err := c.Client.Deploy(ctx, req)
	if err == nil && req.CertificateId != 0 {
		c.mu.Lock()
		if c.unread == nil {
			c.unread = map[int]bool{}
		}
		c.unread[req.CertificateId] = true
		c.mu.Unlock()
	}
	return resp, err
}

func (c *advanceOnVerifyReads) GetCertificate(ctx context.Context, id int, includeLocations bool) (*keyfactor.Certificate, error) {
	cert, err := c.Client.GetCertificate(ctx, id, includeLocations)
	c.mu.Lock()
	defer c.mu.Unlock()
	unread, deployed := c.unread[id]
	if !includeLocations || !deployed {
		return cert, err
	}
	if unread {
		c.unread[id] = false
	}
	for _, u := range c.unread {
		if u {
			return cert, err
		}
	}
	c.clock.Advance(c.by)
	return cert, err
}

// certificateReads returns the instants of the ledger's reads of
// certificate id (GET /Certificates/{id}), in order.
func certificateReads(l kfsim.Ledger, id int) []time.Time {
	var out []time.Time
	for _, r := range l.Requests {
		if r.Endpoint == "certificate" && strings.HasSuffix(r.Path, "/"+strconv.Itoa(id)) {
			out = append(out, r.At)
		}
	}
	return out
}

// jobOf returns the ledger's management job putting certificate id into
// store.
func jobOf(t testing.TB, l kfsim.Ledger, id int, store string) kfsim.Job {
	t.Helper()
	for _, j := range l.Jobs {
		if j.CertificateId == id && strings.EqualFold(j.StoreId, store) {
			return j
		}
	}
	t.Fatalf("no job puts %d into store %s: %+v", id, store, l.Jobs)
	return kfsim.Job{}
}

type worldOption func(*kfsim.Options, *kfsim.Fixture)

func withPermissions(perms ...string) worldOption {
	return func(_ *kfsim.Options, f *kfsim.Fixture) { f.Users[0].Permissions = perms }
}

func withOptions(edit func(*kfsim.Options)) worldOption {
	return func(o *kfsim.Options, _ *kfsim.Fixture) { edit(o) }
}

func withFixture(edit func(*kfsim.Fixture)) worldOption {
	return func(_ *kfsim.Options, f *kfsim.Fixture) { edit(f) }
}

// newWorld seeds a simulator from the plan text (every certificate expiring
// in 20 days, installed in its stores) and opens a fresh journal.
func newWorld(t testing.TB, planCSV string, opts ...worldOption) *world {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "plan.csv")
	if err := os.WriteFile(path, []byte(planCSV), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Load(path, plan.Options{AllowPastJobTime: true})
	if err != nil {
		t.Fatalf("parse test plan: %v", err)
	}
	simOpts := kfsim.Options{JobDelay: 50 * time.Millisecond, Seed: 42}
	fx := kfsim.SeedFixture(seedTargets(p), time.Now())
	fx.Containers = append(fx.Containers, kfsim.Container{Id: 2, Name: "DMZ"})
	for i := range fx.Stores {
		if fx.Stores[i].Id == storeD {
			fx.Stores[i].ContainerId = 2
		}
	}
	fx.Users = []kfsim.User{{Username: testUser, Domain: testDomain, Password: testPassword, Permissions: renewPerms}}
	for _, o := range opts {
		o(&simOpts, &fx)
	}
	sim := kfsim.New(simOpts)
	if err := sim.Load(fx); err != nil {
		t.Fatalf("load fixture: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { sim.CheckNoUnknownRoutes(t) })
	client, err := keyfactor.New(keyfactor.Config{
		Hostname: srv.URL, APIPath: sim.BasePath(),
		Username: testUser, Domain: testDomain, Password: testPassword,
		Timeout: 5 * time.Second, GetRetries: 1,
	})
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	w := &world{t: t, sim: sim, srv: srv, client: client, plan: p, dir: dir, statePath: filepath.Join(dir, "state.db"), cfg: runner.Config{
		Concurrency: 4, Window: 5 * time.Minute, WindowMargin: 30 * time.Second, Identity: testIdentity,
	}, simWindow: simOpts.Window}
	if w.simWindow == 0 {
		w.simWindow = kfsim.DefaultWindow
	}
	if c, ok := simOpts.Clock.(*kfsim.ManualClock); ok {
		w.clock = c
	}
	w.openJournal()
	return w
}

// openJournal opens the world's state file, as a new process would.
func (w *world) openJournal() {
	w.t.Helper()
	j, err := journal.Open(w.statePath, journal.Options{Command: w.client.BaseURL()})
	if err != nil {
		w.t.Fatalf("open journal: %v", err)
	}
	w.journal = j
	w.t.Cleanup(func() { j.Close() })
}

// restart closes the journal and opens it again: the next run is a new
// process with the same state.
func (w *world) restart() {
	w.t.Helper()
	if err := w.journal.Close(); err != nil {
		w.t.Fatalf("close journal: %v", err)
	}
	w.openJournal()
}

// setPlan replaces the plan the next runs use.
func (w *world) setPlan(planCSV string) {
	w.t.Helper()
	path := filepath.Join(w.dir, "plan.csv")
	if err := os.WriteFile(path, []byte(planCSV), 0o600); err != nil {
		w.t.Fatal(err)
	}
	p, err := plan.Load(path, plan.Options{AllowPastJobTime: true})
	if err != nil {
		w.t.Fatalf("parse test plan: %v", err)
	}
	w.plan = p
}

func seedTargets(p *plan.Plan) []kfsim.SeedTarget {
	var out []kfsim.SeedTarget
	for _, r := range p.Rows {
		out = append(out, kfsim.SeedTarget{CertificateID: r.CertificateID, Thumbprint: r.Thumbprint, StoreID: r.StoreID, Alias: r.Alias, NeedsPassword: !r.Password.IsZero()})
	}
	return out
}

// run runs the plan with client (nil: the world's) and checks the run's
// invariants against the ledger.
func (w *world) runWith(ctx context.Context, client runner.Client) (*report.Report, error) {
	w.t.Helper()
	if client == nil {
		client = w.client
	}
	before := w.sim.Ledger()
	r := &runner.Runner{Client: client, Journal: w.journal, Config: w.cfg}
	rep, err := r.Run(ctx, w.plan)
	checkInvariants(w.t, w, rep, before)
	return rep, err
}

func (w *world) run(ctx context.Context) (*report.Report, error) {
	w.t.Helper()
	return w.runWith(ctx, nil)
}

func (w *world) mustRun() *report.Report {
	w.t.Helper()
	rep, err := w.run(context.Background())
	if err != nil {
		w.t.Fatalf("run: %v", err)
	}
	return rep
}

// checkInvariants is the tests' oracle, run after every run: what the
// report says is what the ledger shows, and the promises hold.
//
//   - Every plan row (of the shard) is in the report exactly once, with a
//     final status; "not started" only when the run was interrupted.
//   - A certificate is renewed at most once per need: a second renewal of
//     the same certificate only after the first was denied or issued
//     nothing, or its staging window passed without any store getting it.
//   - Every deploy of this run went out by the renewing user inside the
//     simulator's staging window (simWindow), unless refusedOK.
//   - A row reported succeeded at deploy or verify has a successful deploy
//     of its new certificate to its store in the ledger; a row reported
//     failed before verification has none in this run.
//   - Every new certificate a row names was issued by a renewal.
func checkInvariants(t testing.TB, w *world, rep *report.Report, before kfsim.Ledger) {
	t.Helper()
	if rep == nil {
		t.Fatal("no report")
	}
	l := w.sim.Ledger()

	lines := map[int]int{}
	for _, r := range rep.Rows {
		lines[r.Line]++
		switch r.Status {
		case report.Succeeded, report.Failed, report.Skipped:
		default:
			t.Errorf("line %d: status %q", r.Line, r.Status)
		}
		if r.Stage == report.StagePlan && !rep.Run.Interrupted {
			t.Errorf("line %d left %q at stage plan without an interrupt", r.Line, r.Detail)
		}
	}
	wantRows := 0
	for _, pr := range w.plan.Rows {
		if w.cfg.Shard.Count == 0 || runner.ShardOf(jobKeyOf(w.plan, pr), w.cfg.Shard.Count) == w.cfg.Shard.Index {
			wantRows++
			if lines[pr.Line] != 1 {
				t.Errorf("plan line %d appears %d times in the report", pr.Line, lines[pr.Line])
			}
		}
	}
	if len(rep.Rows) != wantRows {
		t.Errorf("report has %d rows, the plan (shard) %d", len(rep.Rows), wantRows)
	}

	deployedOK := func(newID, requestID int, deploys []kfsim.Deploy, store string) bool {
		for _, d := range deploys {
			if d.Refused != "" {
				continue
			}
			if (newID != 0 && d.CertificateId == newID) || (requestID != 0 && d.RequestId == requestID) {
				if store == "" && len(d.Successful) > 0 || slices.Contains(d.Successful, store) {
					return true
				}
			}
		}
		return false
	}
	byOld := map[int][]kfsim.Renewal{}
	issued := map[int]bool{}
	for _, r := range l.Renewals {
		byOld[r.OldCertificateId] = append(byOld[r.OldCertificateId], r)
		if r.NewCertificateId != 0 {
			issued[r.NewCertificateId] = true
		}
	}
	for old, rs := range byOld {
		for i := 1; i < len(rs); i++ {
			a, b := rs[i-1], rs[i]
			dead := a.Denied || (a.NewCertificateId == 0 && a.RequestId == 0) || (!deployedOK(a.NewCertificateId, a.RequestId, l.Deploys, "") && b.At.Sub(a.At) > w.simWindow)
			if !dead {
				t.Errorf("certificate %d renewed again at %s while its renewal of %s (new %d, request %d) was still deployable or deployed", old, b.At, a.At, a.NewCertificateId, a.RequestId)
			}
		}
	}
	ran := l.Deploys[len(before.Deploys):]
	for _, d := range ran {
		if d.Refused != "" {
			if !w.refusedOK {
				t.Errorf("Command refused a deploy of %d (request %d): %s", d.CertificateId, d.RequestId, d.Refused)
			}
			continue
		}
		if !strings.EqualFold(d.StagedBy, d.Identity) {
			t.Errorf("deploy of %d by %q, staged by %q", d.CertificateId, d.Identity, d.StagedBy)
		}
		if d.At.Sub(d.StagedAt) > w.simWindow {
			t.Errorf("deploy of %d at %s, %s after staging", d.CertificateId, d.At, d.At.Sub(d.StagedAt))
		}
	}
	for _, r := range rep.Rows {
		newID, reqID := r.NewCertificateID, r.RequestID
		switch {
		case r.Status == report.Succeeded && (r.Stage == report.StageDeploy || r.Stage == report.StageVerify):
			if !deployedOK(newID, reqID, l.Deploys, r.StoreID) {
				t.Errorf("line %d reported %s (%s), but the ledger has no successful deploy of %d/request %d to %s", r.Line, r.Status, r.Detail, newID, reqID, r.StoreID)
			}
		case r.Status == report.Failed && r.Stage != report.StageVerify && (newID != 0 || reqID != 0) && !w.answersEdited:
			if deployedOK(newID, reqID, ran, r.StoreID) {
				t.Errorf("line %d reported failed (%s), but this run deployed %d/request %d to %s", r.Line, r.Detail, newID, reqID, r.StoreID)
			}
		}
		if newID != 0 && !issued[newID] {
			t.Errorf("line %d names new certificate %d, which no renewal issued", r.Line, newID)
		}
	}
}

// jobKeyOf is the plan job key of a row.
func jobKeyOf(p *plan.Plan, pr *plan.Row) string {
	for _, j := range p.Jobs {
		if slices.Contains(j.Rows, pr) {
			return j.Key
		}
	}
	return ""
}

// renewalsOf counts the ledger's renewals of a certificate.
func renewalsOf(l kfsim.Ledger, certID int) int {
	n := 0
	for _, r := range l.Renewals {
		if r.OldCertificateId == certID {
			n++
		}
	}
	return n
}

func rowsByLine(rep *report.Report) map[int]report.Row {
	m := map[int]report.Row{}
	for _, r := range rep.Rows {
		m[r.Line] = r
	}
	return m
}

func wantRow(t testing.TB, rep *report.Report, line int, status report.Status, stage report.Stage, detailContains string) report.Row {
	t.Helper()
	r, ok := rowsByLine(rep)[line]
	if !ok {
		t.Fatalf("no report row for line %d", line)
	}
	if r.Status != status || r.Stage != stage || !strings.Contains(r.Detail, detailContains) {
		t.Errorf("line %d: got %s/%s %q (error %q), want %s/%s containing %q", line, r.Status, r.Stage, r.Detail, r.Error, status, stage, detailContains)
	}
	return r
}

func planText(rows ...string) string {
	return "certificate_id,store_id,alias,overwrite,password,template,certificate_authority,renew_before\n" + strings.Join(rows, "\n") + "\n"
}

func row(cert int, store string, rest ...string) string {
	cells := append([]string{fmt.Sprint(cert), store}, rest...)
	for len(cells) < 8 {
		cells = append(cells, "")
	}
	return strings.Join(cells, ",")
}

func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustFault(t testing.TB, spec string) kfsim.FaultRule {
	t.Helper()
	r, err := kfsim.ParseFault(spec)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
