package kfsim

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// queryRecords are records for the parser tests, seen as certificates.
var queryRecords = []map[string]fieldValue{
	{"Id": {num: 1}, "IssuedCN": {str: "x"}, "IssuedDN": {str: `CN=Say "Hi",O=Example`}, "NotAfter": {tm: t0.Add(10 * 24 * time.Hour)}, "CertRequestId": {null: true}, "TemplateName": {str: "WebServer"}},
	{"Id": {num: 2}, "IssuedCN": {str: "y"}, "IssuedDN": {str: `CN=x\y`}, "NotAfter": {tm: t0.Add(40 * 24 * time.Hour)}, "CertRequestId": {num: 90001}, "TemplateName": {str: "webserver"}},
	{"Id": {num: 3}, "IssuedCN": {str: "x"}, "IssuedDN": {str: `CN=api.corp.example`}, "NotAfter": {tm: t0.Add(-time.Hour)}, "CertRequestId": {null: true}, "TemplateName": {str: "Other"}},
}

func matchingIDs(q *query) []int {
	var ids []int
	for _, r := range queryRecords {
		if q.matches(func(f string) fieldValue { return r[f] }) {
			ids = append(ids, int(r["Id"].num))
		}
	}
	return ids
}

func TestQueryLanguage(t *testing.T) {
	tests := []struct {
		name, q string
		want    []int
		wantErr string
	}{
		{name: "empty matches all", q: "  ", want: []int{1, 2, 3}},
		{name: "or of ids", q: "Id -eq 1 OR Id -eq 3", want: []int{1, 3}},
		{name: "and binds tighter than or", q: `Id -eq 1 OR Id -eq 2 AND IssuedCN -eq "x"`, want: []int{1}},
		{name: "parentheses group", q: `(Id -eq 1 OR Id -eq 2 OR Id -eq 3) AND IssuedCN -eq "x"`, want: []int{1, 3}},
		{name: "nested parentheses", q: `((Id -eq 2)) or (IssuedCN -eq "x" and (Id -ge 3))`, want: []int{2, 3}},
		{name: "keywords any case", q: `Id -eq 1 or id -EQ 2 and TEMPLATENAME -eq "WEBSERVER"`, want: []int{1, 2}},
		{name: "escaped quotes inside a value", q: `IssuedDN -eq "CN=Say \"Hi\",O=Example"`, want: []int{1}},
		{name: "a lone backslash is itself", q: `IssuedDN -eq "CN=x\y"`, want: []int{2}},
		{name: "an escaped backslash is one", q: `IssuedDN -eq "CN=x\\y"`, want: []int{2}},
		{name: "contains any case", q: `IssuedDN -contains "CORP"`, want: []int{3}},
		{name: "notcontains", q: `IssuedDN -notcontains "corp"`, want: []int{1, 2}},
		{name: "startswith and endswith", q: `IssuedDN -startswith "cn=x" OR IssuedDN -endswith ".example"`, want: []int{2, 3}},
		{name: "quoted integer", q: `Id -eq "2"`, want: []int{2}},
		{name: "null", q: "CertRequestId -eq NULL", want: []int{1, 3}},
		{name: "not null", q: "CertRequestId -ne null", want: []int{2}},
		{name: "date only", q: `NotAfter -le "2026-06-30"`, want: []int{1, 3}},
		{name: "bare date time", q: `NotAfter -lt 2026-06-01T12:00:00Z`, want: []int{3}},
		{name: "offset and fraction", q: `NotAfter -ge "2026-06-11T13:59:59.5+02:00"`, want: []int{1, 2}},
		{name: "today token", q: `NotAfter -le "%TODAY+30%"`, want: []int{1, 3}},
		{name: "today minus", q: `NotAfter -gt %TODAY-1%`, want: []int{1, 2, 3}},
		{name: "unterminated quote", q: `IssuedDN -eq "CN=x`, wantErr: "unterminated"},
		{name: "quote not ending the value", q: `IssuedDN -eq "CN=a"b"`, wantErr: "malformed quoting"},
		{name: "quote inside a bare word", q: `IssuedDN -eq CN=a"b`, wantErr: "malformed quoting"},
		{name: "unescaped inner quote", q: `IssuedDN -eq "CN=Say "Hi""`, wantErr: "malformed quoting"},
		{name: "missing close paren", q: `(Id -eq 1 OR Id -eq 2`, wantErr: "missing )"},
		{name: "extra close paren", q: `Id -eq 1)`, wantErr: "unbalanced"},
		{name: "dangling or", q: `Id -eq 1 OR`, wantErr: "incomplete"},
		{name: "missing joiner", q: `Id -eq 1 Id -eq 2`, wantErr: "expected AND or OR"},
		{name: "null with gt", q: `Id -gt NULL`, wantErr: "NULL takes -eq or -ne"},
		{name: "text operator on number", q: `Id -contains 1`, wantErr: "does not apply"},
		{name: "bad date", q: `NotAfter -le "soon"`, wantErr: "ISO 8601"},
		{name: "bad today offset", q: `NotAfter -le "%TODAY+x%"`, wantErr: "ISO 8601"},
		{name: "unknown field", q: `Subject -eq "x"`, wantErr: `unknown field "Subject"`},
		{name: "unknown operator", q: `Id -like 1`, wantErr: `unknown operator "-like"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := parseQuery(tc.q, certificateFields, t0)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := matchingIDs(q); !slices.Equal(got, tc.want) {
				t.Errorf("matches %v, want %v", got, tc.want)
			}
		})
	}
}

func TestQueryCandidates(t *testing.T) {
	lookup := func(c clause) ([]int, bool) {
		switch c.field.name {
		case "Id":
			return []int{int(c.num)}, true
		case "Thumbprint":
			if c.str == "ab" { // values reach the index lower-cased
				return []int{7}, true
			}
			return nil, true
		}
		return nil, false
	}
	tests := []struct {
		q      string
		want   []int
		wantOK bool
	}{
		{"Id -eq 1 OR Id -eq 2 OR Id -eq 1", []int{1, 2}, true},
		{`Thumbprint -eq "AB"`, []int{7}, true},
		{`Id -eq 5 AND NotAfter -le "2026-01-01"`, []int{5}, true},
		{`(Id -eq 1 OR Id -eq 2) AND Thumbprint -eq "AB"`, []int{7}, true},
		{`Id -eq 1 OR IssuedCN -contains "x"`, nil, false},
		{`Id -ge 1`, nil, false},
		{`CertRequestId -eq NULL`, nil, false},
		{``, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) {
			q, err := parseQuery(tc.q, certificateFields, t0)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := q.candidates(lookup)
			if ok != tc.wantOK || !slices.Equal(got, tc.want) {
				t.Errorf("candidates = %v, %v; want %v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestQueriesTheClientSends runs, over HTTP, the queries runner's packages
// build: batched id reads, the lost-renewal search by subject and import
// date, the issued certificate of a request, and discover's selections.
func TestQueriesTheClientSends(t *testing.T) {
	h := newHarness(t, Options{})
	if err := h.sim.Load(Fixture{Certificates: []Certificate{{Id: 300, IssuedDN: `CN=Say "Hi",O=Example`, TemplateName: "WebServer",
		Thumbprint: "BB00000000000000000000000000000000000300", NotBefore: t0.Add(-24 * time.Hour), NotAfter: t0.Add(60 * 24 * time.Hour)}}}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Minute)
	rn := h.renew(alice, wireRenewalRequest{CertificateId: 300})
	renewedAt := h.clock.Now()

	ids := make([]string, 0, 60)
	for i := 0; i < 60; i++ {
		ids = append(ids, "Id -eq "+strconv.Itoa(100+i))
	}
	tests := []struct {
		name   string
		params url.Values
		want   []int
	}{
		{"or of sixty ids", url.Values{"pq.queryString": {strings.Join(ids, " OR ")}, "pq.includeExpired": {"true"}}, []int{100, 101, 102, 103, 104, 105, 106}},
		{"request id of a renewal", url.Values{"pq.queryString": {"CertRequestId -eq " + strconv.Itoa(rn.KeyfactorRequestId)}}, []int{rn.KeyfactorId}},
		{"subject with quotes since the renewal", url.Values{"pq.queryString": {`IssuedDN -eq "CN=Say \"Hi\",O=Example" AND ImportDate -ge "` +
			renewedAt.Format("2006-01-02T15:04:05.000Z") + `"`}}, []int{rn.KeyfactorId}},
		{"subject with quotes, all", url.Values{"pq.queryString": {`IssuedDN -eq "CN=Say \"Hi\",O=Example"`}}, []int{300, rn.KeyfactorId}},
		{"expiring within 61 days", url.Values{"pq.queryString": {`NotAfter -le "` + t0.Add(61*24*time.Hour).Format(time.RFC3339) + `"`}}, []int{104, 300}},
		{"template", url.Values{"pq.queryString": {`TemplateName -eq "webserver"`}}, []int{100, 105, 300, rn.KeyfactorId}},
		{"cn contains", url.Values{"pq.queryString": {`IssuedCN -contains "EXAMPLE.COM"`}, "pq.returnLimit": {"3"}}, []int{100, 101, 102}},
		{"thumbprint", url.Values{"pq.queryString": {`Thumbprint -eq "bb00000000000000000000000000000000000300"`}}, []int{300}},
		{"expired and revoked with both flags", url.Values{"pq.queryString": {"Id -eq 103 OR Id -eq 107"}, "pq.includeExpired": {"true"}, "pq.includeRevoked": {"true"}}, []int{103, 107}},
		{"expired and revoked without", url.Values{"pq.queryString": {"Id -eq 103 OR Id -eq 107"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			for _, c := range decode[[]wireCertificate](t, h.call("GET", "Certificates?"+tc.params.Encode(), alice, nil), 200) {
				got = append(got, c.Id)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ids = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRefuseOr: a server that refuses OR answers 400, and plain queries
// still work, so the client's one-id-at-a-time fallback can be tested.
func TestRefuseOr(t *testing.T) {
	h := newHarness(t, Options{RefuseOr: true})
	wantError(t, h.call("GET", "Certificates?pq.queryString="+url.QueryEscape("Id -eq 100 OR Id -eq 101"), alice, nil), http.StatusBadRequest, "OR is not supported")
	wantError(t, h.call("GET", "Certificates?pq.queryString="+url.QueryEscape("(Id -eq 100) AND (IssuedCN -eq \"x\" or Id -eq 3)"), alice, nil), http.StatusBadRequest, "OR")
	if got := decode[[]wireCertificate](t, h.call("GET", "Certificates?pq.queryString="+url.QueryEscape("Id -eq 100"), alice, nil), 200); len(got) != 1 {
		t.Errorf("plain query = %+v", got)
	}
	wantError(t, h.call("GET", "CertificateStores?QueryString="+url.QueryEscape("ContainerId -eq 4 OR ContainerId -eq 7"), alice, nil), http.StatusBadRequest, "OR")
}

// TestPageSizeCap: returnLimit is capped (at DefaultMaxPageSize unless
// MaxPageSize says otherwise), and X-Total-Count tells the client there is
// more.
func TestPageSizeCap(t *testing.T) {
	var targets []SeedTarget
	for i := 0; i < DefaultMaxPageSize+100; i++ {
		targets = append(targets, SeedTarget{CertificateID: 5000 + i, StoreID: "cccccccc-0000-4000-8000-" + strconv.Itoa(100000000000+i), Alias: "a"})
	}
	fx := SeedFixture(targets, t0)
	tests := []struct {
		name     string
		max      int
		limit    string
		wantPage int
	}{
		{"default cap lets 1000 through", 0, "1000", 1000},
		{"default cap is 1000", 0, "5000", 1000},
		{"cap of 50", 50, "1000", 50},
		{"no cap", -1, "5000", 5000},
		{"default page size", 0, "", 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{MaxPageSize: tc.max})
			if err := h.sim.Load(Fixture{Certificates: fx.Certificates, Stores: fx.Stores}); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{"CertificateStores", "Certificates"} {
				q := url.Values{}
				if tc.limit != "" {
					q.Set("ReturnLimit", tc.limit)
				}
				res := h.call("GET", path+"?"+q.Encode(), alice, nil)
				page := decode[[]map[string]any](t, res, 200)
				total, _ := strconv.Atoi(res.header.Get("X-Total-Count"))
				want := min(tc.wantPage, total)
				if len(page) != want || total < len(targets) {
					t.Errorf("%s: page of %d (total %d), want %d", path, len(page), total, want)
				}
			}
		})
	}
}
