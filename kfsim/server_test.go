package kfsim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBasePathVariants(t *testing.T) {
	tests := []struct {
		name     string
		apiPath  string
		wantBase string
		path     string
		want     int
	}{
		{"default", "", "/KeyfactorAPI", "/KeyfactorAPI/Status/Endpoints", 200},
		{"default any case", "", "/KeyfactorAPI", "/keyfactorapi/status/ENDPOINTS", 200},
		{"explicit with slashes", "/KeyfactorAPI/", "/KeyfactorAPI", "/KEYFACTORAPI/Status/Endpoints/", 200},
		{"container build", "Keyfactor/API", "/Keyfactor/API", "/Keyfactor/API/Status/Endpoints", 200},
		{"container build any case", "Keyfactor/API", "/Keyfactor/API", "/keyfactor/api/status/endpoints", 200},
		{"container build rejects old path", "Keyfactor/API", "/Keyfactor/API", "/KeyfactorAPI/Status/Endpoints", 404},
		{"default rejects container path", "", "/KeyfactorAPI", "/Keyfactor/API/Status/Endpoints", 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{APIPath: tc.apiPath})
			if got := h.sim.BasePath(); got != tc.wantBase {
				t.Errorf("BasePath() = %q, want %q", got, tc.wantBase)
			}
			res := h.call("GET", tc.path, alice, nil)
			if res.status != tc.want {
				t.Fatalf("status = %d, want %d; body %s", res.status, tc.want, res.body)
			}
			if tc.want == 200 {
				eps := decode[[]string](t, res, 200)
				if !slices.Contains(eps, "GET /Certificates/{id}") {
					t.Errorf("endpoints %q lack GET /Certificates/{id}", eps)
				}
			}
		})
	}
}

func TestMissingRequestedWithHeader(t *testing.T) {
	h := newHarness(t, Options{})
	res, err := h.try("GET", "Status/Endpoints", alice, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, res, http.StatusBadRequest, "x-keyfactor-requested-with")
}

func TestAuthentication(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name   string
		auth   string
		want   int
		wantID string
	}{
		{"domain user", alice.header(), 200, `CORP\alice`},
		{"domain any case", cred{`corp\ALICE`, "alice-pw"}.header(), 200, `CORP\alice`},
		{"user at domain", cred{"alice@corp", "alice-pw"}.header(), 200, `CORP\alice`},
		{"user without domain", eve.header(), 200, "eve"},
		{"wrong password", cred{`CORP\alice`, "nope"}.header(), 401, ""},
		{"unknown user", cred{`CORP\mallory`, "x"}.header(), 401, ""},
		{"missing domain", cred{"alice", "alice-pw"}.header(), 401, ""},
		{"no credentials", "", 401, ""},
		{"garbage basic", "Basic !!!", 401, ""},
		{"unknown bearer", "Bearer abc", 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", h.srv.URL+"/KeyfactorAPI/Security/My/Permissions", nil)
			req.Header.Set("x-keyfactor-requested-with", "APIClient")
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := h.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			decErr := json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 401 {
				// Like IIS: not a Command error body.
				if decErr == nil {
					t.Errorf("401 body decoded as JSON: %v", body)
				}
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
			l := h.sim.Ledger()
			last := l.Requests[len(l.Requests)-1]
			if last.Identity != tc.wantID || last.Status != tc.want || last.Endpoint != "permissions" {
				t.Errorf("ledger request = %+v, want identity %q status %d", last, tc.wantID, tc.want)
			}
		})
	}
}

func TestForbidden(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name   string
		who    cred
		method string
		path   string
		body   any
		perm   string
	}{
		{"get certificate without read", eve, "GET", "Certificates/100", nil, PermCertificatesRead},
		{"list certificates without read", eve, "GET", "Certificates", nil, PermCertificatesRead},
		{"renew without pfx", dave, "POST", "Enrollment/Renew", wireRenewalRequest{CertificateId: 100}, PermEnrollPFX},
		{"renew without read", eve, "POST", "Enrollment/Renew", wireRenewalRequest{CertificateId: 100}, PermCertificatesRead},
		{"deploy without pfx", dave, "POST", "Enrollment/PFX/Deploy", wireDeployRequest{CertificateId: 100, Stores: stores(storeK8s)}, PermEnrollPFX},
		{"store of another container", carol, "GET", "CertificateStores/" + storeDB, nil, PermStoresRead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, h.call(tc.method, tc.path, tc.who, tc.body), http.StatusForbidden, tc.perm)
		})
	}
	if n := len(h.sim.Ledger().Renewals); n != 0 {
		t.Errorf("forbidden renewals committed %d renewals", n)
	}
}

