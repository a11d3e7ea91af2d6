package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"runner/keyfactor"
	"runner/kfsim"
	"runner/plan"
)

// `runner discover` is tested in-process (Main) against a kfsim.Server on
// loopback; the simulator's ledger is the ground truth for the run that
// follows a discover.

const (
	discUser     = "svc-discover"
	discDomain   = "CORP"
	discPassword = "discover-test-pass"

	discStoreWeb = "d1000000-0000-4000-8000-000000000001" // type K8SSecret, container 1
	discStorePEM = "d1000000-0000-4000-8000-000000000002" // type PEM (entry password), container 1
	discStoreIIS = "d1000000-0000-4000-8000-000000000003" // type IIS (no alias), container 1
	discStoreDMZ = "d1000000-0000-4000-8000-000000000004" // container 2: the user cannot schedule there
	discStoreNew = "d1000000-0000-4000-8000-000000000005" // empty, container 1

	discPEMVar = "RUNNER_ENTRY_PASSWORD_PEM"
)

// discoverWorld is a simulated Command the environment points Main at.
type discoverWorld struct {
	sim *kfsim.Server
	url string
	dir string

	mu      sync.Mutex
	queries []string // of every GET /Certificates, in order
	// rewrite, when set, edits the body of every GET /Certificates answer.
	rewrite func(body []byte) []byte
}

// newDiscoverWorld serves this world, edited by edit:
//
//	1001 web.example.com  in Web (web01) and PEM (web01), expires in 20 days
//	1002 api.example.com  in Web (api), 20 days
//	1003 orphan           in no store
//	1004 old              in Web (old), expired 2 days ago
//	1005 dmz              in DMZ only, where the user cannot schedule
//	1006 iis.example.com  in IIS (Command's alias: the thumbprint), 25 days, template IISWeb
func newDiscoverWorld(t testing.TB, edit func(*kfsim.Fixture)) *discoverWorld {
	t.Helper()
	return newDiscoverWorldWith(t, kfsim.Options{}, edit)
}

// newDiscoverWorldWith is newDiscoverWorld with simulator options (jobs
// always run at once).
func newDiscoverWorldWith(t testing.TB, opts kfsim.Options, edit func(*kfsim.Fixture)) *discoverWorld {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	cert := func(id int, cn, template string, expiresIn time.Duration, locs ...kfsim.Location) kfsim.Certificate {
		notAfter := now.Add(expiresIn)
		return kfsim.Certificate{Id: id, IssuedDN: "CN=" + cn + ", O=Example", IssuedCN: cn, TemplateName: template,
			NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter,
			CertificateAuthorityName: `ca.example.internal\Example Issuing CA`, Locations: locs}
	}
	at := func(store, alias string) kfsim.Location { return kfsim.Location{CertStoreId: store, Alias: alias} }
	const day = 24 * time.Hour
	fx := kfsim.Fixture{
		Users: []kfsim.User{{Username: discUser, Domain: discDomain, Password: discPassword, Permissions: []string{
			keyfactor.PermCertificatesRead, keyfactor.PermEnrollPFX, keyfactor.PermStoresRead, keyfactor.PermStoresSchedule + "1/",
		}}},
		Containers: []kfsim.Container{{Id: 1, Name: "Web"}, {Id: 2, Name: "DMZ"}},
		StoreTypes: []kfsim.StoreType{
			{StoreType: 1, ShortName: "K8SSecret", Name: "Kubernetes Secret"},
			{StoreType: 2, ShortName: "PEM", Name: "PEM file", EntryPasswordSupported: true, EntryPasswordRequired: true},
			{StoreType: 3, ShortName: "IIS", Name: "IIS personal", CustomAliasAllowed: kfsim.AliasForbidden},
		},
		Stores: []kfsim.Store{
			{Id: discStoreWeb, ContainerId: 1, ClientMachine: "web01.example.internal", StorePath: "default/web", CertStoreType: 1},
			{Id: discStorePEM, ContainerId: 1, ClientMachine: "web01.example.internal", StorePath: "/etc/ssl/web.pem", CertStoreType: 2},
			{Id: discStoreIIS, ContainerId: 1, ClientMachine: "iis01.example.internal", StorePath: "My", CertStoreType: 3},
			{Id: discStoreDMZ, ContainerId: 2, ClientMachine: "dmz01.example.internal", StorePath: "default/dmz", CertStoreType: 1},
			{Id: discStoreNew, ContainerId: 1, ClientMachine: "web02.example.internal", StorePath: "default/web", CertStoreType: 1},
		},
		Templates:   []kfsim.Template{{Name: "WebServer"}, {Name: "IISWeb"}},
		Collections: []kfsim.Collection{{Id: 3, Name: "API", CertificateIds: []int{1002}}},
		Certificates: []kfsim.Certificate{
			cert(1001, "web.example.com", "WebServer", 20*day, at(discStoreWeb, "web01"), at(discStorePEM, "web01")),
			cert(1002, "api.example.com", "WebServer", 20*day, at(discStoreWeb, "api")),
			cert(1003, "orphan.example.com", "WebServer", 20*day),
			cert(1004, "old.example.com", "WebServer", -2*day, at(discStoreWeb, "old")),
			cert(1005, "dmz.example.com", "WebServer", 20*day, at(discStoreDMZ, "dmz")),
			cert(1006, "iis.example.com", "IISWeb", 25*day, at(discStoreIIS, "")),
		},
	}
	if edit != nil {
		edit(&fx)
	}
	opts.JobDelay, opts.Seed = -1, 7
	sim := kfsim.New(opts)
	if err := sim.Load(fx); err != nil {
		t.Fatalf("load the world: %v", err)
	}
	w := &discoverWorld{sim: sim, dir: t.TempDir()}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/Certificates") {
			sim.ServeHTTP(rw, r)
			return
		}
		w.mu.Lock()
		w.queries = append(w.queries, r.URL.RawQuery)
		rewrite := w.rewrite
		w.mu.Unlock()
		if rewrite == nil {
			sim.ServeHTTP(rw, r)
			return
		}
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, r)
		maps.Copy(rw.Header(), rec.Header())
		rw.Header().Del("Content-Length")
		rw.WriteHeader(rec.Code)
		rw.Write(rewrite(rec.Body.Bytes()))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { sim.CheckNoUnknownRoutes(t) })
	w.url = srv.URL
	// The connection environment Main reads.
	for k, v := range map[string]string{
		"KEYFACTOR_HOSTNAME": srv.URL, "KEYFACTOR_USERNAME": discUser, "KEYFACTOR_DOMAIN": discDomain,
		"KEYFACTOR_PASSWORD": discPassword, "KEYFACTOR_API_PATH": w.sim.BasePath(), "RUNNER_COLLECTION_ID": "",
		"RUNNER_STATE_DIR": filepath.Join(w.dir, "state-dir"), "RUNNER_LOG_FORMAT": "text",
	} {
		t.Setenv(k, v)
	}
	return w
}

