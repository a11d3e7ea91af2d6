package keyfactor

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestBaseURL(t *testing.T) {
	tests := []struct {
		name     string
		hostname string
		port     int
		apiPath  string
		want     string
		wantErr  string // substring; "" means success
	}{
		{name: "bare host", hostname: "kf.example.com", want: "https://kf.example.com:443/KeyfactorAPI"},
		{name: "host and port", hostname: "kf.example.com:8443", want: "https://kf.example.com:8443/KeyfactorAPI"},
		{name: "https URL", hostname: "https://KF.example.com", want: "https://kf.example.com:443/KeyfactorAPI"},
		{name: "https URL with port and slash", hostname: "https://kf.example.com:9443/", want: "https://kf.example.com:9443/KeyfactorAPI"},
		{name: "port setting", hostname: "kf.example.com", port: 8443, want: "https://kf.example.com:8443/KeyfactorAPI"},
		{name: "port setting agrees", hostname: "kf.example.com:8443", port: 8443, want: "https://kf.example.com:8443/KeyfactorAPI"},
		{name: "api path trimmed", hostname: "kf.example.com", apiPath: "/Keyfactor/API/", want: "https://kf.example.com:443/Keyfactor/API"},
		{name: "http loopback", hostname: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080/KeyfactorAPI"},
		{name: "http localhost default port", hostname: "http://localhost", want: "http://localhost:80/KeyfactorAPI"},
		{name: "http ipv6 loopback", hostname: "http://[::1]:9000", want: "http://[::1]:9000/KeyfactorAPI"},
		{name: "bare ipv6", hostname: "fd00::5", want: "https://[fd00::5]:443/KeyfactorAPI"},
		{name: "surrounding spaces", hostname: "  kf.example.com ", want: "https://kf.example.com:443/KeyfactorAPI"},
		{name: "empty", hostname: "", wantErr: "KEYFACTOR_HOSTNAME is not set"},
		{name: "http not loopback", hostname: "http://kf.example.com", wantErr: "plain http is only allowed for loopback"},
		{name: "path in URL", hostname: "https://kf.example.com/KeyfactorAPI", wantErr: "KEYFACTOR_API_PATH"},
		{name: "path without scheme", hostname: "kf.example.com/KeyfactorAPI", wantErr: "KEYFACTOR_API_PATH"},
		{name: "other scheme", hostname: "ftp://kf.example.com", wantErr: "unsupported scheme"},
		{name: "bad port", hostname: "kf.example.com:99999", wantErr: "port must be 1-65535"},
		{name: "port disagrees", hostname: "kf.example.com:8443", port: 443, wantErr: "KEYFACTOR_PORT 443 disagrees"},
		{name: "negative port", hostname: "kf.example.com", port: -1, wantErr: "KEYFACTOR_PORT -1"},
		{name: "bad api path", hostname: "kf.example.com", apiPath: "Keyfactor API?x", wantErr: "KEYFACTOR_API_PATH"},
		{name: "dot dot api path", hostname: "kf.example.com", apiPath: "a/../b", wantErr: "KEYFACTOR_API_PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := baseURL(tt.hostname, tt.port, tt.apiPath)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("baseURL(%q) error = %v, want it to contain %q", tt.hostname, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("baseURL(%q): %v", tt.hostname, err)
			}
			if got != tt.want {
				t.Errorf("baseURL(%q) = %q, want %q", tt.hostname, got, tt.want)
			}
		})
	}
}