func TestUnknownRoute(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"unknown endpoint", "GET", "/KeyfactorAPI/Certificates/100/Security", 404},
		{"outside base path", "GET", "/other/Status/Endpoints", 404},
		{"known path wrong method", "DELETE", "/KeyfactorAPI/Certificates/100", 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := h.call(tc.method, tc.path, alice, nil)
			wantError(t, res, tc.want, "")
			if !h.logged(tc.path) {
				t.Errorf("no log line names %s", tc.path)
			}
			l := h.sim.Ledger()
			if got := l.Requests[len(l.Requests)-1]; got.Endpoint != "unknown" || got.Status != tc.want {
				t.Errorf("ledger request = %+v", got)
			}
		})
	}
}

func TestStatusEndpointsFollowPermissions(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name    string
		who     cred
		want    []string
		notWant []string
	}{
		{"full", alice, []string{"GET /Status/Endpoints", "POST /Enrollment/Renew", "POST /Enrollment/PFX/Deploy", "GET /CertificateStores/{id}"}, nil},
		{"read only", dave, []string{"GET /Certificates/{id}"}, []string{"POST /Enrollment/Renew", "GET /CertificateStores"}},
		{"container scoped", carol, []string{"GET /CertificateStores", "POST /Enrollment/Renew"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eps := decode[[]string](t, h.call("GET", "Status/Endpoints", tc.who, nil), 200)
			for _, w := range tc.want {
				if !slices.Contains(eps, w) {
					t.Errorf("missing %q in %q", w, eps)
				}
			}
			for _, w := range tc.notWant {
				if slices.Contains(eps, w) {
					t.Errorf("unexpected %q in %q", w, eps)
				}
			}
		})
	}
}

func TestMyPermissionsSortedAndDeduped(t *testing.T) {
	h := newHarness(t, Options{})
	got := decode[wireMyPermissions](t, h.call("GET", "Security/My/Permissions", alice, nil), 200)
	want := []string{"/certificate_stores/read/", "/certificate_stores/schedule/", "/certificates/collections/read/", "/certificates/enrollment/pfx/"}
	if !slices.Equal(got.Permissions, want) {
		t.Errorf("Permissions = %q, want %q", got.Permissions, want)
	}
	got = decode[wireMyPermissions](t, h.call("GET", "Security/My/Permissions", eve, nil), 200)
	if got.Permissions == nil || len(got.Permissions) != 0 {
		t.Errorf("eve's Permissions = %#v, want []", got.Permissions)
	}
}

func TestGetCertificate(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name      string
		path      string
		body      string
		want      int
		locations int
	}{
		{"without locations", "Certificates/100", "", 200, 0},
		{"with locations", "Certificates/100?includeLocations=true", "", 200, 1},
		{"query key any case", "Certificates/100?INCLUDELOCATIONS=True", "", 200, 1},
		{"GET body null is ignored", "Certificates/100?includeLocations=true", "null", 200, 1},
		{"unknown id", "Certificates/999", "", 404, 0},
		{"bad id", "Certificates/abc", "", 400, 0},
		{"bad bool", "Certificates/100?includeLocations=maybe", "", 400, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			res := h.call("GET", tc.path, alice, body)
			if tc.want != 200 {
				wantError(t, res, tc.want, "")
				return
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(res.body, &raw); err != nil {
				t.Fatal(err)
			}
			if string(raw["Locations"]) == "null" {
				t.Error("Locations is null, want an array")
			}
			if string(raw["PrincipalId"]) != "null" {
				t.Errorf("PrincipalId = %s, want null", raw["PrincipalId"])
			}
			c := decode[wireCertificate](t, res, 200)
			if c.Id != 100 || c.IssuedCN != "web.example.com" || c.Thumbprint != "AA00000000000000000000000000000000000100" {
				t.Errorf("certificate = %+v", c)
			}
			if len(c.Locations) != tc.locations {
				t.Fatalf("Locations = %+v, want %d", c.Locations, tc.locations)
			}
			if tc.locations > 0 {
				want := Location{StoreMachine: "web01.corp.example", StorePath: "My", StoreType: 2, Alias: "web", CertStoreId: storeWeb01}
				if c.Locations[0] != want {
					t.Errorf("Location = %+v, want %+v", c.Locations[0], want)
				}
			}
		})
	}
}

