package keyfactor

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestParseTime(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "2026-03-19T21:26:35.967Z", want: utc(2026, 3, 19, 21, 26, 35, 967e6)},
		{in: "2026-03-19T21:26:35Z", want: utc(2026, 3, 19, 21, 26, 35, 0)},
		{in: "2026-03-19T21:26:35", want: utc(2026, 3, 19, 21, 26, 35, 0)},
		{in: "2026-03-19T21:26:35.1234567", want: utc(2026, 3, 19, 21, 26, 35, 123456700)},
		{in: "2026-03-19T21:26:35.1234567Z", want: utc(2026, 3, 19, 21, 26, 35, 123456700)},
		{in: "2026-03-19T23:26:35+02:00", want: utc(2026, 3, 19, 21, 26, 35, 0)},
		{in: "2026-03-19T23:26:35.5+02:00", want: utc(2026, 3, 19, 21, 26, 35, 5e8)},
		{in: "2026-03-19 21:26:35", want: utc(2026, 3, 19, 21, 26, 35, 0)},
		{in: "2026-03-19t21:26:35z", want: utc(2026, 3, 19, 21, 26, 35, 0)},
		{in: " 2026-03-19T21:26:35Z ", want: utc(2026, 3, 19, 21, 26, 35, 0)},
		{in: "19/03/2026", wantErr: true},
		{in: "2026-03-19", wantErr: true},
		{in: "2026-13-19T21:26:35Z", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTime(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseTime(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Errorf("ParseTime(%q) = %v, %v; want %v in UTC", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFieldReaders(t *testing.T) {
	tests := []struct {
		name    string
		read    func(json.RawMessage) (any, error)
		in      string
		want    any
		wantErr string
	}{
		{name: "id number", read: idReader, in: `2429`, want: 2429},
		{name: "id null", read: idReader, in: `null`, want: 0},
		{name: "id absent", read: idReader, in: ``, want: 0},
		{name: "id as string", read: idReader, in: `"2429"`, wantErr: "expected an integer id, got a string"},
		{name: "id fraction", read: idReader, in: `12.5`, wantErr: "non-negative 32-bit integer"},
		{name: "id negative", read: idReader, in: `-1`, wantErr: "non-negative"},
		{name: "id too large", read: idReader, in: `4294967296`, wantErr: "32-bit"},
		{name: "id object", read: idReader, in: `{}`, wantErr: "got an object"},
		{name: "int number", read: intReader, in: `5`, want: int64(5)},
		{name: "int string", read: intReader, in: `" 5 "`, want: int64(5)},
		{name: "int empty string", read: intReader, in: `""`, want: int64(0)},
		{name: "int float with zero fraction", read: intReader, in: `5.0`, want: int64(5)},
		{name: "int fraction", read: intReader, in: `5.5`, wantErr: "expected an integer"},
		{name: "int word", read: intReader, in: `"Active"`, wantErr: "expected an integer"},
		{name: "string", read: stringReader, in: `"CN=a"`, want: "CN=a"},
		{name: "string with escapes", read: stringReader, in: `"a\"b\\c\u00e9"`, want: `a"b\cé`},
		{name: "string with unicode", read: stringReader, in: `"café"`, want: "café"},
		{name: "string with invalid UTF-8", read: stringReader, in: "\"caf\xe9\"", want: "caf\ufffd"},
		{name: "string from number", read: stringReader, in: `42`, want: "42"},
		{name: "string null", read: stringReader, in: `null`, want: ""},
		{name: "string from array", read: stringReader, in: `["a"]`, wantErr: "got an array"},
		{name: "bool", read: boolReader, in: `true`, want: true},
		{name: "bool string", read: boolReader, in: `"False"`, want: false},
		{name: "bool one", read: boolReader, in: `1`, want: true},
		{name: "bool word", read: boolReader, in: `"yes"`, wantErr: "expected true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.read(json.RawMessage(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "F: ") {
					t.Fatalf("error = %v, want one naming field F and containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %#v, %v; want %#v", got, err, tt.want)
			}
		})
	}
}

func idReader(r json.RawMessage) (any, error)     { return strictID(r, "F") }
func intReader(r json.RawMessage) (any, error)    { return lenientInt(r, "F") }
func stringReader(r json.RawMessage) (any, error) { return lenientString(r, "F") }
func boolReader(r json.RawMessage) (any, error)   { return lenientBool(r, "F") }

func TestCertificateDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{name: "not an object", in: `[1]`, want: []string{"expected a JSON object, got an array"}},
		{name: "required fields missing", in: `{"Thumbprint":"AB"}`, want: []string{"Id: missing", "NotBefore: missing", "NotAfter: missing"}},
		{name: "every bad field named", in: `{"Id":1,"Thumbprint":"zz","NotBefore":"x","NotAfter":"2027-01-01T00:00:00Z","Locations":{}}`,
			want: []string{"Thumbprint: expected hex digits", "NotBefore: expected an ISO 8601 date", "Locations: expected an array"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Certificate
			err := json.Unmarshal([]byte(tt.in), &c)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  string
	}{
		{in: "CN=web01.example.com, O=Example", want: `"CN=web01.example.com, O=Example"`},
		{in: `KEYEXAMPLE\key_service`, want: `"KEYEXAMPLE\key_service"`},
		{in: "", want: `""`},
		{in: "café ünïcode", want: `"café ünïcode"`},
		{in: `CN="Smith, John"`, wantErr: "double quote"},
		{in: "line\nbreak", wantErr: "control character"},
		{in: "tab\there", wantErr: "control character"},
		{in: `ends in \`, wantErr: "ends in a backslash"},
		{in: `CN=a\\b`, wantErr: "two backslashes"},
		{in: `CN=Smith\, John`, want: `"CN=Smith\, John"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Quote(tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrUnquotable) || !strings.Contains(err.Error(), tt.wantErr) || got != "" {
					t.Fatalf("Quote(%q) = %q, %v; want an ErrUnquotable error about %s", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Quote(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestQueryBuilders(t *testing.T) {
	dn, _ := Quote("CN=web01")
	tests := []struct {
		name, got, want string
	}{
		{"time in UTC to the second", QueryTime(time.Date(2026, 11, 24, 3, 4, 5, 999e6, time.FixedZone("CET", 3600))), `"2026-11-24T02:04:05Z"`},
		{"clause", Clause("IssuedDN", "-eq", dn), `IssuedDN -eq "CN=web01"`},
		{"and", And(Clause("IssuedDN", "-eq", dn), Clause("ImportDate", "-ge", QueryTime(utc(2026, 1, 1, 0, 0, 0, 0)))),
			`IssuedDN -eq "CN=web01" AND ImportDate -ge "2026-01-01T00:00:00Z"`},
		{"and wraps an or", And("A -eq 1", Or("B -eq 2", "B -eq 3")), `A -eq 1 AND (B -eq 2 OR B -eq 3)`},
		{"and keeps one group", And("(B -eq 2 OR B -eq 3)", "A -eq 1"), `(B -eq 2 OR B -eq 3) AND A -eq 1`},
		{"and wraps two groups joined by or", And("(A -eq 1) OR (B -eq 2)", "C -eq 3"), `((A -eq 1) OR (B -eq 2)) AND C -eq 3`},
		{"parenthesis inside quotes", And(`(N -eq ")") OR N -eq 2`, "C -eq 3"), `((N -eq ")") OR N -eq 2) AND C -eq 3`},
		{"an operator's lower-case or is wrapped too", And("A -eq 1 or A -eq 2", "C -eq 3"), `(A -eq 1 or A -eq 2) AND C -eq 3`},
		{"empty clauses dropped", And("", "A -eq 1", ""), `A -eq 1`},
		{"or", Or("Id -eq 1", "Id -eq 2"), `Id -eq 1 OR Id -eq 2`},
		{"id query", idQuery([]int{7, 8, 9}), `Id -eq 7 OR Id -eq 8 OR Id -eq 9`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, tt.got, tt.want)
		}
	}
}

func TestPermissionsHas(t *testing.T) {
	four, five := 4, 5
	tests := []struct {
		name      string
		p         Permissions
		perm      string
		container *int
		want      bool
	}{
		{name: "unknown grants everything", p: Permissions{}, perm: PermStoresSchedule, want: true},
		{name: "exact", p: newPermissions(SourceMyPermissions, []string{PermEnrollPFX}, false), perm: PermEnrollPFX, want: true},
		{name: "missing", p: newPermissions(SourceMyPermissions, []string{PermEnrollPFX}, false), perm: PermStoresSchedule, want: false},
		{name: "root grants all", p: newPermissions(SourceMyPermissions, []string{"/"}, false), perm: PermStoresSchedule, container: &four, want: true},
		{name: "parent grants child", p: newPermissions(SourceMyPermissions, []string{"/certificates/enrollment/"}, false), perm: PermEnrollPFX, want: true},
		{name: "sibling does not", p: newPermissions(SourceMyPermissions, []string{"/certificates/enrollment/csr/"}, false), perm: PermEnrollPFX, want: false},
		{name: "prefix of a word does not", p: newPermissions(SourceMyPermissions, []string{"/certificates/enroll/"}, false), perm: PermEnrollPFX, want: false},
		{name: "global grants container", p: newPermissions(SourceMyPermissions, []string{PermStoresSchedule}, false), perm: PermStoresSchedule, container: &four, want: true},
		{name: "container grants itself", p: newPermissions(SourceMyPermissions, []string{"/certificate_stores/schedule/4/"}, false), perm: PermStoresSchedule, container: &four, want: true},
		{name: "container does not grant another", p: newPermissions(SourceMyPermissions, []string{"/certificate_stores/schedule/4/"}, false), perm: PermStoresSchedule, container: &five, want: false},
		{name: "container does not grant global", p: newPermissions(SourceMyPermissions, []string{"/certificate_stores/schedule/4/"}, false), perm: PermStoresSchedule, want: false},
		{name: "case and slashes ignored", p: newPermissions(SourceMyPermissions, []string{" Certificate_Stores//Schedule "}, false), perm: "certificate_stores/schedule", want: true},
		{name: "global-only list leaves scopes to Command", p: newPermissions(SourceMy, []string{PermEnrollPFX}, true), perm: PermStoresSchedule, container: &four, want: true},
		{name: "global-only list is exact globally", p: newPermissions(SourceMy, []string{PermEnrollPFX}, true), perm: PermStoresSchedule, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Has(tt.perm, tt.container); got != tt.want {
				t.Errorf("Has(%s, %v) on %v = %v, want %v", tt.perm, deref(tt.container), tt.p.List, got, tt.want)
			}
		})
	}
	p := newPermissions(SourceMyPermissions, []string{"/b/", "/a/", "b", ""}, false)
	if strings.Join(p.List, ",") != "/a/,/b/" {
		t.Errorf("list %v, want sorted, normalised, without duplicates", p.List)
	}
}

func TestPermissionsFallback(t *testing.T) {
	tests := []struct {
		name       string
		mine, my   int // statuses of /Security/My/Permissions and /Security/My
		wantKnown  bool
		wantSource string
		wantErr    int // status of the returned APIError; 0 for none
		wantCalls  int
	}{
		{name: "current endpoint", mine: 200, my: 500, wantKnown: true, wantSource: SourceMyPermissions, wantCalls: 1},
		{name: "404 falls back to v11.3", mine: 404, my: 200, wantKnown: true, wantSource: SourceMy, wantCalls: 2},
		{name: "405 falls back", mine: 405, my: 200, wantKnown: true, wantSource: SourceMy, wantCalls: 2},
		{name: "400 falls back", mine: 400, my: 200, wantKnown: true, wantSource: SourceMy, wantCalls: 2},
		{name: "403 on both is unknown", mine: 403, my: 403, wantCalls: 2},
		{name: "404 on both is unknown", mine: 404, my: 404, wantCalls: 2},
		{name: "401 is an error", mine: 401, wantErr: 401, wantCalls: 1},
		{name: "500 is an error", mine: 500, wantErr: 500, wantCalls: 1},
		{name: "500 on the fallback is an error", mine: 404, my: 500, wantErr: 500, wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				switch r.URL.Path {
				case "/KeyfactorAPI/Security/My/Permissions":
					if tt.mine == 200 {
						writeJSON(w, 200, string(fixture(t, "permissions_container.json")))
						return
					}
					writeJSON(w, tt.mine, `{"Message":"no"}`)
				case "/KeyfactorAPI/Security/My":
					if tt.my == 200 {
						writeJSON(w, 200, string(fixture(t, "security_my_v11.json")))
						return
					}
					writeJSON(w, tt.my, `{"Message":"no"}`)
				default:
					t.Errorf("unexpected request %s", r.URL.Path)
				}
			}))
			c, _ := newTestClient(t, srv.URL, func(c *Config) { c.GetRetries = -1 })
			p, err := c.Permissions(context.Background())
			if int(calls.Load()) != tt.wantCalls {
				t.Errorf("%d requests, want %d", calls.Load(), tt.wantCalls)
			}
			if tt.wantErr != 0 {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status != tt.wantErr {
					t.Fatalf("error = %v, want HTTP %d", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Known != tt.wantKnown || p.Source != tt.wantSource {
				t.Errorf("permissions %+v", p)
			}
			if !p.Known && (!strings.Contains(p.Why, "GET /Security/My/Permissions: HTTP") || !strings.Contains(p.Why, "GET /Security/My: HTTP")) {
				t.Errorf("Why = %q, want both answers", p.Why)
			}
		})
	}
	t.Run("transport failure is an error", func(t *testing.T) {
		c, _ := newTestClient(t, refusedAddr(t), func(c *Config) { c.GetRetries = -1 })
		if _, err := c.Permissions(context.Background()); CauseOf(err) != CauseUnreachable {
			t.Errorf("error = %v, want an unreachable cause", err)
		}
	})
}

func TestCollectionID(t *testing.T) {
	tests := []struct {
		name     string
		call     func(c *Client) error
		wantSent bool
	}{
		{name: "get certificate", call: func(c *Client) error { _, err := c.GetCertificate(context.Background(), 7, false); return err }, wantSent: true},
		{name: "list certificates", call: func(c *Client) error {
			_, err := c.ListCertificates(context.Background(), CertificateQuery{})
			return err
		}, wantSent: true},
		{name: "certificates by id", call: func(c *Client) error {
			_, _, err := c.CertificatesByID(context.Background(), []int{7}, false)
			return err
		}, wantSent: true},
		{name: "renew", call: func(c *Client) error {
			_, err := c.Renew(context.Background(), RenewalRequest{CertificateId: 7})
			return err
		}, wantSent: true},
		{name: "deploy", call: func(c *Client) error {
			_, err := c.Deploy(context.Background(), DeployRequest{CertificateId: 7, Stores: []DeployStore{{StoreId: "s"}}})
			return err
		}},
		{name: "stores", call: func(c *Client) error {
			_, err := c.ListCertificateStores(context.Background(), StoreQuery{})
			return err
		}},
	}
	for _, tt := range tests {
		for _, collection := range []int{0, 12} {
			t.Run(tt.name+"/"+itoa(collection), func(t *testing.T) {
				var got []string
				srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					got = append(got, r.URL.Query()["collectionId"]...)
					switch {
					case r.URL.Path == "/KeyfactorAPI/Certificates/7":
						writeJSON(w, 200, minimalCert(7))
					case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Deploy"):
						writeJSON(w, 200, `{"SuccessfulStores":["s"]}`)
					case r.Method == http.MethodPost:
						writeJSON(w, 200, string(fixture(t, "renew_issued.json")))
					default:
						writeJSON(w, 200, "[]")
					}
				}))
				c, _ := newTestClient(t, srv.URL, func(c *Config) { c.CollectionID = collection })
				if err := tt.call(c); err != nil {
					t.Fatal(err)
				}
				want := 0
				if tt.wantSent && collection != 0 {
					want = 1
				}
				if len(got) != want || (want == 1 && got[0] != "12") {
					t.Errorf("collectionId = %v, want it %d times", got, want)
				}
			})
		}
	}
	if _, err := New(Config{Hostname: "kf.example.com", AccessToken: testToken, CollectionID: -1}); err == nil {
		t.Error("a negative collection id was accepted")
	}
}

func TestWireTimestamps(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"renew timestamp in UTC with milliseconds", RenewalRequest{CertificateId: 1, Timestamp: time.Date(2026, 11, 24, 3, 4, 5, 678901234, time.FixedZone("CET", 3600))},
			`{"CertificateId":1,"Timestamp":"2026-11-24T02:04:05.678Z"}`},
		{"renew timestamp on the second", RenewalRequest{Thumbprint: "AB", Timestamp: utc(2021, 5, 19, 16, 23, 1, 0)},
			`{"Thumbprint":"AB","Timestamp":"2021-05-19T16:23:01.000Z"}`},
		{"deploy job time", DeployRequest{CertificateId: 2, JobTime: ptr(utc(2023, 11, 19, 16, 23, 1, 0))},
			`{"Password":"","CertificateId":2,"JobTime":"2023-11-19T16:23:01.000Z"}`},
		{"deploy without job time", DeployRequest{RequestId: 3}, `{"Password":"","RequestId":3}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			if err != nil || string(b) != tt.want {
				t.Errorf("got %s, %v\nwant %s", b, err, tt.want)
			}
		})
	}
}

// strictDeployHandler checks a Deploy body against the OpenAPI schema of
// EnrollmentManagementRequest as a validating gateway would: Password is
// listed under "required" with type string, so it must be present and a
// string; CertificateId or RequestId must be set.
func strictDeployHandler(t *testing.T, seen *[]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]json.RawMessage
		if err := json.Unmarshal(b, &body); err != nil {
			writeJSON(w, 400, `{"Message":"body is not JSON"}`)
			return
		}
		pw, ok := body["Password"]
		var s string
		if !ok || json.Unmarshal(pw, &s) != nil || string(pw) == "null" {
			writeJSON(w, 400, `{"Message":"The Password field is required."}`)
			return
		}
		*seen = append(*seen, s)
		writeJSON(w, 200, `{"SuccessfulStores":["f0cc1ede-7d1b-4a2c-9b7e-0e3f5d1a2b3c"],"FailedStores":[]}`)
	}
}

func TestDeployPasswordMeetsTheSchema(t *testing.T) {
	tests := []struct {
		name     string
		password string
	}{
		{name: "store without entry password", password: ""},
		{name: "PEM store with entry password", password: "entry-pw-123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []string
			c, _ := newTestClient(t, serve(t, strictDeployHandler(t, &seen)).URL, nil)
			_, err := c.Deploy(context.Background(), DeployRequest{CertificateId: 2431, Password: tt.password,
				Stores: []DeployStore{{StoreId: "f0cc1ede-7d1b-4a2c-9b7e-0e3f5d1a2b3c"}}})
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) != 1 || seen[0] != tt.password {
				t.Errorf("server saw passwords %q, want [%q]", seen, tt.password)
			}
		})
	}
	// The handler is strict: the shapes the client does not send fail it.
	for _, body := range []string{`{"CertificateId":1}`, `{"CertificateId":1,"Password":null}`} {
		var seen []string
		rec := httptest.NewRecorder()
		strictDeployHandler(t, &seen)(rec, httptest.NewRequest("POST", "/", strings.NewReader(body)))
		if rec.Code != 400 || len(seen) != 0 {
			t.Errorf("strict handler accepted %s", body)
		}
	}
}

// tokenServer is an OAuth token endpoint plus an API that accepts only the
// tokens it has not revoked.
type tokenServer struct {
	mu      sync.Mutex
	issued  int
	revoked map[string]bool
	refuse  bool // refuse every token, new ones too
	apiHits int
	seen    []string // Authorization of each API request
	renew   string   // the answer to a POST
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path == "/token" {
		s.issued++
		writeJSON(w, 200, `{"access_token":"tok-`+itoa(s.issued)+`","token_type":"Bearer","expires_in":3600}`)
		return
	}
	s.apiHits++
	auth := r.Header.Get("Authorization")
	s.seen = append(s.seen, auth)
	if s.refuse || s.revoked[strings.TrimPrefix(auth, "Bearer ")] {
		writeJSON(w, 401, "")
		return
	}
	if r.Method == http.MethodPost {
		writeJSON(w, 200, s.renew)
		return
	}
	writeJSON(w, 200, "[]")
}

func (s *tokenServer) revoke(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[tok] = true
}

func TestOAuthTokenRefusedMidRun(t *testing.T) {
	ts := &tokenServer{revoked: map[string]bool{}, renew: string(fixture(t, "renew_issued.json"))}
	srv := serve(t, ts)
	c, _ := newTestClient(t, srv.URL, func(c *Config) {
		c.Username, c.Password, c.Domain = "", "", ""
		c.ClientID, c.ClientSecret, c.TokenURL = "runner", testSecret, srv.URL+"/token"
	})
	ctx := context.Background()
	if _, err := c.StatusEndpoints(ctx); err != nil {
		t.Fatal(err)
	}
	// Command stops accepting the first token before its expiry; the next
	// call is a POST, and it is repeated once with a new token.
	ts.revoke("tok-1")
	r, err := c.Renew(ctx, RenewalRequest{CertificateId: 2429})
	if err != nil || r.KeyfactorId != 2431 {
		t.Fatalf("renew after the token was refused: %+v, %v", r, err)
	}
	want := []string{"Bearer tok-1", "Bearer tok-1", "Bearer tok-2"}
	if ts.issued != 2 || strings.Join(ts.seen, ",") != strings.Join(want, ",") {
		t.Errorf("%d tokens issued, API saw %v; want 2 and %v", ts.issued, ts.seen, want)
	}
	// The new token is kept.
	if _, err := c.StatusEndpoints(ctx); err != nil || ts.issued != 2 {
		t.Errorf("after refresh: %v, %d tokens issued", err, ts.issued)
	}

	t.Run("a refused new token is not tried again", func(t *testing.T) {
		ts.mu.Lock()
		ts.refuse, ts.apiHits = true, 0
		ts.mu.Unlock()
		_, err := c.Renew(ctx, RenewalRequest{CertificateId: 2429})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 401 || CauseOf(err) != CauseUnauthorized || ts.apiHits != 2 {
			t.Errorf("error %v after %d requests, want a 401 after 2", err, ts.apiHits)
		}
	})
}

// drop forgets only the token a refused request carried: when another
// request has already replaced it, the new token is kept for the retry.
func TestOAuthDropKeepsANewerToken(t *testing.T) {
	a := &oauthAuth{tok: &oauth2.Token{AccessToken: "tok-2"}}
	if !a.drop("tok-1") || a.tok == nil || a.tok.AccessToken != "tok-2" {
		t.Errorf("drop of a replaced token: current %+v, want tok-2 kept", a.tok)
	}
	if !a.drop("tok-2") || a.tok != nil {
		t.Errorf("drop of the current token: current %+v, want none", a.tok)
	}
	if a.drop("") {
		t.Error("drop of a request that carried no token asks for a new one")
	}
}

func TestBasicAuth401IsNotRepeated(t *testing.T) {
	h, n := counted(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 401, "") })
	c, _ := newTestClient(t, serve(t, h).URL, nil)
	if _, err := c.Renew(context.Background(), RenewalRequest{CertificateId: 1}); CauseOf(err) != CauseUnauthorized || n.Load() != 1 {
		t.Errorf("error %v after %d requests, want one 401", err, n.Load())
	}
}

func TestCauseOf(t *testing.T) {
	api := func(status int) error { return &APIError{Method: "GET", Endpoint: "/Status/Endpoints", Status: status} }
	transport := func(err error) error { return &TransportError{Method: "GET", Endpoint: "/Status/Endpoints", Err: err} }
	tests := []struct {
		name string
		err  error
		want Cause
	}{
		{"nil", nil, CauseOther},
		{"401", api(401), CauseUnauthorized},
		{"403", api(403), CauseForbidden},
		{"404", api(404), CauseNotFound},
		{"429", api(429), CauseBusy},
		{"503", api(503), CauseBusy},
		{"500", api(500), CauseServer},
		{"502", api(502), CauseServer},
		{"400", api(400), CauseOther},
		{"undecodable 200", api(200), CauseOther},
		{"token endpoint 401", transport(&APIError{Status: 401}), CauseUnauthorized},
		{"token endpoint invalid_client", transport(&APIError{Status: 400, Code: "invalid_client"}), CauseUnauthorized},
		{"token endpoint 503", transport(&APIError{Status: 503}), CauseBusy},
		{"refused", transport(errors.New("dial tcp: connect: connection refused")), CauseUnreachable},
		{"timeout", transport(context.DeadlineExceeded), CauseUnreachable},
		{"cancelled", transport(context.Canceled), CauseOther},
		{"wrapped", errors.Join(errors.New("preflight"), api(404)), CauseNotFound},
		{"plain", errors.New("renew: set exactly one of CertificateId and Thumbprint"), CauseOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CauseOf(tt.err); got != tt.want {
				t.Errorf("CauseOf(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if m, e := EndpointOf(api(404)); m != "GET" || e != "/Status/Endpoints" {
		t.Errorf("EndpointOf = %s %s", m, e)
	}
	if m, e := EndpointOf(errors.New("x")); m != "" || e != "" {
		t.Errorf("EndpointOf(plain) = %s %s", m, e)
	}
}

// Real failures end in the cause their hint needs.
func TestCauseOfRealFailures(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		c, _ := newTestClient(t, refusedAddr(t), func(c *Config) { c.GetRetries = -1 })
		if _, err := c.StatusEndpoints(context.Background()); CauseOf(err) != CauseUnreachable {
			t.Errorf("CauseOf(%v) = %v", err, CauseOf(err))
		}
	})
	t.Run("wrong API path", func(t *testing.T) {
		c, _ := newTestClient(t, serve(t, http.NotFoundHandler()).URL, nil)
		_, err := c.StatusEndpoints(context.Background())
		if m, e := EndpointOf(err); CauseOf(err) != CauseNotFound || m != "GET" || e != "/Status/Endpoints" {
			t.Errorf("CauseOf(%v) = %v at %s %s", err, CauseOf(err), m, e)
		}
	})
	t.Run("plain HTTP server behind https", func(t *testing.T) {
		srv := serve(t, http.NotFoundHandler())
		c, _ := newTestClient(t, "https://"+strings.TrimPrefix(srv.URL, "http://"), func(c *Config) { c.GetRetries = -1 })
		if _, err := c.StatusEndpoints(context.Background()); CauseOf(err) != CauseTLS || Classify(err) != Permanent {
			t.Errorf("CauseOf(%v) = %v, Classify %v", err, CauseOf(err), Classify(err))
		}
	})
}

func TestRenewOutcome(t *testing.T) {
	tests := []struct {
		disposition string
		id, request int
		want        RenewOutcome
	}{
		{"ISSUED", 10, 5, RenewIssued},
		{"issued", 10, 0, RenewIssued},
		{"", 10, 0, RenewIssued},
		{"", 0, 5, RenewPending},
		{"", 0, 0, RenewEmpty},
		{"ISSUED", 0, 5, RenewPending},
		{"ISSUED", 0, 0, RenewEmpty},
		{"PENDING", 0, 5, RenewPending},
		{"External_Validation", 0, 5, RenewPending},
		{"EXTERNAL VALIDATION", 0, 0, RenewEmpty},
		{"Taken Under Submission", 0, 5, RenewPending},
		{"DENIED", 0, 5, RenewDenied},
		{"Denied", 10, 5, RenewDenied},
		{"FAILED", 10, 5, RenewFailed},
		{"ERROR", 0, 0, RenewFailed},
		{"SOMETHING NEW", 10, 0, RenewIssued},
	}
	for _, tt := range tests {
		r := RenewalResponse{RequestDisposition: tt.disposition, KeyfactorId: tt.id, KeyfactorRequestId: tt.request}
		if got := r.Outcome(); got != tt.want {
			t.Errorf("Outcome(%q, id %d, request %d) = %v, want %v", tt.disposition, tt.id, tt.request, got, tt.want)
		}
	}
}

func TestRequestStatus(t *testing.T) {
	tests := map[string]RequestStatus{
		"Pending": RequestPending, "External Validation": RequestPending, "Issued": RequestIssued, "Denied": RequestDenied,
		"Failed": RequestFailed, "": RequestUnknown, "Revoked": RequestUnknown,
	}
	for s, want := range tests {
		r := CertificateRequest{StateString: s}
		if got := r.Status(); got != want {
			t.Errorf("Status(%q) = %v, want %v", s, got, want)
		}
	}
}