func TestBaseURLCredentialsNotEchoed(t *testing.T) {
	_, err := baseURL("https://bob:"+testPassword+"@kf.example.com", 0, "")
	if err == nil {
		t.Fatal("want an error for credentials in the hostname")
	}
	if strings.Contains(err.Error(), testPassword) {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestNewValidatesAuth(t *testing.T) {
	base := func(edit func(*Config)) Config {
		c := Config{Hostname: "kf.example.com"}
		edit(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "no credentials", cfg: base(func(c *Config) {}), wantErr: "KEYFACTOR_AUTH_ACCESS_TOKEN"},
		{name: "basic and token", cfg: base(func(c *Config) { c.Username, c.Password, c.AccessToken = "u", testPassword, testToken }), wantErr: "more than one authentication method"},
		{name: "basic and oauth", cfg: base(func(c *Config) { c.Username, c.Password, c.ClientID = "u", testPassword, "id" }), wantErr: "set exactly one"},
		{name: "user without password", cfg: base(func(c *Config) { c.Username = "u" }), wantErr: "KEYFACTOR_PASSWORD is not"},
		{name: "password without user", cfg: base(func(c *Config) { c.Password = testPassword }), wantErr: "KEYFACTOR_USERNAME is not"},
		{name: "domain disagrees", cfg: base(func(c *Config) { c.Username, c.Password, c.Domain = `CORP\u`, testPassword, "OTHER" }), wantErr: "KEYFACTOR_DOMAIN"},
		{name: "malformed username", cfg: base(func(c *Config) { c.Username, c.Password = `CORP\`, testPassword }), wantErr: "KEYFACTOR_USERNAME"},
		{name: "oauth missing secret and url", cfg: base(func(c *Config) { c.ClientID = "id" }), wantErr: "KEYFACTOR_AUTH_CLIENT_SECRET, KEYFACTOR_AUTH_TOKEN_URL not set"},
		{name: "oauth http token url", cfg: base(func(c *Config) {
			c.ClientID, c.ClientSecret, c.TokenURL = "id", testSecret, "http://idp.example.com/token"
		}), wantErr: "KEYFACTOR_AUTH_TOKEN_URL"},
		{name: "oauth relative token url", cfg: base(func(c *Config) { c.ClientID, c.ClientSecret, c.TokenURL = "id", testSecret, "/token" }), wantErr: "KEYFACTOR_AUTH_TOKEN_URL"},
		{name: "scopes without oauth", cfg: base(func(c *Config) { c.AccessToken, c.Scopes = testToken, []string{"openid"} }), wantErr: "KEYFACTOR_AUTH_SCOPES"},
		{name: "token with bearer prefix", cfg: base(func(c *Config) { c.AccessToken = "Bearer " + testToken }), wantErr: "KEYFACTOR_AUTH_ACCESS_TOKEN"},
		{name: "bad CA file", cfg: base(func(c *Config) { c.AccessToken, c.CACert = testToken, "/nonexistent/ca.pem" }), wantErr: "KEYFACTOR_CA_CERT"},
		{name: "CA file without PEM", cfg: base(func(c *Config) { c.AccessToken, c.CACert = testToken, "testdata/error_400.json" }), wantErr: "no PEM certificate"},
		{name: "negative timeout", cfg: base(func(c *Config) { c.AccessToken, c.Timeout = testToken, -time.Second }), wantErr: "KEYFACTOR_CLIENT_TIMEOUT"},
		{name: "empty scopes ignored", cfg: base(func(c *Config) { c.AccessToken, c.Scopes = testToken, []string{"", " "} })},
		{name: "domain ignored without basic", cfg: base(func(c *Config) { c.AccessToken, c.Domain = testToken, "CORP" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want it to contain %q", err, tt.wantErr)
			}
			for _, s := range []string{testPassword, testSecret, testToken} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

func TestBasicUser(t *testing.T) {
	tests := []struct {
		name, username, domain, want string
	}{
		{name: "plain user", username: "alice", want: "alice"},
		{name: "domain setting", username: "alice", domain: "CORP", want: `CORP\alice`},
		{name: "backslash form", username: `CORP\alice`, want: `CORP\alice`},
		{name: "upn form", username: "alice@corp.example.com", want: `corp.example.com\alice`},
		{name: "agreeing domain any case", username: `corp\alice`, domain: "CORP", want: `corp\alice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := basicUser(tt.username, tt.domain)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("basicUser(%q, %q) = %q, want %q", tt.username, tt.domain, got, tt.want)
			}
		})
	}
}

func TestIdentityAndString(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "basic", cfg: Config{Username: "alice@corp", Password: testPassword}, want: `corp\alice`},
		{name: "oauth", cfg: Config{ClientID: "runner", ClientSecret: testSecret, TokenURL: "https://idp.example.com/token"}, want: "oauth client runner"},
		{name: "bearer", cfg: Config{AccessToken: testToken}, want: "bearer token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Hostname = "kf.example.com"
			c, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Identity(); got != tt.want {
				t.Errorf("Identity() = %q, want %q", got, tt.want)
			}
			for _, s := range []string{c.String(), fmt.Sprintf("%v", c), fmt.Sprint(tt.cfg), fmt.Sprintf("%+v", tt.cfg), fmt.Sprintf("%#v", tt.cfg)} {
				for _, sec := range []string{testPassword, testSecret, testToken} {
					if strings.Contains(s, sec) {
						t.Errorf("%q leaks a secret", s)
					}
				}
			}
		})
	}
}