func TestListCertificatesQuery(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name      string
		params    url.Values
		wantIDs   []int
		wantTotal string
		wantErr   string // substring of a 400 message
	}{
		{name: "all but expired and revoked", params: url.Values{}, wantIDs: []int{100, 101, 102, 104, 105, 106}, wantTotal: "6"},
		{name: "include expired", params: url.Values{"pq.includeExpired": {"true"}}, wantIDs: []int{100, 101, 102, 103, 104, 105, 106}, wantTotal: "7"},
		{name: "include revoked unprefixed", params: url.Values{"includeRevoked": {"true"}}, wantIDs: []int{100, 101, 102, 104, 105, 106, 107}, wantTotal: "7"},
		{name: "thumbprint any case", params: url.Values{"pq.queryString": {`Thumbprint -eq "aa00000000000000000000000000000000000100"`}}, wantIDs: []int{100}, wantTotal: "1"},
		{name: "issued cn", params: url.Values{"pq.queryString": {`IssuedCN -eq "legacy.example.com"`}}, wantIDs: []int{102}, wantTotal: "1"},
		{name: "ne and gt joined by and", params: url.Values{"pq.queryString": {`Id -gt 100 and TemplateName -ne "Approved"`}}, wantIDs: []int{102, 104, 105, 106}, wantTotal: "4"},
		{name: "ge le", params: url.Values{"pq.queryString": {`Id -ge 101 AND Id -le 102`}}, wantIDs: []int{101, 102}, wantTotal: "2"},
		{name: "lt date", params: url.Values{"pq.queryString": {`NotAfter -lt "2026-09-01T00:00:00Z"`}}, wantIDs: []int{104}, wantTotal: "1"},
		{name: "date only", params: url.Values{"pq.queryString": {`NotBefore -ge "2026-01-01"`}}, wantIDs: []int{100, 101, 104}, wantTotal: "3"},
		{name: "null request id", params: url.Values{"pq.queryString": {`CertRequestId -eq 5`}}, wantIDs: []int{}, wantTotal: "0"},
		{name: "unprefixed names", params: url.Values{"QueryString": {`IssuedDN -eq "CN=db.example.com"`}}, wantIDs: []int{101}, wantTotal: "1"},
		{name: "page 1", params: url.Values{"pq.returnLimit": {"2"}}, wantIDs: []int{100, 101}, wantTotal: "6"},
		{name: "page 3", params: url.Values{"pq.returnLimit": {"2"}, "pq.pageReturned": {"3"}}, wantIDs: []int{105, 106}, wantTotal: "6"},
		{name: "past last page", params: url.Values{"ReturnLimit": {"2"}, "PageReturned": {"4"}}, wantIDs: []int{}, wantTotal: "6"},
		{name: "sorted descending", params: url.Values{"pq.sortField": {"Id"}, "pq.sortAscending": {"1"}}, wantIDs: []int{106, 105, 104, 102, 101, 100}, wantTotal: "6"},
		{name: "sorted by NotAfter", params: url.Values{"SortField": {"NotAfter"}, "pq.queryString": {`Id -ge 104`}}, wantIDs: []int{104, 105, 106}, wantTotal: "3"},
		{name: "unknown field", params: url.Values{"pq.queryString": {`Subject -eq "x"`}}, wantErr: `unknown field "Subject"`},
		{name: "unknown operator", params: url.Values{"pq.queryString": {`Id -like 3`}}, wantErr: `unknown operator "-like"`},
		{name: "bad number", params: url.Values{"pq.queryString": {`Id -eq "abc"`}}, wantErr: "want an integer"},
		{name: "or of ids", params: url.Values{"pq.queryString": {`Id -eq 104 OR Id -eq 100 or Id -eq 5`}}, wantIDs: []int{100, 104}, wantTotal: "2"},
		{name: "incomplete", params: url.Values{"pq.queryString": {`Id -eq`}}, wantErr: "incomplete"},
		{name: "unterminated quote", params: url.Values{"pq.queryString": {`IssuedCN -eq "abc`}}, wantErr: "unterminated"},
		{name: "bad page", params: url.Values{"pq.pageReturned": {"x"}}, wantErr: "pq.pageReturned"},
		{name: "bad sort field", params: url.Values{"pq.sortField": {"Color"}}, wantErr: "Invalid sort field: Color."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := h.call("GET", "Certificates?"+tc.params.Encode(), alice, nil)
			if tc.wantErr != "" {
				wantError(t, res, http.StatusBadRequest, tc.wantErr)
				return
			}
			certs := decode[[]wireCertificate](t, res, 200)
			var ids []int
			for _, c := range certs {
				ids = append(ids, c.Id)
			}
			if !slices.Equal(ids, tc.wantIDs) {
				t.Errorf("ids = %v, want %v", ids, tc.wantIDs)
			}
			if got := res.header.Get("X-Total-Count"); got != tc.wantTotal {
				t.Errorf("X-Total-Count = %q, want %q", got, tc.wantTotal)
			}
		})
	}
}

