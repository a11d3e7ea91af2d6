package simtest

// The client against the simulator, over real HTTP, using only kfsim's
// exported API. Wire details are tested against httptest handlers and
// fixtures in package keyfactor.

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"runner/keyfactor"
	"runner/kfsim"
)

const (
	simPassword = "alice-Pa55"
	storeIIS    = "aaaaaaaa-0000-4000-8000-000000000001" // type 5, container 4
	storeIIS2   = "aaaaaaaa-0000-4000-8000-000000000002" // type 5, container 4
	storeK8s    = "bbbbbbbb-0000-4000-8000-000000000001" // type 154, no container
	bulkStores  = 130                                    // extra stores, so listing takes two pages
)

var simStart = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

var allPerms = []string{keyfactor.PermCertificatesRead, keyfactor.PermEnrollPFX, keyfactor.PermStoresRead, keyfactor.PermStoresSchedule}

// simWorld is a small Command: a user with the four permissions, an
// administrator with "/", IIS and K8s stores plus bulk stores, and a few
// certificates, one installed in storeIIS.
func simWorld() kfsim.Fixture {
	f := kfsim.Fixture{
		Users: []kfsim.User{
			{Username: "alice", Domain: "KEYFACTOR", Password: simPassword, Permissions: allPerms},
			{Username: "admin", Domain: "KEYFACTOR", Password: simPassword, Permissions: []string{"/"}},
		},
		Containers: []kfsim.Container{{Id: 4, Name: "Web"}},
		Templates:  []kfsim.Template{{Name: "WebServer"}},
		Stores: []kfsim.Store{
			{Id: storeIIS, ContainerId: 4, ClientMachine: "iis01.example.com", StorePath: "My", CertStoreType: 5},
			{Id: storeIIS2, ContainerId: 4, ClientMachine: "iis02.example.com", StorePath: "My", CertStoreType: 5},
			{Id: storeK8s, ClientMachine: "k8s-cluster", StorePath: "default/web", CertStoreType: 154},
		},
	}
	for i := range bulkStores {
		f.Stores = append(f.Stores, kfsim.Store{Id: fmt.Sprintf("cccccccc-0000-4000-8000-%012d", i), ContainerId: 4,
			ClientMachine: fmt.Sprintf("bulk%03d.example.com", i), StorePath: "My", CertStoreType: 5})
	}
	for i := range 5 {
		c := kfsim.Certificate{Id: 1001 + i, IssuedDN: fmt.Sprintf("CN=web%02d.example.com", i+1), IssuedCN: fmt.Sprintf("web%02d.example.com", i+1),
			TemplateName: "WebServer", CertificateAuthorityName: `ca01\Issuing`, NotBefore: simStart.AddDate(0, 0, -350), NotAfter: simStart.AddDate(0, 0, 15)}
		if i == 0 {
			c.Locations = []kfsim.Location{{StoreMachine: "iis01.example.com", StorePath: "My", StoreType: 5, Alias: "web01", CertStoreId: storeIIS}}
		}
		f.Certificates = append(f.Certificates, c)
	}
	return f
}

// newSim serves a loaded simulator over HTTP on loopback. (TLS trust is
// tested against httptest in package keyfactor.)
func newSim(tb testing.TB) (*kfsim.Server, *httptest.Server) {
	tb.Helper()
	sim := kfsim.New(kfsim.Options{Clock: kfsim.NewManualClock(simStart), Seed: 7})
	if err := sim.Load(simWorld()); err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	tb.Cleanup(srv.Close)
	return sim, srv
}