func (w *discoverWorld) path(name string) string { return filepath.Join(w.dir, name) }

// mustRun runs the command line in-process (runMain) and fails the test
// unless it exits with want.
func mustRun(t *testing.T, want int, args ...string) result {
	t.Helper()
	r := runMain(t, context.Background(), args...)
	if r.code != want {
		t.Fatalf("runner %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

// planRows reads a plan's rows as "certificate_id store_id alias password"
// strings, sorted.
func planRows(t testing.TB, text string) []string {
	t.Helper()
	p, err := plan.Parse(strings.NewReader(text), "plan.csv", plan.Options{})
	if err != nil {
		t.Fatalf("the plan does not parse: %v\n%s", err, text)
	}
	var out []string
	for _, r := range p.Rows {
		out = append(out, fmt.Sprintf("%d %s %s %s", r.CertificateID, r.StoreID, shownAlias(r.Alias), r.Password))
	}
	slices.Sort(out)
	return out
}

// reportWarnings reads a JSON report's warnings, and its row count.
func reportWarnings(t *testing.T, path string) ([]string, int) {
	t.Helper()
	rep := readReport(t, path)
	var out []string
	for _, r := range rep.Rows {
		out = append(out, r.Warnings...)
	}
	return out, len(rep.Rows)
}

// dataLines are a plan's lines that are not comments, header included.
func dataLines(text string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if !strings.HasPrefix(l, "#") && strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

var discoveredRows = []string{
	"1001 " + discStoreWeb + " web01 env:" + discPEMVar,
	"1001 " + discStorePEM + " web01 env:" + discPEMVar,
	"1002 " + discStoreWeb + " api ",
	"1006 " + discStoreIIS + " (none) ",
}

// TestDiscoverValidatePlanRunUpdate walks the operator's path: discover,
// validate, plan (no drift), the real run (every location renewed and
// deployed, by the ledger), and after the run a location added in Command
// is the one row --update adds, naming the plan's certificate although
// Command now shows the renewed one.
func TestDiscoverValidatePlanRunUpdate(t *testing.T) {
	w := newDiscoverWorld(t, nil)
	planPath, state := w.path("plan.csv"), w.path("state.db")
	mustRun(t, exitOK, "discover", "--out", planPath)
	text := mustRead(t, planPath)
	if got := planRows(t, text); !slices.Equal(got, discoveredRows) {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(discoveredRows, "\n"))
	}
	if st, err := os.Stat(planPath); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("a new plan's mode: %v %v, want 0644 (it holds no secret)", st.Mode(), err)
	}

	r := mustRun(t, exitOK, "validate", planPath)
	if !strings.Contains(r.stdout, "ok: 4 rows, 3 certificates, 3 stores") {
		t.Errorf("validate: %s", r.stdout)
	}

	t.Setenv(discPEMVar, "pem-entry-secret")
	mustRun(t, exitOK, "plan", "--state", state, "--report", w.path("plan.json"), planPath)
	warnings, rows := reportWarnings(t, w.path("plan.json"))
	if rows != 4 {
		t.Errorf("plan report has %d rows, want 4", rows)
	}
	for _, warning := range warnings {
		if strings.HasPrefix(warning, "drift:") || strings.HasPrefix(warning, "stale:") {
			t.Errorf("runner plan on a fresh discover warns: %s", warning)
		}
	}

	mustRun(t, exitOK, "--state", state, "--report", w.path("run.json"), planPath)
	ledger := w.sim.Ledger()
	renewedFrom := map[int]int{} // new certificate id → the discovered one
	renewals := map[int]int{}
	for _, rn := range ledger.Renewals {
		renewals[rn.OldCertificateId]++
		renewedFrom[rn.NewCertificateId] = rn.OldCertificateId
	}
	if want := map[int]int{1001: 1, 1002: 1, 1006: 1}; !maps.Equal(renewals, want) {
		t.Errorf("renewals per certificate %v, want %v", renewals, want)
	}
	deployed := map[string]bool{}
	for _, d := range ledger.Deploys {
		for _, st := range d.Successful {
			deployed[fmt.Sprintf("%d %s", renewedFrom[d.CertificateId], st)] = true
		}
	}
	for _, want := range []string{"1001 " + discStoreWeb, "1001 " + discStorePEM, "1002 " + discStoreWeb, "1006 " + discStoreIIS} {
		if !deployed[want] {
			t.Errorf("no successful deploy of %s; deployed: %v", want, deployed)
		}
	}
	if len(deployed) != 4 {
		t.Errorf("deployed to %d (certificate, store) pairs, want 4: %v", len(deployed), deployed)
	}

	// Command now shows the renewed certificate of 1002 also in a new store.
	var renewed1002 int
	for id, old := range renewedFrom {
		if old == 1002 {
			renewed1002 = id
		}
	}
	if err := w.sim.AddLocation(renewed1002, discStoreNew, "api"); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, exitOK, "discover", "--state", state, "--update", planPath)
	updated := mustRead(t, w.path("plan.updated.csv"))
	if !strings.HasPrefix(updated, text) {
		t.Fatalf("--update changed the plan's own lines:\n%s", updated)
	}
	added := dataLines(updated[len(text):])
	thumb1002 := certificateThumbprint(t, w.sim, 1002)
	if want := []string{"1002," + thumb1002 + "," + discStoreNew + ",api,true,"}; !slices.Equal(added, want) {
		t.Errorf("--update added %q, want %q (the plan's certificate, found through the journal)\n%s", added, want, r.stderr)
	}
	if strings.Contains(updated[len(text):], "in no store") {
		t.Errorf("the certificates runner renewed are not in their stores any more, but that is no news:\n%s", updated)
	}
	mustRun(t, exitOK, "validate", w.path("plan.updated.csv"))
}

func certificateThumbprint(t testing.TB, sim *kfsim.Server, id int) string {
	t.Helper()
	c, ok := sim.Certificate(id)
	if !ok {
		t.Fatalf("no certificate %d in the simulator", id)
	}
	return c.Thumbprint
}

// TestDiscoverComments shows what the plan tells its reviewer: the query,
// the Command and the time at the top; the entry password to set before
// the first row that needs it; at the end every certificate and location
// that has no row, and why; and a summary on stderr. No credential is in
// the plan or the output.
func TestDiscoverComments(t *testing.T) {
	w := newDiscoverWorld(t, func(fx *kfsim.Fixture) {
		fx.Stores = append(fx.Stores, kfsim.Store{Id: "d1000000-0000-4000-8000-000000000006", ContainerId: 1,
			ClientMachine: "new01.example.internal", StorePath: "default/new", CertStoreType: 1, Unapproved: true})
		fx.Stores = append(fx.Stores, kfsim.Store{Id: "d1000000-0000-4000-8000-000000000007", ContainerId: 1,
			ClientMachine: "new02.example.internal", StorePath: "default/new", CertStoreType: 1, NoAgent: true})
		fx.Certificates = append(fx.Certificates, kfsim.Certificate{Id: 1007, IssuedCN: "twice.example.com", Locations: []kfsim.Location{
			{CertStoreId: discStoreNew, Alias: "first"}, {CertStoreId: discStoreNew, Alias: "second"},
			{CertStoreId: "d1000000-0000-4000-8000-000000000006", Alias: "pending"},
		}}, kfsim.Certificate{Id: 1008, IssuedCN: "hidden.example.com", Locations: []kfsim.Location{
			{CertStoreId: "d1000000-0000-4000-8000-000000000007", Alias: "agentless"},
			{CertStoreId: "d1000000-0000-4000-8000-000000000099", StoreMachine: "gone.example.internal", StorePath: "/x", Alias: "hidden"},
		}})
	})
	before := time.Now().UTC().Truncate(time.Second)
	r := mustRun(t, exitOK, "discover", "--out", w.path("plan.csv"))
	text := mustRead(t, w.path("plan.csv"))
	lines := strings.Split(text, "\n")

	header := slices.Index(lines, "certificate_id,thumbprint,store_id,alias,overwrite,password")
	if header < 0 {
		t.Fatalf("no header:\n%s", text)
	}
	top := strings.Join(lines[:header], "\n")
	for _, want := range []string{
		"# Command: " + w.url + "/KeyfactorAPI\n",
		"# Query: none, every certificate; active certificates only (expired and revoked ones are left out)\n",
		"# Written: ",
	} {
		if !strings.Contains(top+"\n", want) {
			t.Errorf("the comments above the header lack %q:\n%s", want, top)
		}
	}
	written := top[strings.Index(top, "# Written: ")+len("# Written: "):]
	if at, err := time.Parse(time.RFC3339, strings.Fields(written)[0]); err != nil || at.Before(before) {
		t.Errorf("Written: %q, want the time of the discover (%v)", written, err)
	}

	announce := slices.Index(lines, "# Set "+discPEMVar+" to the entry password for PEM stores before runner run: rows with password env:"+discPEMVar+" take it.")
	firstPEM := slices.IndexFunc(lines, func(l string) bool { return strings.HasSuffix(l, ",env:"+discPEMVar) })
	if announce < 0 || announce != firstPEM-1 {
		t.Errorf("the password comment (line %d) should stand right above the first row that needs it (line %d):\n%s", announce+1, firstPEM+1, text)
	}

	for _, want := range []string{
		"# Left out: 1 certificate that Command shows in no store (nothing to deploy to):\n#   certificate 1003 (CN=orphan.example.com, O=Example), thumbprint ",
		"# Left out: 2 locations this user cannot deploy to:\n#   certificate 1005 in store " + discStoreDMZ + " (dmz01.example.internal default/dmz, container 2 DMZ), alias dmz: " +
			discDomain + `\` + discUser + " lacks /certificate_stores/schedule/ for container 2\n",
		"#   certificate 1008 in store d1000000-0000-4000-8000-000000000099 (gone.example.internal /x), alias hidden: the store is not visible to " + discDomain + `\` + discUser + "\n",
		"#   store d1000000-0000-4000-8000-000000000007 (new02.example.internal default/new, container 1 Web): no orchestrator assigned\n",
		"#   certificate 1007 in store " + discStoreNew + " (web02.example.internal default/web, container 1 Web): aliases first, second; the row names first\n",
		"# Stores whose jobs cannot run yet (their rows fail until this is fixed in Command):\n#   store d1000000-0000-4000-8000-000000000006 (new01.example.internal default/new, container 1 Web): not approved",
		"#   IIS (store type 3)\n",
		"# Summary: 7 certificates read, 7 rows written.\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the plan lacks %q:\n%s", want, text)
		}
	}
	if got := planRows(t, text); !slices.Contains(got, "1007 "+discStoreNew+" first ") || slices.Contains(got, "1007 "+discStoreNew+" second ") {
		t.Errorf("certificate 1007 should have one row for its store, under its first alias: %q", got)
	}
	for _, want := range []string{
		"runner discover: 7 certificates read, 7 rows written to " + w.path("plan.csv") + "\n",
		"runner discover: 1 certificate without a location, 2 locations the user cannot deploy to: listed at the end of the plan\n",
		"runner discover: before runner run, set the entry passwords in " + discPEMVar + "\n",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(text+r.stdout+r.stderr, discPassword) {
		t.Error("the Command password appears in the plan or the output")
	}
	mustRun(t, exitOK, "validate", w.path("plan.csv"))
}

// TestDiscoverDriftAfterMovingALocation: a certificate put into a new
// store after the discover is reported by runner plan as drift.
func TestDiscoverDriftAfterMovingALocation(t *testing.T) {
	w := newDiscoverWorld(t, nil)
	planPath := w.path("plan.csv")
	mustRun(t, exitOK, "discover", "--out", planPath)
	if err := w.sim.AddLocation(1002, discStoreNew, "api2"); err != nil {
		t.Fatal(err)
	}
	t.Setenv(discPEMVar, "pem-entry-secret")
	mustRun(t, exitOK, "plan", "--state", w.path("state.db"), "--report", w.path("r.json"), planPath)
	warnings, _ := reportWarnings(t, w.path("r.json"))
	want := "drift: certificate 1002 is also in store " + discStoreNew + " (alias api2), not in the plan"
	if !slices.Contains(warnings, want) {
		t.Errorf("report warnings %q lack %q", warnings, want)
	}
}

// TestDiscoverUpdate: --update adds exactly the rows the plan lacks, in the
// plan's own columns, after its lines kept byte for byte; it writes
// PLAN.updated.csv, or --out, or the plan itself with --in-place; and with
// nothing to add it writes nothing.
func TestDiscoverUpdate(t *testing.T) {
	tests := []struct {
		name     string
		plan     func(discovered string) string // the plan before the update
		move     bool                           // put 1002 into the new store first
		args     []string                       // after --update PLAN
		written  string                         // file written, relative to the plan's directory ("" for the plan itself)
		added    []string                       // data lines added
		listed   string                         // in the comments added, when set
		validate []string                       // flags of runner validate
	}{
		{
			name: "a reviewed discover plan",
			plan: func(d string) string {
				return "# Reviewed by ops on 2026-05-01: keep the blank line below.\n\n" + strings.ReplaceAll(d, "\n#\n# Left out", "\n# a note\n#\n# Left out")
			},
			move:    true,
			written: "plan.updated.csv",
			added:   []string{"1002,{1002},d1000000-0000-4000-8000-000000000005,api2,true,"},
		},
		{
			name:    "--out",
			plan:    func(d string) string { return d },
			move:    true,
			args:    []string{"--out", "other.csv"},
			written: "other.csv",
			added:   []string{"1002,{1002},d1000000-0000-4000-8000-000000000005,api2,true,"},
		},
		{
			name:    "--in-place, CRLF kept",
			plan:    func(d string) string { return strings.ReplaceAll(d, "\n", "\r\n") },
			move:    true,
			args:    []string{"--in-place"},
			written: "",
			added:   []string{"1002,{1002},d1000000-0000-4000-8000-000000000005,api2,true,\r"},
		},
		{
			name: "a hand-written plan in another column order",
			plan: func(string) string {
				return "# by hand\nStore_ID,Certificate_ID,Alias,Password\n" + discStoreWeb + ",1001,web01,file:pem.txt\n"
			},
			written: "plan.updated.csv",
			added: []string{
				discStorePEM + ",1001,web01,file:pem.txt", // 1001's settings are the plan's
				discStoreWeb + ",1002,api,",
				discStoreIIS + ",1006,,",
			},
		},
		{
			name:    "a literal password",
			plan:    func(string) string { return "certificate_id,store_id,password\n1001," + discStoreWeb + ",hunter2\n" },
			written: "plan.updated.csv",
			added: []string{
				"1002," + discStoreWeb + ",", // 1001's new row would need the literal: listed, not added
				"1006," + discStoreIIS + ",",
			},
			validate: []string{"--allow-plain-passwords"},
			listed:   "certificate 1001 in store " + discStorePEM,
		},
		{
			name:    "a plan without password column",
			plan:    func(string) string { return "thumbprint,store_id\n{1002}," + discStoreWeb + "\n" },
			written: "plan.updated.csv",
			added: []string{
				"{1006}," + discStoreIIS, // 1001 needs an entry password: listed, not added
			},
			listed: "certificate 1001 in store " + discStoreWeb,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newDiscoverWorld(t, nil)
			thumbs := strings.NewReplacer("{1001}", certificateThumbprint(t, w.sim, 1001), "{1002}", certificateThumbprint(t, w.sim, 1002),
				"{1006}", certificateThumbprint(t, w.sim, 1006))
			discovered := mustRun(t, exitOK, "discover").stdout
			planPath := w.path("plan.csv")
			before := thumbs.Replace(tt.plan(discovered))
			if err := os.WriteFile(planPath, []byte(before), 0o640); err != nil {
				t.Fatal(err)
			}
			if tt.move {
				if err := w.sim.AddLocation(1002, discStoreNew, "api2"); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{"discover", "--update", planPath}, tt.args...)
			for i, a := range args {
				if strings.HasSuffix(a, ".csv") && !filepath.IsAbs(a) {
					args[i] = w.path(a)
				}
			}
			r := mustRun(t, exitOK, args...)
			out := planPath
			if tt.written != "" {
				out = w.path(tt.written)
				if got := mustRead(t, planPath); got != before {
					t.Errorf("the plan itself changed without --in-place")
				}
			}
			after := mustRead(t, out)
			if !strings.HasPrefix(after, before) {
				t.Fatalf("the plan's lines changed:\n%s\nwant them to start with:\n%s", after, before)
			}
			var want []string
			for _, l := range tt.added {
				want = append(want, thumbs.Replace(l))
			}
			if got := dataLines(after[len(before):]); !slices.Equal(got, want) {
				t.Errorf("added %q, want %q\n%s", got, want, r.stderr)
			}
			if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o640 {
				t.Errorf("mode of %s: %v %v, want the plan's 0640", out, st.Mode(), err)
			}
			if !strings.Contains(after[len(before):], tt.listed) {
				t.Errorf("the added comments lack %q:\n%s", tt.listed, after[len(before):])
			}
			mustRun(t, exitOK, append(append([]string{"validate"}, tt.validate...), out)...)

			// Again, on the updated plan: nothing to add, nothing written.
			again := mustRun(t, exitOK, "discover", "--update", out, "--in-place")
			if !strings.Contains(again.stderr, "nothing to add") || mustRead(t, out) != after {
				t.Errorf("a second update should change nothing:\n%s", again.stderr)
			}
			entries, _ := os.ReadDir(w.dir)
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Errorf("temporary file left behind: %s", e.Name())
				}
			}
		})
	}
}

// TestDiscoverSelection: the query sent is what the flags say, combined
// with AND, and only active certificates unless --include-expired.
func TestDiscoverSelection(t *testing.T) {
	newDiscoverWorld(t, nil) // the environment points Main at it
	tests := []struct {
		name      string
		args      []string
		wantCerts []int
		wantQuery string // in the plan's Query comment; "" to skip
	}{
		{"everything active", nil, []int{1001, 1002, 1006}, ""},
		{"--include-expired", []string{"--include-expired"}, []int{1001, 1002, 1004, 1006}, "; expired certificates included (revoked ones are left out)"},
		{"--expiring-within", []string{"--expiring-within", "22d"}, []int{1001, 1002}, `NotAfter -le "`},
		{"--expiring-within in hours", []string{"--expiring-within", "600h"}, []int{1001, 1002, 1006}, ""},
		{"--template", []string{"--template", "IISWeb"}, []int{1006}, `TemplateName -eq "IISWeb"`},
		{"--query", []string{"--query", `IssuedCN -contains "api"`}, []int{1002}, `IssuedCN -contains "api"`},
		{"--query with OR and a shorthand", []string{"--query", `IssuedCN -contains "iis" OR IssuedCN -contains "web"`, "--template", "WebServer"},
			[]int{1001}, `(IssuedCN -contains "iis" OR IssuedCN -contains "web") AND TemplateName -eq "WebServer"`},
		{"--query with a lower-case or", []string{"--query", `IssuedCN -contains "iis" or IssuedCN -contains "web"`, "--template", "WebServer"},
			[]int{1001}, `(IssuedCN -contains "iis" or IssuedCN -contains "web") AND TemplateName -eq "WebServer"`},
		{"everything combined", []string{"--query", `IssuedCN -contains "example"`, "--template", "WebServer", "--expiring-within", "30d", "--include-expired"},
			[]int{1001, 1002, 1004}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRun(t, exitOK, append([]string{"discover"}, tt.args...)...)
			p, err := plan.Parse(strings.NewReader(r.stdout), "stdout", plan.Options{})
			if err != nil {
				t.Fatalf("%v\n%s", err, r.stdout)
			}
			var got []int
			for _, j := range p.Jobs {
				got = append(got, j.CertificateID)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.wantCerts) {
				t.Errorf("certificates %v, want %v\n%s", got, tt.wantCerts, r.stdout)
			}
			if tt.wantQuery != "" && !strings.Contains(r.stdout, tt.wantQuery) {
				t.Errorf("the plan's comments lack %q:\n%s", tt.wantQuery, r.stdout)
			}
		})
	}
}

