package keyfactor_test

// The client against the simulator, over real HTTP. This is an external
// test package because kfsim imports keyfactor.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"runner/keyfactor"
	"runner/kfsim"
)

const (
	simPassword = "alice-Pa55"
	simSecret   = "runner-client-secret"
	storeIIS    = "aaaaaaaa-0000-4000-8000-000000000001" // type 5, container 4
	storeIIS2   = "aaaaaaaa-0000-4000-8000-000000000002" // type 5, container 4
	storeK8s    = "bbbbbbbb-0000-4000-8000-000000000001" // type 154, no container
	bulkStores  = 130                                    // extra stores, so listing takes two pages
)

var simStart = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

var allPerms = []string{keyfactor.PermCertificatesRead, keyfactor.PermEnrollPFX, keyfactor.PermStoresRead, keyfactor.PermStoresSchedule}

// simWorld is a small Command: one user, one OAuth client, IIS and K8s
// stores plus bulk stores, and a few certificates, one installed in storeIIS.
func simWorld() kfsim.Fixture {
	f := kfsim.Fixture{
		Users:      []kfsim.User{{Username: "alice", Domain: "KEYFACTOR", Password: simPassword, Permissions: allPerms}},
		Clients:    []kfsim.OAuthClient{{ClientID: "runner", ClientSecret: simSecret, Permissions: allPerms}},
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
		c := kfsim.Certificate{Id: 1001 + i, IssuedDN: fmt.Sprintf("CN=web%02d.example.com", i+1), TemplateName: "WebServer",
			CertificateAuthorityName: `ca01\Issuing`, NotBefore: simStart.AddDate(0, 0, -350), NotAfter: simStart.AddDate(0, 0, 15)}
		if i == 0 {
			c.Locations = []keyfactor.Location{{StoreMachine: "iis01.example.com", StorePath: "My", StoreType: 5, Alias: "web01", CertStoreId: storeIIS}}
		}
		f.Certificates = append(f.Certificates, c)
	}
	return f
}

