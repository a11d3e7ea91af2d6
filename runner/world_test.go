package runner_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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
// kfsim.Server on loopback, and outcomes are checked against kfsim's ledger.

var _ runner.Client = (*keyfactor.Client)(nil)

const (
	testDomain   = "CORP"
	testUser     = "svc-runner"
	testPassword = "s3cret-for-tests"
)

// Store ids used across the tests.
const (
	storeA = "11111111-1111-4111-8111-111111111111"
	storeB = "22222222-2222-4222-8222-222222222222"
	storeC = "33333333-3333-4333-8333-333333333333"
	storeD = "44444444-4444-4444-8444-444444444444" // container 2
)

// world is one simulated Command with a runner pointed at it.
type world struct {
	t       testing.TB
	sim     *kfsim.Server
	srv     *httptest.Server
	client  *keyfactor.Client
	journal *journal.Journal
	plan    *plan.Plan
	cfg     runner.Config
	dir     string
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
// in 20 days) and opens a fresh journal.
func newWorld(t testing.TB, planCSV string, opts ...worldOption) *world {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "plan.csv")
	p, err := plan.Parse(strings.NewReader(planCSV), path, plan.Options{})
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
	fx.Users = []kfsim.User{{Username: testUser, Domain: testDomain, Password: testPassword, Permissions: []string{
		keyfactor.PermCertificatesRead, keyfactor.PermEnrollPFX, keyfactor.PermStoresRead, keyfactor.PermStoresSchedule,
	}}}
	for _, o := range opts {
		o(&simOpts, &fx)
	}
	sim := kfsim.New(simOpts)
	if err := sim.Load(fx); err != nil {
		t.Fatalf("load fixture: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	client, err := keyfactor.New(keyfactor.Config{
		Hostname: srv.URL, APIPath: sim.BasePath(),
		Username: testUser, Domain: testDomain, Password: testPassword,
		Timeout: 5 * time.Second, GetRetries: 1,
	})
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	j := openJournal(t, filepath.Join(dir, "state.db"))
	return &world{t: t, sim: sim, srv: srv, client: client, journal: j, plan: p, dir: dir, cfg: runner.Config{
		Concurrency: 4, Window: 5 * time.Minute, WindowMargin: 30 * time.Second, Identity: testDomain + `\` + testUser,
	}}
}

func openJournal(t testing.TB, path string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(path)
	if err != nil {
		t.Fatalf("open journal: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func seedTargets(p *plan.Plan) []kfsim.SeedTarget {
	var out []kfsim.SeedTarget
	for _, r := range p.Rows {
		out = append(out, kfsim.SeedTarget{CertificateID: r.CertificateID, Thumbprint: r.Thumbprint, StoreID: r.StoreID, Alias: r.Alias, NeedsPassword: !r.Password.IsZero()})
	}
	return out
}

func (w *world) run(ctx context.Context) (*report.Report, error) {
	w.t.Helper()
	r := &runner.Runner{Client: w.client, Journal: w.journal, Config: w.cfg}
	return r.Run(ctx, w.plan)
}

func (w *world) mustRun() *report.Report {
	w.t.Helper()
	rep, err := w.run(context.Background())
	if err != nil {
		w.t.Fatalf("run: %v", err)
	}
	if len(rep.Rows) != len(w.plan.Rows) {
		w.t.Fatalf("report has %d rows, plan %d: every plan row must end in the report", len(rep.Rows), len(w.plan.Rows))
	}
	return rep
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

// checkLedgerMatchesReport asserts the invariants against ground truth:
// every succeeded deploy row has a ledger deploy by the renewing user,
// inside the window, naming its store as successful; no certificate was
// renewed twice.
func checkLedgerMatchesReport(t testing.TB, w *world, rep *report.Report) {
	t.Helper()
	l := w.sim.Ledger()
	renewedBy := map[int]kfsim.Renewal{}
	for _, r := range l.Renewals {
		if _, dup := renewedBy[r.OldCertificateId]; dup {
			t.Errorf("certificate %d renewed twice: %+v", r.OldCertificateId, l.Renewals)
		}
		renewedBy[r.OldCertificateId] = r
	}
	for _, d := range l.Deploys {
		if d.Refused != "" {
			continue
		}
		if d.StagedBy != d.Identity {
			t.Errorf("deploy of %d by %q, staged by %q", d.CertificateId, d.Identity, d.StagedBy)
		}
		if d.At.Sub(d.StagedAt) > 5*time.Minute {
			t.Errorf("deploy of %d at %s, %s after staging", d.CertificateId, d.At, d.At.Sub(d.StagedAt))
		}
	}
	for _, row := range rep.Rows {
		if row.Status != report.Succeeded {
			continue
		}
		if !deployedTo(l, row.NewCertificateID, row.RequestID, row.StoreID) {
			t.Errorf("line %d reported %s/%s, but the ledger has no successful deploy of %d to %s", row.Line, row.Status, row.Detail, row.NewCertificateID, row.StoreID)
		}
		if r, ok := renewedBy[row.CertificateID]; !ok || (r.NewCertificateId != row.NewCertificateID && r.RequestId != row.RequestID) {
			t.Errorf("line %d: report says new certificate %d, ledger renewal %+v", row.Line, row.NewCertificateID, r)
		}
	}
}

func deployedTo(l kfsim.Ledger, certID, requestID int, store string) bool {
	for _, d := range l.Deploys {
		if (certID != 0 && d.CertificateId == certID) || (certID == 0 && d.RequestId == requestID) {
			for _, s := range d.Successful {
				if strings.EqualFold(s, store) {
					return true
				}
			}
		}
	}
	return false
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