// TestDiscoverErrors: a mistake on the command line is exit 2 before
// Command is contacted; a query Command refuses is exit 2 with a hint; a
// refused login or an unreachable Command is exit 3 with the connection
// hints; an interrupt is exit 130 and leaves no file.
func TestDiscoverErrors(t *testing.T) {
	w := newDiscoverWorld(t, nil)
	bad := w.path("bad.csv")
	if err := os.WriteFile(bad, []byte("certificate_id,store_id\nabc,"+discStoreWeb+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := w.path("good.csv")
	if err := os.WriteFile(good, []byte("certificate_id,store_id\n1002,"+discStoreWeb+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name       string
		ctx        context.Context
		args       []string
		env        map[string]string
		want       int
		wantStderr string
		contacts   bool // Command was asked
	}{
		{name: "unquotable template", args: []string{"--template", `Web"Server`}, want: exitUsage, wantStderr: "--template: value cannot be written in a Command query"},
		{name: "query on two lines", args: []string{"--query", "IssuedCN -eq \"a\"\nOR Id -eq 1"}, want: exitUsage, wantStderr: "line break"},
		{name: "percentage", args: []string{"--expiring-within", "10%"}, want: exitUsage, wantStderr: `--expiring-within "10%": expected a duration`},
		{name: "--in-place alone", args: []string{"--in-place"}, want: exitUsage, wantStderr: "--in-place needs --update"},
		{name: "--in-place and --out", args: []string{"--update", bad, "--in-place", "--out", w.path("x.csv")}, want: exitUsage, wantStderr: "--in-place and --out both given"},
		{name: "--out is the plan", args: []string{"--update", bad, "--out", bad}, want: exitUsage, wantStderr: "is the plan being updated"},
		{name: "--out not csv", args: []string{"--out", w.path("plan.txt")}, want: exitUsage, wantStderr: "must end in .csv"},
		{name: "an argument", args: []string{"plan.csv"}, want: exitUsage, wantStderr: "discover takes no arguments"},
		{name: "negative rate", args: []string{"--rate", "-1"}, want: exitUsage, wantStderr: "--rate: must be 0 (unlimited) or more, got -1"},
		{name: "negative wait-lock", args: []string{"--update", good, "--wait-lock", "-1s"}, want: exitUsage, wantStderr: "--wait-lock: must not be negative, got -1s"},
		{name: "no plan to update", args: []string{"--update", w.path("none.csv")}, want: exitUsage, wantStderr: "--update: open"},
		{name: "a broken plan to update", args: []string{"--update", bad}, want: exitUsage, wantStderr: `certificate_id: not a positive integer: "abc"`},
		{name: "no state file", args: []string{"--update", good, "--state", w.path("none.db")}, want: exitUsage,
			wantStderr: "--state " + w.path("none.db") + ": no such file"},
		{name: "no hostname", env: map[string]string{"KEYFACTOR_HOSTNAME": ""}, want: exitUsage, wantStderr: "KEYFACTOR_HOSTNAME"},
		{name: "query refused", args: []string{"--query", "Nonsense -eq 1"}, want: exitUsage, contacts: true,
			wantStderr: "runner: hint: check --query: Field -op value clauses"},
		{name: "password refused", env: map[string]string{"KEYFACTOR_PASSWORD": "wrong"}, want: exitPreflight, contacts: true,
			wantStderr: "runner: hint: nothing was renewed; Command refused the credentials"},
		{name: "unreachable", env: map[string]string{"KEYFACTOR_HOSTNAME": "http://127.0.0.1:1"}, want: exitPreflight,
			wantStderr: "runner: hint: nothing was renewed; Command did not answer"},
		{name: "interrupted", ctx: cancelled, args: []string{"--out", w.path("never.csv")}, want: exitInterrupted, wantStderr: "interrupted; no plan written"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			asked := len(w.sim.Ledger().Requests)
			r := runMain(t, ctx, append([]string{"discover"}, tt.args...)...)
			if r.code != tt.want || !strings.Contains(r.stderr, tt.wantStderr) {
				t.Fatalf("exit %d, want %d with %q in stderr:\n%s", r.code, tt.want, tt.wantStderr, r.stderr)
			}
			if contacted := len(w.sim.Ledger().Requests) > asked; contacted != tt.contacts {
				t.Errorf("Command contacted: %t, want %t", contacted, tt.contacts)
			}
			if r.stdout != "" {
				t.Errorf("stdout should be empty:\n%s", r.stdout)
			}
			if _, err := os.Stat(w.path("never.csv")); err == nil {
				t.Error("an interrupted discover wrote its plan")
			}
		})
	}
}

func TestDiscoverPasswordVar(t *testing.T) {
	d := &discoverer{types: map[int]keyfactor.CertificateStoreType{
		1: {StoreType: 1, ShortName: "K8SSecret"},
		2: {StoreType: 2, ShortName: "PEM", EntryPasswordSupported: true},
		4: {StoreType: 4, ShortName: "JKS", EntryPasswordSupported: true},
		5: {StoreType: 5, ShortName: "F5-SL-REST", EntryPasswordSupported: true},
		6: {StoreType: 6, EntryPasswordSupported: true},
	}}
	in := func(types ...int) []*discoverTarget {
		var out []*discoverTarget
		for _, ty := range types {
			out = append(out, &discoverTarget{store: keyfactor.CertificateStore{CertStoreType: ty}})
		}
		return out
	}
	tests := []struct {
		name  string
		types []int
		want  string
	}{
		{"no password type", []int{1}, ""},
		{"an unknown type", []int{9}, ""},
		{"PEM", []int{1, 2}, "env:RUNNER_ENTRY_PASSWORD_PEM"},
		{"two stores of one type", []int{2, 2}, "env:RUNNER_ENTRY_PASSWORD_PEM"},
		{"two types, in name order", []int{2, 4}, "env:RUNNER_ENTRY_PASSWORD_JKS_PEM"},
		{"punctuation", []int{5}, "env:RUNNER_ENTRY_PASSWORD_F5_SL_REST"},
		{"no short name", []int{6}, "env:RUNNER_ENTRY_PASSWORD_TYPE6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := d.passwordVar(in(tt.types...)); got != tt.want {
				t.Errorf("passwordVar = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestDiscoverProgress: the progress line is redrawn at most once per
// interval, and cleared so the next output starts on a clean line.
func TestDiscoverProgress(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := &discoverProgress{w: &buf, now: func() time.Time { return now }, every: time.Second}
	p.update(1, 2)
	now = now.Add(500 * time.Millisecond)
	p.update(2, 3) // too soon: not drawn
	now = now.Add(500 * time.Millisecond)
	p.update(3, 4)
	p.clear()
	p.clear() // nothing drawn since: nothing to clear
	want := "\r\x1b[Krunner discover: 1 certificates read, 2 rows" + "\r\x1b[Krunner discover: 3 certificates read, 4 rows" + "\r\x1b[K"
	if buf.String() != want {
		t.Errorf("progress wrote %q, want %q", buf.String(), want)
	}
	var nilProgress *discoverProgress // off a terminal
	nilProgress.update(1, 1)
	nilProgress.clear()
}

// TestDiscoverRequests: the certificates are read in pages sorted by id
// with their locations, active ones only unless asked, through the
// collection when one is given, and a server that caps the page size is
// paged all the same.
func TestDiscoverRequests(t *testing.T) {
	// Pages of 3: the certificates take two pages (the store and store
	// type lists are capped alike, and paged by the client all the same).
	w := newDiscoverWorldWith(t, kfsim.Options{MaxPageSize: 3}, nil)
	tests := []struct {
		name      string
		args      []string
		want      []string // parameters of every GET /Certificates
		wantNot   []string
		wantRows  []string
		wantPages int
	}{
		{"all active", nil, []string{"pq.sortField=Id", "pq.sortAscending=0", "includeLocations=true", "pq.returnLimit=500"},
			[]string{"pq.includeExpired", "collectionId"}, discoveredRows, 2},
		{"expired too", []string{"--include-expired"}, []string{"pq.includeExpired=true"}, nil, nil, 2},
		{"a collection", []string{"--collection-id", "3"}, []string{"collectionId=3"}, nil, []string{"1002 " + discStoreWeb + " api "}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.mu.Lock()
			w.queries = nil
			w.mu.Unlock()
			r := mustRun(t, exitOK, append([]string{"discover"}, tt.args...)...)
			w.mu.Lock()
			queries := slices.Clone(w.queries)
			w.mu.Unlock()
			if len(queries) < tt.wantPages {
				t.Errorf("%d requests of GET /Certificates, want at least %d (pages of 3)", len(queries), tt.wantPages)
			}
			for _, q := range queries {
				for _, want := range tt.want {
					if !strings.Contains("&"+q+"&", "&"+want+"&") {
						t.Errorf("GET /Certificates?%s lacks %s", q, want)
					}
				}
				for _, not := range tt.wantNot {
					if strings.Contains(q, not) {
						t.Errorf("GET /Certificates?%s has %s", q, not)
					}
				}
			}
			if tt.wantRows != nil {
				if got := planRows(t, r.stdout); !slices.Equal(got, tt.wantRows) {
					t.Errorf("rows %q, want %q", got, tt.wantRows)
				}
			}
			if slices.Contains(tt.args, "--collection-id") && !strings.Contains(r.stdout, "# Collection: 3 (run runner with the same --collection-id)\n") {
				t.Errorf("the plan does not name the collection:\n%s", r.stdout)
			}
		})
	}
}

// TestDiscoverWithoutStoreTypes: a Command that does not list its store
// types gets a plan all the same, with no password cells, and says so.
func TestDiscoverWithoutStoreTypes(t *testing.T) {
	w := newDiscoverWorld(t, nil)
	rule, err := kfsim.ParseFault("storetypes:html-error:status=404")
	if err != nil {
		t.Fatal(err)
	}
	w.sim.SetFaults(rule)
	r := mustRun(t, exitOK, "discover")
	want := []string{
		"1001 " + discStoreWeb + " web01 ", "1001 " + discStorePEM + " web01 ", "1002 " + discStoreWeb + " api ",
		"1006 " + discStoreIIS + " " + certificateThumbprint(t, w.sim, 1006) + " ", // the alias rule is not known either
	}
	if got := planRows(t, r.stdout); !slices.Equal(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
	if !strings.Contains(r.stdout, "# Store types could not be read: no password cells were written and alias rules were not applied.\n") {
		t.Errorf("the plan does not say that the store types are unknown:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "could not read the certificate store types") {
		t.Errorf("no warning on stderr:\n%s", r.stderr)
	}
}

// TestDiscoverUpdateFindsRenewalsOfThumbprintRows: a plan that names a
// certificate by thumbprint only still gets the new location of its
// renewal under that thumbprint, found through the journal and one read
// of the certificate the renewal replaced.
func TestDiscoverUpdateFindsRenewalsOfThumbprintRows(t *testing.T) {
	w := newDiscoverWorld(t, nil)
	old := certificateThumbprint(t, w.sim, 1002)
	planPath, state := w.path("plan.csv"), w.path("state.db")
	before := "thumbprint,store_id,alias,overwrite\n" + old + "," + discStoreWeb + ",api,true\n"
	if err := os.WriteFile(planPath, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, exitOK, "--state", state, planPath)
	renewals := w.sim.Ledger().Renewals
	if len(renewals) != 1 || renewals[0].OldCertificateId != 1002 {
		t.Fatalf("renewals %+v, want one of 1002", renewals)
	}
	if c, _ := w.sim.Certificate(renewals[0].NewCertificateId); len(c.Locations) != 1 {
		t.Fatalf("the renewal of 1002 is in %d stores, want 1 (the run's deploy)", len(c.Locations))
	}
	if err := w.sim.AddLocation(renewals[0].NewCertificateId, discStoreNew, "api2"); err != nil {
		t.Fatal(err)
	}
	mustRun(t, exitOK, "discover", "--state", state, "--update", planPath)
	after := mustRead(t, w.path("plan.updated.csv"))
	// In id order: 1006 comes before the renewal of 1002.
	want := []string{certificateThumbprint(t, w.sim, 1006) + "," + discStoreIIS + ",,true", old + "," + discStoreNew + ",api2,true"}
	if got := dataLines(after[len(before):]); !slices.Equal(got, want) {
		t.Errorf("added %q, want %q\n%s", got, want, after)
	}
}

// benchSimEnv makes the test binary a simulator process for
// BenchmarkDiscover: N certificates, each in one store.
const benchSimEnv = "RUNNER_DISCOVER_BENCH_SIM"

// TestDiscoverBenchmarkSim is not a test: BenchmarkDiscover runs the test
// binary again with benchSimEnv set, so that the simulator's world is in
// another process and the benchmark's peak RSS is discover's own. It
// serves until its stdin is closed.
func TestDiscoverBenchmarkSim(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv(benchSimEnv))
	if err != nil {
		t.Skip("the simulator process of BenchmarkDiscover")
	}
	sim := kfsim.New(kfsim.Options{})
	fx := kfsim.SeedFixture(kfsim.SyntheticTargets(n, 1), time.Now())
	fx.Users = []kfsim.User{{Username: discUser, Domain: discDomain, Password: discPassword, Permissions: fullPermissions()}}
	if err := sim.Load(fx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Printf("kfsim http://%s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
}

// BenchmarkDiscover writes the plan of 100,000 certificates read from a
// simulator in another process, and reports the benchmark process's peak
// RSS (the target is under 200 MB):
//
//	go test -run '^$' -bench BenchmarkDiscover -benchtime 1x .
func BenchmarkDiscover(b *testing.B) {
	const n = 100_000
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiscoverBenchmarkSim$")
	cmd.Env = append(os.Environ(), benchSimEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	var url string
	lines := bufio.NewScanner(stdout)
	for url == "" && lines.Scan() {
		url, _ = strings.CutPrefix(lines.Text(), "kfsim ")
	}
	if url == "" {
		b.Fatal("the simulator process did not start")
	}
	go io.Copy(io.Discard, stdout)
	for k, v := range map[string]string{"KEYFACTOR_HOSTNAME": url, "KEYFACTOR_USERNAME": discUser, "KEYFACTOR_DOMAIN": discDomain,
		"KEYFACTOR_PASSWORD": discPassword, "KEYFACTOR_API_PATH": "KeyfactorAPI", "RUNNER_COLLECTION_ID": ""} {
		b.Setenv(k, v)
	}
	out := filepath.Join(b.TempDir(), "plan.csv")
	for b.Loop() {
		var errOut bytes.Buffer
		code := Main(context.Background(), []string{"runner", "discover", "--out", out}, io.Discard, &errOut)
		if code != exitOK || !strings.Contains(errOut.String(), fmt.Sprintf("%d rows written", n)) {
			b.Fatalf("exit %d:\n%s", code, errOut.String())
		}
	}
	b.StopTimer()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MB") // Linux reports KiB
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "certificates/s")
}

// TestDiscoverUnreadableRecord: a certificate record Command sends that
// cannot be read gets no row; the plan lists it at the end, the summary
// counts it and a warning names it, and the rest of its page is written.
func TestDiscoverUnreadableRecord(t *testing.T) {
	w := newDiscoverWorld(t, nil)
	thumb := []byte(`"` + certificateThumbprint(t, w.sim, 1002) + `"`)
	w.mu.Lock()
	w.rewrite = func(body []byte) []byte { return bytes.ReplaceAll(body, thumb, []byte(`"not-a-thumbprint"`)) }
	w.mu.Unlock()
	r := mustRun(t, exitOK, "discover", "--out", w.path("plan.csv"))
	text := mustRead(t, w.path("plan.csv"))
	want := slices.DeleteFunc(slices.Clone(discoveredRows), func(row string) bool { return strings.HasPrefix(row, "1002 ") })
	if got := planRows(t, text); !slices.Equal(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
	if !strings.Contains(text, "# Left out: 1 certificate record Command sent that could not be read:\n#   page 1 record 1 (id 1002): ") {
		t.Errorf("the plan does not list the unreadable record:\n%s", text)
	}
	for _, want := range []string{"1 unreadable certificate record: listed at the end of the plan\n",
		`msg="Command sent a certificate record that could not be read; it is not in the plan" id=1002`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

type failingStdout struct{}

func (failingStdout) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestDiscoverWriteError: a plan that cannot be written is discover's own
// failure (exit 2), not Command's: no connection hint.
func TestDiscoverWriteError(t *testing.T) {
	newDiscoverWorld(t, func(fx *kfsim.Fixture) {
		for i := range 1000 { // more than the writer buffers: the error comes while the pages are read
			id := 2000 + i
			fx.Certificates = append(fx.Certificates, kfsim.Certificate{Id: id, IssuedCN: fmt.Sprintf("bulk%d.example.com", id),
				Locations: []kfsim.Location{{CertStoreId: discStoreNew, Alias: fmt.Sprintf("bulk%d", id)}}})
		}
	})
	var errOut bytes.Buffer
	code := Main(context.Background(), []string{"runner", "discover"}, failingStdout{}, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "runner: error: write plan: no space left on device") || strings.Contains(errOut.String(), "hint") {
		t.Errorf("exit %d, want %d with the write error and no hint:\n%s", code, exitUsage, errOut.String())
	}
}