func TestListCertificateStores(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name      string
		who       cred
		params    url.Values
		wantIDs   []string
		wantTotal string
		wantErr   string
	}{
		{name: "global read sees all", who: alice, wantIDs: []string{storeWeb01, storeDB, storeK8s, storeWeb02, storeF5, storeUnapproved, storeNoAgent}, wantTotal: "7"},
		{name: "container 4 only", who: carol, wantIDs: []string{storeWeb01, storeWeb02, storeF5, storeUnapproved}, wantTotal: "4"},
		{name: "no read permission", who: dave, wantIDs: nil, wantTotal: "0"},
		{name: "query by container", who: alice, params: url.Values{"certificateStoreQuery.queryString": {"ContainerId -eq 4"}}, wantIDs: []string{storeWeb01, storeWeb02, storeF5, storeUnapproved}, wantTotal: "4"},
		{name: "query by machine and path", who: alice, params: url.Values{"certificateStoreQuery.queryString": {`ClientMachine -eq "k8s-prod" AND StorePath -eq "default/tls"`}}, wantIDs: []string{storeK8s}, wantTotal: "1"},
		{name: "query by type unprefixed", who: alice, params: url.Values{"QueryString": {"CertStoreType -eq 3"}}, wantIDs: []string{storeDB}, wantTotal: "1"},
		{name: "query by id", who: alice, params: url.Values{"certificateStoreQuery.queryString": {`Id -eq "` + strings.ToUpper(storeK8s) + `"`}}, wantIDs: []string{storeK8s}, wantTotal: "1"},
		{name: "page 2 of 3", who: alice, params: url.Values{"certificateStoreQuery.pageReturned": {"2"}, "certificateStoreQuery.returnLimit": {"3"}}, wantIDs: []string{storeWeb02, storeF5, storeUnapproved}, wantTotal: "7"},
		{name: "past the last page", who: alice, params: url.Values{"certificateStoreQuery.pageReturned": {"2"}}, wantIDs: nil, wantTotal: "7"},
		{name: "null container", who: alice, params: url.Values{"QueryString": {"ContainerId -eq NULL"}}, wantIDs: []string{storeK8s, storeNoAgent}, wantTotal: "2"},
		{name: "unknown field", who: alice, params: url.Values{"certificateStoreQuery.queryString": {`Agent -eq "x"`}}, wantErr: `unknown field "Agent"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := h.call("GET", "CertificateStores?"+tc.params.Encode(), tc.who, nil)
			if tc.wantErr != "" {
				wantError(t, res, http.StatusBadRequest, tc.wantErr)
				return
			}
			if strings.TrimSpace(string(res.body)) == "null" {
				t.Fatal("body is null, want an array")
			}
			got := decode[[]wireStore](t, res, 200)
			var ids []string
			for _, s := range got {
				ids = append(ids, s.Id)
			}
			if !slices.Equal(ids, tc.wantIDs) {
				t.Errorf("ids = %v, want %v", ids, tc.wantIDs)
			}
			if got := res.header.Get("X-Total-Count"); got != tc.wantTotal {
				t.Errorf("X-Total-Count = %q, want %q", got, tc.wantTotal)
			}
		})
	}
}

func TestGetCertificateStore(t *testing.T) {
	h := newHarness(t, Options{})
	res := h.call("GET", "CertificateStores/"+strings.ToUpper(storeK8s), alice, nil)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(decodeRaw(t, res), &raw); err != nil {
		t.Fatal(err)
	}
	checks := map[string]string{
		"ContainerId":   "null",
		"Properties":    `"{\"KubeSecretType\":\"tls_secret\"}"`,
		"Storepath":     `"default/tls"`,
		"CertStoreType": "154",
		"Id":            `"` + storeK8s + `"`,
	}
	for k, want := range checks {
		if got := string(raw[k]); got != want {
			t.Errorf("%s = %s, want %s", k, got, want)
		}
	}
	st := decode[wireStore](t, h.call("GET", "CertificateStores/"+storeWeb01, carol, nil), 200)
	if st.ContainerId == nil || *st.ContainerId != 4 || st.ContainerName == nil || *st.ContainerName != "Web servers" {
		t.Errorf("store = %+v, want container 4 Web servers", st)
	}
	wantError(t, h.call("GET", "CertificateStores/99999999-0000-4000-8000-000000000000", alice, nil), 404, "not found")
}

func decodeRaw(t testing.TB, res result) []byte {
	t.Helper()
	if res.status != 200 {
		t.Fatalf("status = %d; body %s", res.status, res.body)
	}
	return res.body
}

func TestOAuthToken(t *testing.T) {
	h := newHarness(t, Options{})
	post := func(form url.Values, basicID, basicSecret string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", h.srv.URL+"/_kfsim/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basicID != "" {
			req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
		}
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	tests := []struct {
		name        string
		form        url.Values
		basicID     string
		basicSecret string
		want        int
		wantErr     string
	}{
		{"form credentials", url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc-runner"}, "client_secret": {"s3cret/+="}, "scope": {"openid"}}, "", "", 200, ""},
		{"basic credentials", url.Values{"grant_type": {"client_credentials"}, "audience": {"kf"}}, "svc-runner", "s3cret/+=", 200, ""},
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc-runner"}, "client_secret": {"x"}}, "", "", 401, "invalid_client"},
		{"unknown client", url.Values{"grant_type": {"client_credentials"}}, "nobody", "x", 401, "invalid_client"},
		{"wrong grant", url.Values{"grant_type": {"password"}, "client_id": {"svc-runner"}, "client_secret": {"s3cret/+="}}, "", "", 400, "unsupported_grant_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(tc.form, tc.basicID, tc.basicSecret)
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d (%v)", resp.StatusCode, tc.want, body)
			}
			if tc.wantErr != "" {
				if body["error"] != tc.wantErr {
					t.Errorf("error = %v, want %s", body["error"], tc.wantErr)
				}
				return
			}
			tok, _ := body["access_token"].(string)
			if tok == "" || body["token_type"] != "Bearer" || body["expires_in"] == nil {
				t.Fatalf("token answer = %v", body)
			}
			req, _ := http.NewRequest("GET", h.srv.URL+"/KeyfactorAPI/Security/My/Permissions", nil)
			req.Header.Set("x-keyfactor-requested-with", "APIClient")
			req.Header.Set("Authorization", "Bearer "+tok)
			r2, err := h.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r2.Body.Close()
			if r2.StatusCode != 200 {
				t.Fatalf("bearer request status = %d", r2.StatusCode)
			}
			l := h.sim.Ledger()
			if got := l.Requests[len(l.Requests)-1].Identity; got != "svc-runner" {
				t.Errorf("identity = %q, want svc-runner", got)
			}
		})
	}
}

func TestLedgerOverHTTP(t *testing.T) {
	h := newHarness(t, Options{})
	h.renew(alice, wireRenewalRequest{CertificateId: 100})
	resp, err := h.srv.Client().Get(h.srv.URL + "/_kfsim/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l Ledger
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	if len(l.Renewals) != 1 || l.Renewals[0].OldCertificateId != 100 || l.Renewals[0].Identity != `CORP\alice` {
		t.Errorf("renewals = %+v", l.Renewals)
	}
	if len(l.Requests) != 1 || l.Requests[0].Endpoint != "renew" || l.Requests[0].Status != 200 {
		t.Errorf("requests = %+v", l.Requests)
	}
}

func TestServeHTTPWithoutNetwork(t *testing.T) {
	// The handler also works behind a recorder (no Hijacker needed when no
	// drop fault is set).
	sim := New(Options{})
	if err := sim.Load(Fixture{Users: []User{{Username: "u", Password: "p"}}}); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/KeyfactorAPI/Status/Endpoints", nil)
	req.SetBasicAuth("u", "p")
	req.Header.Set("X-Keyfactor-Requested-With", "APIClient")
	rec := httptest.NewRecorder()
	sim.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Errorf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

// TestTokenExpiresOnSimulatorClock: a token lives TokenLifetime on the
// simulator's clock, so a test that advances the clock past it sees the
// next request answered 401, mid-run.
func TestTokenExpiresOnSimulatorClock(t *testing.T) {
	h := newHarness(t, Options{TokenLifetime: 10 * time.Minute})
	resp, err := h.srv.Client().PostForm(h.srv.URL+"/_kfsim/oauth/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"svc-runner"}, "client_secret": {"s3cret/+="}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || tok.ExpiresIn != 600 {
		t.Fatalf("token answer %+v, %v: want expires_in 600", tok, err)
	}
	get := func() int {
		req, _ := http.NewRequest("GET", h.srv.URL+"/KeyfactorAPI/Certificates/100", nil)
		req.Header.Set("x-keyfactor-requested-with", "APIClient")
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		r, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	h.clock.Advance(10*time.Minute - time.Second)
	if s := get(); s != 200 {
		t.Fatalf("status before expiry = %d", s)
	}
	h.clock.Advance(time.Second)
	if s := get(); s != 401 {
		t.Errorf("status at expiry = %d, want 401", s)
	}
}