// simClient is a Basic-auth client of srv; edit may change the config.
func simClient(tb testing.TB, srv *httptest.Server, edit func(*keyfactor.Config)) *keyfactor.Client {
	tb.Helper()
	cfg := keyfactor.Config{Hostname: srv.URL, Username: `alice`, Domain: "KEYFACTOR", Password: simPassword, Timeout: 10 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	c, err := keyfactor.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestKfsimReads(t *testing.T) {
	_, srv := newSim(t)
	c := simClient(t, srv, nil)
	ctx := context.Background()
	four := 4

	t.Run("status endpoints", func(t *testing.T) {
		eps, err := c.StatusEndpoints(ctx)
		if err != nil || len(eps) == 0 {
			t.Fatalf("StatusEndpoints = %v, %v", eps, err)
		}
	})
	t.Run("permissions", func(t *testing.T) {
		perms, err := c.Permissions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !perms.Known || perms.Source != keyfactor.SourceMyPermissions || !perms.Has(keyfactor.PermStoresSchedule, &four) || !perms.Has(keyfactor.PermEnrollPFX, nil) {
			t.Errorf("permissions = %+v", perms)
		}
	})
	t.Run("administrator inherits everything", func(t *testing.T) {
		admin := simClient(t, srv, func(c *keyfactor.Config) { c.Username = "admin" })
		perms, err := admin.Permissions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range allPerms {
			if !perms.Has(p, &four) || !perms.Has(p, nil) {
				t.Errorf("admin lacks %s: %+v", p, perms)
			}
		}
	})
	t.Run("certificate with locations", func(t *testing.T) {
		cert, err := c.GetCertificate(ctx, 1001, true)
		if err != nil {
			t.Fatal(err)
		}
		if cert.Id != 1001 || cert.Thumbprint == "" || len(cert.Locations) != 1 || cert.Locations[0].CertStoreId != storeIIS {
			t.Errorf("certificate = %+v", cert)
		}
		if !cert.NotAfter.Equal(simStart.AddDate(0, 0, 15)) {
			t.Errorf("NotAfter = %v", cert.NotAfter)
		}
	})
	t.Run("unknown certificate", func(t *testing.T) {
		_, err := c.GetCertificate(ctx, 424242, false)
		var ae *keyfactor.APIError
		if !errors.As(err, &ae) || ae.Status != 404 || ae.Endpoint != "/Certificates/{id}" || keyfactor.CauseOf(err) != keyfactor.CauseNotFound {
			t.Errorf("error = %v, want a 404 APIError", err)
		}
	})
	t.Run("all certificates in small pages", func(t *testing.T) {
		var ids []int
		odd, err := c.AllCertificates(ctx, keyfactor.CertificateQuery{QueryString: `IssuedCN -contains "example.com"`, ReturnLimit: 2},
			func(cert *keyfactor.Certificate) error { ids = append(ids, cert.Id); return nil })
		if err != nil || len(odd) != 0 {
			t.Fatal(err, odd)
		}
		slices.Sort(ids)
		if want := []int{1001, 1002, 1003, 1004, 1005}; !slices.Equal(ids, want) {
			t.Errorf("ids = %v, want %v", ids, want)
		}
	})
	t.Run("certificates by id", func(t *testing.T) {
		got, odd, err := c.CertificatesByID(ctx, []int{1005, 1002, 999999, 1002}, false)
		if err != nil || len(odd) != 0 {
			t.Fatal(err, odd)
		}
		if len(got) != 2 || got[1002] == nil || got[1005] == nil || got[1002].Id != 1002 {
			t.Errorf("got %v", got)
		}
	})
	t.Run("list certificates by thumbprint", func(t *testing.T) {
		want, err := c.GetCertificate(ctx, 1003, false)
		if err != nil {
			t.Fatal(err)
		}
		tp, err := keyfactor.Quote(want.Thumbprint)
		if err != nil {
			t.Fatal(err)
		}
		page, err := c.ListCertificates(ctx, keyfactor.CertificateQuery{QueryString: keyfactor.Clause("Thumbprint", "-eq", tp), IncludeLocations: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Certificates) != 1 || page.Certificates[0].Id != 1003 || page.Total != 1 {
			t.Errorf("page = %+v", page)
		}
	})
	t.Run("all stores", func(t *testing.T) {
		stores, odd, err := c.AllCertificateStores(ctx, "")
		if err != nil || len(odd) != 0 {
			t.Fatal(err, odd)
		}
		if len(stores) != bulkStores+3 {
			t.Errorf("got %d stores, want %d", len(stores), bulkStores+3)
		}
	})
	t.Run("store without container", func(t *testing.T) {
		st, err := c.GetCertificateStore(ctx, storeK8s)
		if err != nil {
			t.Fatal(err)
		}
		if st.ContainerId != nil || st.CertStoreType != 154 || st.Storepath != "default/web" || st.Id != storeK8s {
			t.Errorf("store = %+v", st)
		}
	})
	t.Run("store in container", func(t *testing.T) {
		st, err := c.GetCertificateStore(ctx, storeIIS)
		if err != nil {
			t.Fatal(err)
		}
		if st.ContainerId == nil || *st.ContainerId != 4 {
			t.Errorf("store = %+v", st)
		}
	})
}

func TestKfsimRenewAndDeploy(t *testing.T) {
	tests := []struct {
		name   string
		legacy bool
	}{
		{name: "stores shape"},
		{name: "legacy shape", legacy: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, srv := newSim(t)
			c := simClient(t, srv, nil)
			ctx := context.Background()
			rr, err := c.Renew(ctx, keyfactor.RenewalRequest{CertificateId: 1001})
			if err != nil {
				t.Fatal(err)
			}
			if rr.KeyfactorId == 0 || rr.KeyfactorId == 1001 || rr.Outcome() != keyfactor.RenewIssued {
				t.Fatalf("renewal = %+v (%v)", rr, rr.Outcome())
			}
			req := keyfactor.DeployRequest{CertificateId: rr.KeyfactorId, Stores: []keyfactor.DeployStore{
				{StoreId: storeIIS, Alias: "web01", Overwrite: true},
				{StoreId: storeIIS2, Alias: "web01", Overwrite: true},
			}}
			if tt.legacy {
				if req, err = keyfactor.LegacyDeployRequest(req, map[string]int{storeIIS: 5, storeIIS2: 5}); err != nil {
					t.Fatal(err)
				}
			}
			dr, err := c.Deploy(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(dr.SuccessfulStores, []string{storeIIS, storeIIS2}) || len(dr.FailedStores) != 0 {
				t.Errorf("deploy = %+v", dr)
			}
			led := sim.Ledger()
			if len(led.Renewals) != 1 || len(led.Deploys) != 1 {
				t.Fatalf("ledger: %d renewals, %d deploys", len(led.Renewals), len(led.Deploys))
			}
			if d := led.Deploys[0]; d.Legacy != tt.legacy || d.Identity != `KEYFACTOR\alice` || d.CertificateId != rr.KeyfactorId {
				t.Errorf("ledger deploy = %+v", d)
			}
		})
	}
}

func TestKfsimBasicAuth(t *testing.T) {
	_, srv := newSim(t)
	tests := []struct {
		name         string
		edit         func(*keyfactor.Config)
		wantIdentity string
		wantStatus   int // 0: success
	}{
		{name: "domain setting", edit: func(c *keyfactor.Config) {}, wantIdentity: `KEYFACTOR\alice`},
		{name: "domain in username", edit: func(c *keyfactor.Config) { c.Username, c.Domain = `keyfactor\alice`, "" }, wantIdentity: `keyfactor\alice`},
		{name: "upn", edit: func(c *keyfactor.Config) { c.Username, c.Domain = "alice@KEYFACTOR", "" }, wantIdentity: `KEYFACTOR\alice`},
		{name: "bad password", edit: func(c *keyfactor.Config) { c.Password = "wrong-password" }, wantStatus: 401},
		{name: "unknown domain", edit: func(c *keyfactor.Config) { c.Domain = "OTHER" }, wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := simClient(t, srv, tt.edit)
			_, err := c.StatusEndpoints(context.Background())
			if tt.wantStatus == 0 {
				if err != nil || c.Identity() != tt.wantIdentity {
					t.Fatalf("identity %q, error %v", c.Identity(), err)
				}
				return
			}
			var ae *keyfactor.APIError
			if !errors.As(err, &ae) || ae.Status != tt.wantStatus || keyfactor.CauseOf(err) != keyfactor.CauseUnauthorized {
				t.Fatalf("error = %v, want a %d APIError", err, tt.wantStatus)
			}
			for _, s := range []string{"wrong-password", simPassword} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

func TestKfsimFaults(t *testing.T) {
	tests := []struct {
		name      string
		fault     string
		call      func(c *keyfactor.Client) error
		wantClass keyfactor.Class
		wantSent  bool // for TransportErrors
		wantText  string
	}{
		{name: "renew response lost", fault: "renew:drop-after",
			call: func(c *keyfactor.Client) error {
				_, err := c.Renew(context.Background(), keyfactor.RenewalRequest{CertificateId: 1002})
				return err
			},
			wantClass: keyfactor.Unknown, wantSent: true, wantText: "POST /Enrollment/Renew: request sent"},
		{name: "deploy 429", fault: "deploy:429",
			call: func(c *keyfactor.Client) error {
				_, err := c.Deploy(context.Background(), keyfactor.DeployRequest{CertificateId: 1002, Stores: []keyfactor.DeployStore{{StoreId: storeIIS}}})
				return err
			},
			wantClass: keyfactor.Retryable, wantText: "HTTP 429"},
		{name: "certificate malformed JSON", fault: "certificate:malformed-json",
			call: func(c *keyfactor.Client) error {
				_, err := c.GetCertificate(context.Background(), 1001, true)
				return err
			},
			wantClass: keyfactor.Unknown, wantText: "GET /Certificates/{id}: HTTP 200: undecodable JSON body"},
		{name: "stores 503", fault: "stores:503",
			call: func(c *keyfactor.Client) error {
				_, _, err := c.AllCertificateStores(context.Background(), "")
				return err
			},
			wantClass: keyfactor.Retryable, wantText: "GET /CertificateStores: HTTP 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, srv := newSim(t)
			rule, err := kfsim.ParseFault(tt.fault)
			if err != nil {
				t.Fatal(err)
			}
			sim.SetFaults(rule)
			// No GET retries: Retry-After waits would slow the test.
			c := simClient(t, srv, func(c *keyfactor.Config) { c.GetRetries = -1 })
			err = tt.call(c)
			if err == nil {
				t.Fatal("want an error")
			}
			if got := keyfactor.Classify(err); got != tt.wantClass {
				t.Errorf("Classify(%v) = %v, want %v", err, got, tt.wantClass)
			}
			var te *keyfactor.TransportError
			if errors.As(err, &te) != tt.wantSent || (te != nil && te.Sent != tt.wantSent) {
				t.Errorf("error = %#v, want a sent TransportError: %v", err, tt.wantSent)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
		})
	}
}

func TestKfsimAPIPath(t *testing.T) {
	sim := kfsim.New(kfsim.Options{APIPath: "Keyfactor/API"})
	if err := sim.Load(simWorld()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c := simClient(t, srv, func(c *keyfactor.Config) { c.APIPath = "/Keyfactor/API/" })
	if _, err := c.StatusEndpoints(context.Background()); err != nil {
		t.Fatal(err)
	}
	wrong := simClient(t, srv, nil) // default KeyfactorAPI
	_, err := wrong.StatusEndpoints(context.Background())
	if m, e := keyfactor.EndpointOf(err); keyfactor.CauseOf(err) != keyfactor.CauseNotFound || m != "GET" || e != "/Status/Endpoints" {
		t.Errorf("wrong API path: error %v (cause %v)", err, keyfactor.CauseOf(err))
	}
}
