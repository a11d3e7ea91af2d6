package kfsim

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLoadFixtureFile(t *testing.T) {
	f, err := LoadFixture("testdata/world.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Users) != 9 || len(f.Stores) != 7 || len(f.Certificates) != 8 || len(f.StoreTypes) != 4 || len(f.Collections) != 1 {
		t.Fatalf("fixture = %d users, %d stores, %d certificates", len(f.Users), len(f.Stores), len(f.Certificates))
	}
	if f.Users[4].Username != "eve" {
		t.Errorf("lowercase keys not decoded: %+v", f.Users[4])
	}
	if f.Templates[0].Lifetime != 90*24*time.Hour || f.Templates[1].Lifetime != 720*time.Hour {
		t.Errorf("template lifetimes = %v, %v", f.Templates[0].Lifetime, f.Templates[1].Lifetime)
	}
	sim := New(Options{Clock: NewManualClock(t0), Seed: 1})
	if err := sim.Load(f); err != nil {
		t.Fatal(err)
	}
	c, ok := sim.Certificate(102)
	if !ok {
		t.Fatal("certificate 102 missing")
	}
	if c.IssuedDN != "CN=legacy.example.com" || len(c.Thumbprint) != 40 || len(c.SerialNumber) != 40 || c.IssuerDN == "" {
		t.Errorf("filled certificate = %+v", c)
	}
	c, _ = sim.Certificate(100)
	if c.IssuedCN != "web.example.com" || c.Locations[0].StoreMachine != "web01.corp.example" || c.Locations[0].StoreType != 2 {
		t.Errorf("certificate 100 = %+v", c)
	}
}