func TestHeadersAndBodies(t *testing.T) {
	type seen struct {
		method, path, query, ct string
		header                  http.Header
		body                    []byte
	}
	got := make(chan seen, 10)
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), r.Header.Clone(), b}
		switch r.URL.Path {
		case "/KeyfactorAPI/Enrollment/Renew":
			writeJSON(w, 200, string(fixture(t, "renew_issued.json")))
		case "/KeyfactorAPI/Enrollment/PFX/Deploy":
			writeJSON(w, 200, string(fixture(t, "deploy_response.json")))
		default:
			writeJSON(w, 200, `["GET /Status/Endpoints"]`)
		}
	}))
	c, _ := newTestClient(t, srv.URL, func(c *Config) { c.UserAgent = "runner-test/1" })
	ctx := context.Background()

	if _, err := c.StatusEndpoints(ctx); err != nil {
		t.Fatal(err)
	}
	get := <-got
	for k, want := range map[string]string{
		"X-Keyfactor-Requested-With": "APIClient",
		"X-Keyfactor-Api-Version":    "1",
		"Accept":                     "application/json",
		"User-Agent":                 "runner-test/1",
	} {
		if v := get.header.Get(k); v != want {
			t.Errorf("GET header %s = %q, want %q", k, v, want)
		}
	}
	if get.ct != "" || len(get.body) != 0 {
		t.Errorf("GET sent Content-Type %q and body %q, want neither", get.ct, get.body)
	}

	local := time.FixedZone("X", 3600)
	c.now = func() time.Time { return time.Date(2026, 11, 24, 3, 0, 0, 0, local) }
	if _, err := c.Renew(ctx, RenewalRequest{CertificateId: 1234}); err != nil {
		t.Fatal(err)
	}
	post := <-got
	if post.method != http.MethodPost || post.ct != "application/json" {
		t.Errorf("renew: method %s Content-Type %q", post.method, post.ct)
	}
	if want := `{"CertificateId":1234,"Timestamp":"2026-11-24T02:00:00.000Z"}`; string(post.body) != want {
		t.Errorf("renew body = %s, want %s (zero Timestamp set to now, in UTC)", post.body, want)
	}

	jt := time.Date(2026, 11, 25, 3, 0, 0, 0, local)
	if _, err := c.Deploy(ctx, DeployRequest{CertificateId: 2431, Password: "entry-pw", JobTime: &jt,
		Stores: []DeployStore{{StoreId: "f0cc1ede-7d1b-4a2c-9b7e-0e3f5d1a2b3c", Alias: "web", Overwrite: true, Properties: map[string]any{"a": "b"}}}}); err != nil {
		t.Fatal(err)
	}
	post = <-got
	want := `{"Stores":[{"StoreId":"f0cc1ede-7d1b-4a2c-9b7e-0e3f5d1a2b3c","Alias":"web","Overwrite":true,"Properties":{"a":"b"}}],"Password":"entry-pw","CertificateId":2431,"JobTime":"2026-11-25T02:00:00.000Z"}`
	if string(post.body) != want {
		t.Errorf("deploy body =\n%s\nwant\n%s", post.body, want)
	}
}