// newSim serves a loaded simulator over HTTP (or HTTPS) on loopback.
func newSim(tb testing.TB, useTLS bool) (*kfsim.Server, *httptest.Server) {
	tb.Helper()
	sim := kfsim.New(kfsim.Options{Clock: kfsim.NewManualClock(simStart), Seed: 7})
	if err := sim.Load(simWorld()); err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(sim)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused TLS handshakes are expected
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
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
	_, srv := newSim(t, false)
	c := simClient(t, srv, nil)
	ctx := context.Background()

	t.Run("status endpoints", func(t *testing.T) {
		eps, err := c.StatusEndpoints(ctx)
		if err != nil || len(eps) == 0 {
			t.Fatalf("StatusEndpoints = %v, %v", eps, err)
		}
	})
	t.Run("permissions", func(t *testing.T) {
		perms, err := c.MyPermissions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !keyfactor.HasPermission(perms, keyfactor.PermStoresSchedule, nil) || !keyfactor.HasPermission(perms, keyfactor.PermEnrollPFX, nil) {
			t.Errorf("permissions = %v", perms)
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
	})
	t.Run("unknown certificate", func(t *testing.T) {
		_, err := c.GetCertificate(ctx, 424242, false)
		var ae *keyfactor.APIError
		if !errors.As(err, &ae) || ae.Status != 404 || ae.Endpoint != "/Certificates/{id}" || keyfactor.Classify(err) != keyfactor.Permanent {
			t.Errorf("error = %v, want a permanent 404 APIError", err)
		}
	})
	t.Run("list certificates paged", func(t *testing.T) {
		var ids []int
		for page := 1; page <= 3; page++ {
			certs, err := c.ListCertificates(ctx, keyfactor.CertificateQuery{QueryString: `IssuedCN -contains "example.com"`,
				PageReturned: page, ReturnLimit: 2, SortField: "Id", SortAscending: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range certs {
				ids = append(ids, x.Id)
			}
		}
		if want := []int{1005, 1004, 1003, 1002, 1001}; fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("ids over three pages = %v, want %v", ids, want)
		}
	})
	t.Run("list certificates by query", func(t *testing.T) {
		want, err := c.GetCertificate(ctx, 1003, false)
		if err != nil {
			t.Fatal(err)
		}
		certs, err := c.ListCertificates(ctx, keyfactor.CertificateQuery{QueryString: `Thumbprint -eq "` + want.Thumbprint + `"`, IncludeLocations: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(certs) != 1 || certs[0].Id != 1003 {
			t.Errorf("certificates = %+v", certs)
		}
	})
	t.Run("list stores one page", func(t *testing.T) {
		stores, err := c.ListCertificateStores(ctx, keyfactor.StoreQuery{QueryString: "CertStoreType -eq 5", PageReturned: 2, ReturnLimit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(stores) != bulkStores+2-100 {
			t.Errorf("page 2 holds %d stores, want %d", len(stores), bulkStores+2-100)
		}
	})
	t.Run("all stores", func(t *testing.T) {
		stores, err := c.AllCertificateStores(ctx, "")
		if err != nil {
			t.Fatal(err)
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
		var props map[string]any
		if st.ContainerId != nil || st.CertStoreType != 154 || st.Storepath != "default/web" || json.Unmarshal([]byte(st.Properties), &props) != nil {
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
			sim, srv := newSim(t, false)
			c := simClient(t, srv, nil)
			ctx := context.Background()
			rr, err := c.Renew(ctx, keyfactor.RenewalRequest{CertificateId: 1001})
			if err != nil {
				t.Fatal(err)
			}
			if rr.KeyfactorId == 0 || rr.KeyfactorId == 1001 || rr.KeyfactorRequestId == 0 {
				t.Fatalf("renewal = %+v", rr)
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
			if len(dr.SuccessfulStores) != 2 || len(dr.FailedStores) != 0 {
				t.Errorf("deploy = %+v", dr)
			}
			led := sim.Ledger()
			if len(led.Renewals) != 1 || len(led.Deploys) != 1 || len(led.Jobs) != 2 {
				t.Fatalf("ledger: %d renewals, %d deploys, %d jobs", len(led.Renewals), len(led.Deploys), len(led.Jobs))
			}
			if d := led.Deploys[0]; d.Legacy != tt.legacy || d.Identity != `KEYFACTOR\alice` || d.CertificateId != rr.KeyfactorId {
				t.Errorf("ledger deploy = %+v", d)
			}
		})
	}
}

func TestKfsimAuthModes(t *testing.T) {
	_, srv := newSim(t, false)
	tokenURL := srv.URL + "/_kfsim/oauth/token"
	tests := []struct {
		name         string
		edit         func(*keyfactor.Config)
		wantIdentity string
		wantStatus   int // 0: success
	}{
		{name: "basic with domain setting", edit: func(c *keyfactor.Config) {}, wantIdentity: `KEYFACTOR\alice`},
		{name: "basic with domain in username", edit: func(c *keyfactor.Config) { c.Username, c.Domain = `keyfactor\alice`, "" }, wantIdentity: `keyfactor\alice`},
		{name: "basic upn", edit: func(c *keyfactor.Config) { c.Username, c.Domain = "alice@KEYFACTOR", "" }, wantIdentity: `KEYFACTOR\alice`},
		{name: "oauth client credentials", edit: func(c *keyfactor.Config) {
			c.Username, c.Password, c.Domain = "", "", ""
			c.ClientID, c.ClientSecret, c.TokenURL, c.Scopes, c.Audience = "runner", simSecret, tokenURL, []string{"openid"}, "keyfactor"
		}, wantIdentity: "oauth client runner"},
		{name: "bearer token", edit: func(c *keyfactor.Config) {
			c.Username, c.Password, c.Domain = "", "", ""
			c.AccessToken = fetchToken(t, tokenURL)
		}, wantIdentity: "bearer token"},
		{name: "bad password", edit: func(c *keyfactor.Config) { c.Password = "wrong-password" }, wantStatus: 401},
		{name: "unknown domain", edit: func(c *keyfactor.Config) { c.Domain = "OTHER" }, wantStatus: 401},
		{name: "bad client secret", edit: func(c *keyfactor.Config) {
			c.Username, c.Password, c.Domain = "", "", ""
			c.ClientID, c.ClientSecret, c.TokenURL = "runner", "wrong-secret", tokenURL
		}, wantStatus: 401},
		{name: "bad token", edit: func(c *keyfactor.Config) {
			c.Username, c.Password, c.Domain, c.AccessToken = "", "", "", "not-a-token"
		}, wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := simClient(t, srv, tt.edit)
			perms, err := c.MyPermissions(context.Background())
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if len(perms) != len(allPerms) || c.Identity() != tt.wantIdentity {
					t.Errorf("identity %q, permissions %v", c.Identity(), perms)
				}
				return
			}
			var ae *keyfactor.APIError
			if !errors.As(err, &ae) || ae.Status != tt.wantStatus || keyfactor.Classify(err) != keyfactor.Permanent {
				t.Fatalf("error = %v, want a permanent %d APIError", err, tt.wantStatus)
			}
			for _, s := range []string{"wrong-password", "wrong-secret", simPassword, simSecret} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

// fetchToken gets an access token from kfsim's token endpoint.
func fetchToken(tb testing.TB, tokenURL string) string {
	tb.Helper()
	resp, err := http.PostForm(tokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {"runner"}, "client_secret": {simSecret}})
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		tb.Fatalf("token: status %d, %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

func TestKfsimFaults(t *testing.T) {
	tests := []struct {
		name      string
		fault     string
		call      func(c *keyfactor.Client) error
		wantClass keyfactor.Class
		wantSent  bool // for TransportErrors
		wantRetry time.Duration
		wantText  string
	}{
		{name: "renew response lost", fault: "renew:drop-after",
			call: func(c *keyfactor.Client) error {
				_, err := c.Renew(context.Background(), keyfactor.RenewalRequest{CertificateId: 1002})
				return err
			},
			wantClass: keyfactor.Unknown, wantSent: true, wantText: "POST /Enrollment/Renew: request sent"},
		{name: "renew dropped before processing", fault: "renew:drop-before",
			call: func(c *keyfactor.Client) error {
				_, err := c.Renew(context.Background(), keyfactor.RenewalRequest{CertificateId: 1002})
				return err
			},
			wantClass: keyfactor.Unknown, wantSent: true, wantText: "request sent"},
		{name: "deploy 429", fault: "deploy:429:retry-after=4s",
			call: func(c *keyfactor.Client) error {
				_, err := c.Deploy(context.Background(), keyfactor.DeployRequest{CertificateId: 1002, Stores: []keyfactor.DeployStore{{StoreId: storeIIS}}})
				return err
			},
			wantClass: keyfactor.Retryable, wantRetry: 4 * time.Second, wantText: "HTTP 429"},
		{name: "certificate malformed JSON", fault: "certificate:malformed-json",
			call: func(c *keyfactor.Client) error {
				_, err := c.GetCertificate(context.Background(), 1001, true)
				return err
			},
			wantClass: keyfactor.Unknown, wantText: "GET /Certificates/{id}: HTTP 200: undecodable JSON body"},
		{name: "stores 503", fault: "stores:503",
			call: func(c *keyfactor.Client) error {
				_, err := c.AllCertificateStores(context.Background(), "")
				return err
			},
			wantClass: keyfactor.Retryable, wantText: "GET /CertificateStores: HTTP 503"},
		{name: "status 500", fault: "status:500",
			call:      func(c *keyfactor.Client) error { _, err := c.StatusEndpoints(context.Background()); return err },
			wantClass: keyfactor.Unknown, wantText: "HTTP 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, srv := newSim(t, false)
			rule, err := kfsim.ParseFault(tt.fault)
			if err != nil {
				t.Fatal(err)
			}
			sim.SetFaults(rule)
			// No GET retries: the real Retry-After waits would slow the test.
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
			if got := keyfactor.RetryAfterOf(err); got != tt.wantRetry {
				t.Errorf("RetryAfterOf = %v, want %v", got, tt.wantRetry)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
			if n := len(sim.Ledger().Requests); n != 1 && !strings.HasPrefix(tt.fault, "stores") {
				t.Errorf("simulator saw %d requests, want 1", n)
			}
		})
	}
}

func TestKfsimTLS(t *testing.T) {
	_, srv := newSim(t, true)
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(pemText), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		caCert     string
		skipVerify bool
		wantErr    bool
		wantWarn   bool
	}{
		{name: "CA as PEM text", caCert: pemText},
		{name: "CA as file path", caCert: caFile},
		{name: "no CA", wantErr: true},
		{name: "skip verify", skipVerify: true, wantWarn: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			c := simClient(t, srv, func(c *keyfactor.Config) {
				c.CACert, c.SkipVerify = tt.caCert, tt.skipVerify
				c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			})
			if !strings.HasPrefix(c.BaseURL(), "https://127.0.0.1:") {
				t.Fatalf("BaseURL = %q", c.BaseURL())
			}
			_, err := c.StatusEndpoints(context.Background())
			if tt.wantErr {
				var te *keyfactor.TransportError
				var uae x509.UnknownAuthorityError
				if !errors.As(err, &te) || te.Sent || !errors.As(err, &uae) {
					t.Fatalf("error = %v, want an unsent TransportError for an unknown authority", err)
				}
				if keyfactor.Classify(err) != keyfactor.Permanent {
					t.Errorf("Classify = %v, want permanent", keyfactor.Classify(err))
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if warned := strings.Contains(logs.String(), "level=WARN"); warned != tt.wantWarn {
				t.Errorf("warning logged = %v, want %v: %s", warned, tt.wantWarn, logs.String())
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
}