func TestLoadFixtureErrors(t *testing.T) {
	tests := []struct {
		name, path, want string
	}{
		{"unknown key", "testdata/unknown-key.json", "StorPath"},
		{"missing file", "testdata/nope.json", "nope.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadFixture(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestLoadValidates(t *testing.T) {
	base := func() *Server {
		s := New(Options{Clock: NewManualClock(t0)})
		if err := s.Load(Fixture{
			Users:        []User{{Username: "alice", Domain: "CORP", Password: "x"}},
			Stores:       []Store{{Id: storeK8s}},
			Certificates: []Certificate{{Id: 1, Thumbprint: "AB", Locations: []Location{{CertStoreId: storeK8s, Alias: "tls"}}}},
		}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name string
		f    Fixture
		want string
	}{
		{"duplicate user any case", Fixture{Users: []User{{Username: "ALICE", Domain: "corp"}}}, "duplicate"},
		{"user in username", Fixture{Users: []User{{Username: `corp\alice`}}}, "duplicate"},
		{"empty username", Fixture{Users: []User{{Password: "x"}}}, "Username is empty"},
		{"client without secret", Fixture{Clients: []OAuthClient{{ClientID: "c"}}}, "ClientSecret"},
		{"duplicate store any case", Fixture{Stores: []Store{{Id: strings.ToUpper(storeK8s)}}}, "duplicate"},
		{"store without id", Fixture{Stores: []Store{{StorePath: "x"}}}, "Id is empty"},
		{"duplicate certificate id", Fixture{Certificates: []Certificate{{Id: 1}}}, "duplicate Id"},
		{"duplicate thumbprint", Fixture{Certificates: []Certificate{{Id: 2, Thumbprint: "ab"}}}, "duplicate Thumbprint"},
		{"bad thumbprint", Fixture{Certificates: []Certificate{{Id: 3, Thumbprint: "XYZ"}}}, "not hex"},
		{"inverted validity", Fixture{Certificates: []Certificate{{Id: 4, NotBefore: t0, NotAfter: t0.Add(-time.Hour)}}}, "not after"},
		{"template without name", Fixture{Templates: []Template{{}}}, "Name is empty"},
		{"alias held in the world", Fixture{Certificates: []Certificate{{Id: 2, Locations: []Location{{CertStoreId: strings.ToUpper(storeK8s), Alias: "TLS"}}}}},
			`alias "TLS" is already held by certificate 1`},
		{"alias held twice in the fixture", Fixture{Certificates: []Certificate{
			{Id: 2, Locations: []Location{{CertStoreId: storeK8s, Alias: "app"}}},
			{Id: 3, Locations: []Location{{CertStoreId: storeK8s, Alias: "app"}}},
		}}, `alias "app" is already held by certificate 2`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			// A valid part beside the bad one must not be loaded either.
			tc.f.Containers = append(tc.f.Containers, Container{Id: 9})
			err := s.Load(tc.f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if s.containers[9] != nil {
				t.Error("a failed Load changed the world")
			}
		})
	}
}

func TestLoadFillsDefaults(t *testing.T) {
	s := New(Options{Clock: NewManualClock(t0), Seed: 3})
	err := s.Load(Fixture{
		Stores:       []Store{{Id: "A-B", ContainerId: 12}},
		Templates:    []Template{{Name: "T"}},
		Certificates: []Certificate{{Id: 50}, {}, {IssuedCN: "x.test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.containers[12] == nil || s.stores["a-b"] == nil || s.templates["t"].Lifetime != DefaultLifetime {
		t.Errorf("containers %v stores %v templates %v", s.containers, s.stores, s.templates)
	}
	c, ok := s.Certificate(51)
	if !ok || c.IssuedCN != "cert-51.kfsim.test" || c.IssuedDN != "CN=cert-51.kfsim.test" {
		t.Errorf("certificate 51 = %+v", c)
	}
	if due := c.NotAfter.Sub(t0); due != 15*24*time.Hour {
		t.Errorf("default validity ends in %s, want 15 days", due)
	}
	if c, _ := s.Certificate(52); c.IssuedDN != "CN=x.test" {
		t.Errorf("certificate 52 = %+v", c)
	}
}

func TestTemplateJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{`{"Name":"a","Lifetime":"30d"}`, 30 * 24 * time.Hour, false},
		{`{"Name":"a","Lifetime":"36h"}`, 36 * time.Hour, false},
		{`{"Name":"a","Lifetime":3600000000000}`, time.Hour, false},
		{`{"Name":"a"}`, 0, false},
		{`{"Name":"a","Lifetime":"soon"}`, 0, true},
		{`{"Name":"a","Life":"1d"}`, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			var tm Template
			err := json.Unmarshal([]byte(tc.in), &tm)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && tm.Lifetime != tc.want {
				t.Errorf("Lifetime = %s, want %s", tm.Lifetime, tc.want)
			}
			if err == nil {
				b, _ := json.Marshal(tm)
				var back Template
				if err := json.Unmarshal(b, &back); err != nil || back != tm {
					t.Errorf("round trip %s -> %+v, %v", b, back, err)
				}
			}
		})
	}
}

func TestManualClock(t *testing.T) {
	c := NewManualClock(t0)
	c.Advance(time.Minute)
	if !c.Now().Equal(t0.Add(time.Minute)) {
		t.Errorf("after Advance: %s", c.Now())
	}
	c.Set(t0)
	if !c.Now().Equal(t0) {
		t.Errorf("after Set: %s", c.Now())
	}
}

// TestConcurrentRenewDeploy runs many renew → deploy pairs at once (run it
// with -race); every pair must succeed and the ledger must hold each once.
func TestConcurrentRenewDeploy(t *testing.T) {
	h := newHarness(t, Options{})
	const workers = 16
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := []cred{alice, bob}[i%2]
			// 101 needs approval: its deploy goes by request id.
			certID := []int{100, 101, 103, 104}[i%4]
			res, err := h.try("POST", "Enrollment/Renew", who, wireRenewalRequest{CertificateId: certID}, true)
			if err != nil || res.status != http.StatusOK {
				errs <- "renew: " + string(res.body)
				return
			}
			var rn renewAnswer
			_ = json.Unmarshal(res.body, &rn)
			res, err = h.try("POST", "Enrollment/PFX/Deploy", who, wireDeployRequest{CertificateId: rn.KeyfactorId, RequestId: rn.KeyfactorRequestId, Stores: stores(storeK8s)}, true)
			if err != nil || res.status != http.StatusOK {
				errs <- "deploy: " + string(res.body)
			}
			h.clock.Advance(time.Second)
			h.sim.Certificate(100)
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	l := h.sim.Ledger()
	if len(l.Renewals) != workers || len(l.Deploys) != workers || len(l.Jobs) != workers {
		t.Errorf("%d renewals, %d deploys", len(l.Renewals), len(l.Deploys))
	}
}

// TestAddAndRemoveLocation moves certificates between stores by hand, as
// drift tests do, and checks Command's answers follow.
func TestAddAndRemoveLocation(t *testing.T) {
	h := newHarness(t, Options{})
	locations := func(id int) []Location {
		t.Helper()
		return decode[wireCertificate](t, h.call("GET", "Certificates/"+itoa(id)+"?includeLocations=true", alice, nil), 200).Locations
	}
	if err := h.sim.AddLocation(104, strings.ToUpper(storeWeb02), "api"); err != nil {
		t.Fatal(err)
	}
	want := Location{StoreMachine: "web02.corp.example", StorePath: "My", StoreType: 2, Alias: "api", CertStoreId: storeWeb02}
	if l := locations(104); len(l) != 1 || l[0] != want {
		t.Fatalf("after AddLocation: %+v, want %+v", l, want)
	}
	// Taking an alias another certificate holds moves it, as an overwrite.
	if err := h.sim.AddLocation(104, storeWeb01, "WEB"); err != nil {
		t.Fatal(err)
	}
	if l := locations(100); len(l) != 0 {
		t.Errorf("certificate 100 still at %+v", l)
	}
	if err := h.sim.AddLocation(103, storeK8s, ""); err != nil {
		t.Fatal(err)
	}
	if l := locations(103); len(l) != 1 || len(l[0].Alias) != 40 {
		t.Errorf("empty alias: %+v, want the thumbprint", l)
	}
	if err := h.sim.RemoveLocation(104, storeWeb02); err != nil {
		t.Fatal(err)
	}
	if l := locations(104); len(l) != 1 || l[0].CertStoreId != storeWeb01 {
		t.Errorf("after RemoveLocation: %+v", l)
	}
	// The alias index follows: a job to the freed alias needs no overwrite.
	rn := h.renew(alice, wireRenewalRequest{CertificateId: 100})
	h.deploy(alice, wireDeployRequest{CertificateId: rn.KeyfactorId, Stores: []wireDeployStore{{StoreId: storeWeb02, Alias: "api"}}})
	h.clock.Advance(DefaultJobDelay)
	if j := h.sim.Ledger().Jobs[0]; j.State != JobSucceeded {
		t.Errorf("job to the freed alias = %+v", j)
	}

	for _, tc := range []struct {
		name string
		err  error
	}{
		{"unknown certificate", h.sim.AddLocation(999, storeWeb01, "x")},
		{"unknown store", h.sim.AddLocation(104, "nope", "x")},
		{"remove unknown certificate", h.sim.RemoveLocation(999, storeWeb01)},
		{"remove from a store it is not in", h.sim.RemoveLocation(104, storeDB)},
	} {
		if !errors.Is(tc.err, errNotFound) {
			t.Errorf("%s: err = %v, want not found", tc.name, tc.err)
		}
	}
}

func TestSyntheticTargets(t *testing.T) {
	got := SyntheticTargets(3, 2)
	if len(got) != 6 {
		t.Fatalf("%d targets, want 6", len(got))
	}
	stores := map[string]bool{}
	for i, tg := range got {
		if want := 1001 + i/2; tg.CertificateID != want || tg.Alias != "app"+itoa(want) {
			t.Errorf("target %d = %+v, want certificate %d", i, tg, want)
		}
		stores[tg.StoreID] = true
	}
	if len(stores) != 2 {
		t.Errorf("stores %v, want 2 shared by every certificate", stores)
	}
	s := New(Options{Clock: NewManualClock(t0)})
	if err := s.Load(SeedFixture(got, t0)); err != nil {
		t.Fatal(err)
	}
	if c, ok := s.Certificate(1003); !ok || len(c.Locations) != 2 {
		t.Errorf("certificate 1003 = %+v", c)
	}
}