func TestEndpointRequests(t *testing.T) {
	tests := []struct {
		name      string
		call      func(c *Client) error
		wantPath  string
		wantQuery map[string]string
		answer    string
	}{
		{
			name:     "get certificate with locations",
			call:     func(c *Client) error { _, err := c.GetCertificate(context.Background(), 2429, true); return err },
			wantPath: "/KeyfactorAPI/Certificates/2429", wantQuery: map[string]string{"includeLocations": "true"},
			answer: minimalCert(2429),
		},
		{
			name:     "get certificate without locations",
			call:     func(c *Client) error { _, err := c.GetCertificate(context.Background(), 7, false); return err },
			wantPath: "/KeyfactorAPI/Certificates/7", wantQuery: map[string]string{},
			answer: minimalCert(7),
		},
		{
			name: "list certificates",
			call: func(c *Client) error {
				_, err := c.ListCertificates(context.Background(), CertificateQuery{QueryString: `Thumbprint -eq "AB"`, PageReturned: 2, ReturnLimit: 50,
					SortField: "NotAfter", SortAscending: 1, IncludeLocations: true, IncludeExpired: true})
				return err
			},
			wantPath: "/KeyfactorAPI/Certificates",
			wantQuery: map[string]string{"pq.queryString": `Thumbprint -eq "AB"`, "pq.pageReturned": "2", "pq.returnLimit": "50",
				"pq.sortField": "NotAfter", "pq.sortAscending": "1", "includeLocations": "true", "pq.includeExpired": "true"},
			answer: `[]`,
		},
		{
			name: "list stores",
			call: func(c *Client) error {
				_, err := c.ListCertificateStores(context.Background(), StoreQuery{QueryString: "ContainerId -eq 3", PageReturned: 1, ReturnLimit: 10})
				return err
			},
			wantPath: "/KeyfactorAPI/CertificateStores",
			wantQuery: map[string]string{"certificateStoreQuery.queryString": "ContainerId -eq 3", "certificateStoreQuery.pageReturned": "1",
				"certificateStoreQuery.returnLimit": "10"},
			answer: `[]`,
		},
		{
			name: "get store",
			call: func(c *Client) error {
				_, err := c.GetCertificateStore(context.Background(), "f0cc1ede-7d1b-4a2c-9b7e-0e3f5d1a2b3c")
				return err
			},
			wantPath: "/KeyfactorAPI/CertificateStores/f0cc1ede-7d1b-4a2c-9b7e-0e3f5d1a2b3c", wantQuery: map[string]string{},
			answer: `{"Id":"f0cc1ede-7d1b-4a2c-9b7e-0e3f5d1a2b3c"}`,
		},
		{
			name:     "permissions",
			call:     func(c *Client) error { _, err := c.Permissions(context.Background()); return err },
			wantPath: "/KeyfactorAPI/Security/My/Permissions", wantQuery: map[string]string{},
			answer: `{"Permissions":[]}`,
		},
		{
			name: "store types",
			call: func(c *Client) error {
				_, _, err := c.CertificateStoreTypes(context.Background())
				return err
			},
			wantPath:  "/KeyfactorAPI/CertificateStoreTypes",
			wantQuery: map[string]string{"cstquery.pageReturned": "1", "cstquery.returnLimit": "100"},
			answer:    `[]`,
		},
		{
			name: "certificate request",
			call: func(c *Client) error {
				_, err := c.CertificateRequest(context.Background(), 247)
				return err
			},
			wantPath: "/KeyfactorAPI/Workflow/Certificates/247", wantQuery: map[string]string{},
			answer: `{"Id":247,"State":1,"StateString":"Pending"}`,
		},
		{
			name: "job history",
			call: func(c *Client) error {
				_, _, err := c.JobHistory(context.Background(), JobHistoryQuery{QueryString: `JobId -eq "aac43f8f-93e0-41c1-b05f-6b8301ca72af"`,
					SortField: "JobHistoryId", SortAscending: 1})
				return err
			},
			wantPath: "/KeyfactorAPI/OrchestratorJobs/JobHistory",
			wantQuery: map[string]string{"pq.queryString": `JobId -eq "aac43f8f-93e0-41c1-b05f-6b8301ca72af"`, "pq.pageReturned": "1",
				"pq.returnLimit": "100", "pq.sortField": "JobHistoryId", "pq.sortAscending": "1"},
			answer: `[]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotPath string
			var gotQuery map[string]string
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotPath = r.URL.Path
				gotQuery = map[string]string{}
				for k, v := range r.URL.Query() {
					gotQuery[k] = strings.Join(v, ",")
				}
				writeJSON(w, 200, tt.answer)
			}))
			c, _ := newTestClient(t, srv.URL, nil)
			if err := tt.call(c); err != nil {
				t.Fatal(err)
			}
			if gotPath != tt.wantPath {
				t.Errorf("path = %q, want %q", gotPath, tt.wantPath)
			}
			if !reflect.DeepEqual(gotQuery, tt.wantQuery) {
				t.Errorf("query = %v, want %v", gotQuery, tt.wantQuery)
			}
		})
	}
}

func TestAllCertificateStoresPages(t *testing.T) {
	page := func(n, from int) string {
		var items []string
		for i := range n {
			items = append(items, fmt.Sprintf(`{"Id":"store-%d","Properties":"{}"}`, from+i))
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	tests := []struct {
		name    string
		sizes   []int // page sizes the server hands out
		repeat  bool  // the server ignores pageReturned
		want    int
		wantErr string
	}{
		{name: "short last page", sizes: []int{100, 100, 37}, want: 237},
		{name: "empty last page", sizes: []int{100, 0}, want: 100},
		{name: "single empty page", sizes: []int{0}, want: 0},
		{name: "server ignores paging", sizes: []int{100, 100, 100}, repeat: true, wantErr: "seems to ignore pageReturned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n := counted(func(w http.ResponseWriter, r *http.Request) {
				q := r.URL.Query()
				if q.Get("certificateStoreQuery.returnLimit") != "100" || q.Get("certificateStoreQuery.queryString") != "ContainerId -eq 3" {
					t.Errorf("query = %v", q)
				}
				var p int
				fmt.Sscan(q.Get("certificateStoreQuery.pageReturned"), &p)
				if p < 1 || p > len(tt.sizes) {
					writeJSON(w, 200, "[]")
					return
				}
				from := (p - 1) * 100
				if tt.repeat {
					from = 0
				}
				writeJSON(w, 200, page(tt.sizes[p-1], from))
			})
			srv := serve(t, h)
			c, _ := newTestClient(t, srv.URL, nil)
			got, odd, err := c.AllCertificateStores(context.Background(), "ContainerId -eq 3")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want || int(n.Load()) != len(tt.sizes) || len(odd) != 0 {
				t.Errorf("got %d stores in %d requests, want %d in %d", len(got), n.Load(), tt.want, len(tt.sizes))
			}
		})
	}
}

func TestRequestValidation(t *testing.T) {
	h, n := counted(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, "{}") })
	srv := serve(t, h)
	c, _ := newTestClient(t, srv.URL, nil)
	ctx := context.Background()
	store := []DeployStore{{StoreId: "s1"}}
	tests := []struct {
		name string
		call func() error
	}{
		{name: "renew without certificate", call: func() error { _, err := c.Renew(ctx, RenewalRequest{}); return err }},
		{name: "renew with id and thumbprint", call: func() error { _, err := c.Renew(ctx, RenewalRequest{CertificateId: 1, Thumbprint: "AB"}); return err }},
		{name: "deploy without certificate", call: func() error { _, err := c.Deploy(ctx, DeployRequest{Stores: store}); return err }},
		{name: "deploy without stores", call: func() error { _, err := c.Deploy(ctx, DeployRequest{CertificateId: 1}); return err }},
		{name: "deploy with both shapes", call: func() error {
			_, err := c.Deploy(ctx, DeployRequest{CertificateId: 1, Stores: store, StoreIds: []string{"s1"}})
			return err
		}},
		{name: "get store without id", call: func() error { _, err := c.GetCertificateStore(ctx, ""); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("want an error")
			}
			if Classify(err) != Permanent {
				t.Errorf("Classify(%v) = %v, want permanent", err, Classify(err))
			}
		})
	}
	if n.Load() != 0 {
		t.Errorf("invalid requests reached the server %d times", n.Load())
	}
}

func TestLegacyDeployRequest(t *testing.T) {
	types := map[string]int{"A1": 5, "a2": 5, "b1": 154}
	jt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		in      DeployRequest
		want    DeployRequest
		wantErr string
	}{
		{
			name: "groups by store type",
			in: DeployRequest{CertificateId: 9, RequestId: 3, Password: "pw", JobTime: &jt, Stores: []DeployStore{
				{StoreId: "a1", Alias: "web", Overwrite: true},
				{StoreId: "b1", Alias: "k8s", Properties: map[string]any{"KubeSecretType": "tls_secret"}},
				{StoreId: "a2", Alias: "web", Overwrite: true, Properties: map[string]any{}},
			}},
			want: DeployRequest{CertificateId: 9, RequestId: 3, Password: "pw", JobTime: &jt,
				StoreIds: []string{"a1", "b1", "a2"},
				StoreTypes: []LegacyStoreType{
					{StoreTypeId: 5, Alias: "web", Overwrite: true},
					{StoreTypeId: 154, Alias: "k8s", Properties: []map[string]any{{"KubeSecretType": "tls_secret"}}},
				}},
		},
		{
			name: "already legacy",
			in:   DeployRequest{CertificateId: 1, StoreIds: []string{"a1"}, StoreTypes: []LegacyStoreType{{StoreTypeId: 5}}},
			want: DeployRequest{CertificateId: 1, StoreIds: []string{"a1"}, StoreTypes: []LegacyStoreType{{StoreTypeId: 5}}},
		},
		{name: "alias disagrees", in: DeployRequest{Stores: []DeployStore{{StoreId: "a1", Alias: "x"}, {StoreId: "a2", Alias: "y"}}}, wantErr: "disagree on alias"},
		{name: "overwrite disagrees", in: DeployRequest{Stores: []DeployStore{{StoreId: "a1"}, {StoreId: "a2", Overwrite: true}}}, wantErr: "disagree on overwrite"},
		{name: "properties disagree", in: DeployRequest{Stores: []DeployStore{{StoreId: "a1", Properties: map[string]any{"k": "1"}}, {StoreId: "a2"}}}, wantErr: "disagree on properties"},
		{name: "unknown store type", in: DeployRequest{Stores: []DeployStore{{StoreId: "zz"}}}, wantErr: "store zz: store type unknown"},
		{name: "no stores", in: DeployRequest{CertificateId: 1}, wantErr: "no stores"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LegacyDeployRequest(tt.in, types)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestBasicAuthHeader(t *testing.T) {
	tests := []struct {
		name     string
		username string
		domain   string
		want     string
	}{
		{name: "domain setting", username: "alice", domain: "KEYFACTOR", want: `KEYFACTOR\alice`},
		{name: "domain in username", username: `KEYFACTOR\alice`, want: `KEYFACTOR\alice`},
		{name: "upn", username: "alice@keyfactor", want: `keyfactor\alice`},
		{name: "no domain", username: "alice", want: "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r.Header.Get("Authorization")
				writeJSON(w, 200, "[]")
			}))
			c, _ := newTestClient(t, srv.URL, func(c *Config) { c.Username, c.Domain = tt.username, tt.domain })
			if _, err := c.StatusEndpoints(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte(tt.want+":"+testPassword))
			if got != want {
				t.Errorf("Authorization = %q, want %q", got, want)
			}
		})
	}
}

func TestOAuthClientCredentials(t *testing.T) {
	var tokens atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		tokens.Add(1)
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("audience") != "kf-api" || r.PostForm.Get("scope") != "openid kf" {
			t.Errorf("token form = %v", r.PostForm)
		}
		if id != "runner" || secret != testSecret {
			writeJSON(w, 401, `{"error":"invalid_client","error_description":"Invalid client credentials"}`)
			return
		}
		writeJSON(w, 200, `{"access_token":"tok-1","token_type":"Bearer","expires_in":300}`)
	})
	mux.HandleFunc("/KeyfactorAPI/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-1" {
			writeJSON(w, 401, "")
			return
		}
		writeJSON(w, 200, "[]")
	})
	srv := serve(t, mux)
	tests := []struct {
		name   string
		secret string
		wantOK bool
	}{
		{name: "good secret", secret: testSecret, wantOK: true},
		{name: "bad secret", secret: "wrong-secret-123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokens.Store(0)
			c, _ := newTestClient(t, srv.URL, func(c *Config) {
				c.Username, c.Password, c.Domain = "", "", ""
				c.ClientID, c.ClientSecret, c.TokenURL = "runner", tt.secret, srv.URL+"/token"
				c.Scopes, c.Audience = []string{"openid", "kf"}, "kf-api"
			})
			_, err := c.StatusEndpoints(context.Background())
			if tt.wantOK {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.StatusEndpoints(context.Background()); err != nil {
					t.Fatal(err)
				}
				if tokens.Load() != 1 {
					t.Errorf("token endpoint called %d times for two requests, want 1 (cached)", tokens.Load())
				}
				return
			}
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != 401 || ae.Code != "invalid_client" {
				t.Fatalf("error = %v, want a 401 invalid_client APIError", err)
			}
			if Classify(err) != Permanent {
				t.Errorf("Classify = %v, want permanent", Classify(err))
			}
			if strings.Contains(err.Error(), tt.secret) {
				t.Errorf("error leaks the client secret: %v", err)
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	var got string
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
		writeJSON(w, 200, "[]")
	}))
	c, _ := newTestClient(t, srv.URL, func(c *Config) {
		c.Username, c.Password, c.Domain, c.AccessToken = "", "", "", testToken
	})
	if _, err := c.StatusEndpoints(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got != "Bearer "+testToken {
		t.Errorf("Authorization = %q", got)
	}
}

func TestLogsHaveNoSecrets(t *testing.T) {
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 400, `{"ErrorCode":"0x1","Message":"bad password `+testPassword+` and entry-pw-777"}`)
	}))
	var logs bytes.Buffer
	c, _ := newTestClient(t, srv.URL, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	_, err := c.Deploy(context.Background(), DeployRequest{CertificateId: 1, Password: "entry-pw-777", Stores: []DeployStore{{StoreId: "s"}}})
	if err == nil {
		t.Fatal("want an error")
	}
	if !strings.Contains(logs.String(), `"endpoint":"/Enrollment/PFX/Deploy"`) || !strings.Contains(logs.String(), `"status":400`) {
		t.Errorf("debug log lacks endpoint and status: %s", logs.String())
	}
	basic := base64.StdEncoding.EncodeToString([]byte(testDomain + `\` + testUser + ":" + testPassword))
	for _, s := range []string{testPassword, basic, "entry-pw-777"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log leaks %q: %s", s, logs.String())
		}
		if strings.Contains(err.Error(), s) {
			t.Errorf("error leaks %q: %v", s, err)
		}
	}
}

func TestLimiterIsWaitedOn(t *testing.T) {
	h, n := counted(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, "[]") })
	srv := serve(t, h)
	// A burst of 0 refuses every Wait at once, so a client that waits on
	// the limiter cannot reach the server.
	c, _ := newTestClient(t, srv.URL, func(c *Config) { c.Limiter = rate.NewLimiter(1, 0) })
	_, err := c.StatusEndpoints(context.Background())
	var te *TransportError
	if !errors.As(err, &te) || te.Sent {
		t.Fatalf("error = %v, want an unsent TransportError", err)
	}
	if n.Load() != 0 {
		t.Errorf("server saw %d requests, want 0", n.Load())
	}
}

// An answer is read up to maxBody and no further: a larger one is an
// APIError that says so, not a decode of what was read.
func TestBodyLargerThanMaxBody(t *testing.T) {
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		chunk := bytes.Repeat([]byte(" "), 1<<20)
		for range maxBody>>20 + 1 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	c, _ := newTestClient(t, srv.URL, func(c *Config) { c.GetRetries = -1 })
	_, err := c.StatusEndpoints(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 200 || ae.Message != "response body larger than 32 MiB" || Classify(err) != Unknown {
		t.Errorf("error = %v (class %v), want an APIError for a body larger than 32 MiB", err, Classify(err))
	}
}

// minimalCert is a certificate record with only the fields a decode
// requires.
func minimalCert(id int) string {
	return fmt.Sprintf(`{"Id":%d,"NotBefore":"2026-03-19T21:16:35Z","NotAfter":"2027-03-19T21:16:34Z"}`, id)
}
