package keyfactor

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The fixtures in testdata and their sources are listed in
// testdata/SOURCES.md.

// utc is a shorthand for dates in expectations.
func utc(y, mo, d, h, mi, s, ns int) time.Time {
	return time.Date(y, time.Month(mo), d, h, mi, s, ns, time.UTC)
}

// serveFixture is serveBody with the fixture file as the body, and
// X-Total-Count when total >= 0.
func serveFixture(tb testing.TB, name string, total int) *Client {
	tb.Helper()
	header := ""
	if total >= 0 {
		header = itoa(total)
	}
	return serveBody(tb, string(fixture(tb, name)), header)
}

func TestCertificateFixtures(t *testing.T) {
	tests := []struct {
		file string
		want Certificate
	}{
		{file: "certificate.json", want: Certificate{Id: 2429, Thumbprint: "D25F4237A1B2C3D4E5F60718293A4B5C6D7EC476",
			SerialNumber: "5A000009C1B2D3E4F5A6B7C8D9000000000009C1", IssuedDN: "CN=web01.example.com, O=Example, C=US", IssuedCN: "web01.example.com",
			ImportDate: utc(2026, 3, 19, 21, 26, 35, 967e6), NotBefore: utc(2026, 3, 19, 21, 16, 35, 0), NotAfter: utc(2027, 3, 19, 21, 16, 35, 0),
			CertState: 1, CertRequestId: 245, RequesterName: `KEYFACTOR\svc-renew`, TemplateName: "WebServer1y",
			Locations: []Location{
				{CertStoreId: "f0cc1ede-7d1b-4a2c-9b7e-0e3f5d1a2b3c", Alias: "D25F4237A1B2C3D4E5F60718293A4B5C6D7EC476", StorePath: "default/tf-unit-deploy-a", StoreMachine: "container_uo-25-4", StoreType: 154},
				{CertStoreId: "1a2b3c4d-0000-4000-8000-00000000abcd", Alias: "web01", StorePath: "My", StoreMachine: "iis01.example.com", StoreType: 5},
			}}},
		{file: "certificate_principal.json", want: Certificate{Id: 2430, Thumbprint: "0B1C2D3E4F5061728394A5B6C7D8E9F00112233A",
			SerialNumber: "5A00000A1B", IssuedDN: "CN=jsmith, OU=People, O=Example", IssuedCN: "jsmith",
			ImportDate: utc(2026, 3, 20, 8, 0, 1, 5e8), NotBefore: utc(2026, 3, 20, 7, 50, 0, 0), NotAfter: utc(2027, 3, 20, 7, 50, 0, 0),
			CertState: 1, CertRequestId: 246, RequesterName: `KEYFACTOR\svc-renew`, TemplateName: "User"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := serveFixture(t, tt.file, -1)
			got, err := c.GetCertificate(context.Background(), tt.want.Id, true)
			if err != nil {
				t.Fatal(err)
			}
			if !certEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

// certEqual compares certificates, dates by instant.
func certEqual(a, b Certificate) bool {
	if !a.ImportDate.Equal(b.ImportDate) || !a.NotBefore.Equal(b.NotBefore) || !a.NotAfter.Equal(b.NotAfter) {
		return false
	}
	a.ImportDate, a.NotBefore, a.NotAfter = time.Time{}, time.Time{}, time.Time{}
	b.ImportDate, b.NotBefore, b.NotAfter = time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func TestCertificatePageOfFifty(t *testing.T) {
	c := serveFixture(t, "certificates_page50.json", 50)
	page, err := c.ListCertificates(context.Background(), CertificateQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Certificates) != 42 || page.Total != 50 {
		t.Fatalf("%d certificates, total %d; want 42 and 50", len(page.Certificates), page.Total)
	}
	var oddAt, oddIDs []int
	for _, o := range page.Odd {
		oddAt = append(oddAt, o.Index)
		oddIDs = append(oddIDs, o.Id)
		if o.Err == nil || !strings.HasPrefix(o.Error(), "record ") {
			t.Errorf("odd record %+v: error text %q", o, o.Error())
		}
	}
	if want := []int{20, 21, 22, 23, 24, 25, 30, 31}; !slices.Equal(oddAt, want) {
		t.Errorf("odd records at %v, want %v", oddAt, want)
	}
	if want := []int{0, 3021, 3022, 3023, 3024, 0, 0, 0}; !slices.Equal(oddIDs, want) {
		t.Errorf("odd record ids %v, want %v", oddIDs, want)
	}
	byID := make(map[int]Certificate)
	for _, cert := range page.Certificates {
		byID[cert.Id] = cert
	}
	for _, tt := range []struct {
		id   int
		want func(Certificate) bool
		what string
	}{
		{3003, func(c Certificate) bool { return c.IssuedCN == "app03.example.com" }, "numeric PrincipalId decodes"},
		{3004, func(c Certificate) bool { return c.IssuedCN == "app04.example.com" }, "string PrincipalId decodes"},
		{3005, func(c Certificate) bool {
			return c.NotAfter.Equal(utc(2027, 3, 19, 21, 16, 34, 0)) && c.ImportDate.Equal(utc(2026, 3, 19, 21, 26, 35, 0))
		}, "dates without offset are UTC"},
		{3006, func(c Certificate) bool {
			return c.ImportDate.Equal(utc(2026, 3, 19, 21, 26, 35, 123456700)) && c.NotAfter.Equal(utc(2027, 3, 19, 21, 16, 34, 5e8))
		}, "7-digit fraction and +02:00"},
		{3007, func(c Certificate) bool { return c.CertState == 1 && c.CertRequestId == 245 }, "CertState as a string"},
		{3008, func(c Certificate) bool { return c.TemplateName == "WebServer1y" }, "unused fields of odd types are skipped"},
		{3009, func(c Certificate) bool {
			return len(c.Locations) == 1 && c.Locations[0].CertStoreId == "1a2b3c4d-0000-4000-8000-00000000abcd" && c.Locations[0].StoreType == 5
		}, "braced upper-case store GUID normalised"},
		{3010, func(c Certificate) bool {
			return c.RequesterName == "" && c.ImportDate.IsZero() && c.CertRequestId == 0
		}, "nulls in optional fields"},
	} {
		got, ok := byID[tt.id]
		if !ok || !tt.want(got) {
			t.Errorf("%s: certificate %d = %+v", tt.what, tt.id, got)
		}
	}
}

func TestRenewFixtures(t *testing.T) {
	tests := []struct {
		file        string
		want        RenewOutcome
		wantID      int
		wantRequest int
		wantMessage string
	}{
		{file: "renew_issued.json", want: RenewIssued, wantID: 2431, wantRequest: 247, wantMessage: "The private key was successfully retained."},
		{file: "renew_pending.json", want: RenewPending, wantRequest: 248, wantMessage: "The request is waiting for approval."},
		{file: "renew_pending_word.json", want: RenewPending, wantRequest: 249, wantMessage: "Taken Under Submission"},
		{file: "renew_denied.json", want: RenewDenied, wantRequest: 250, wantMessage: "Denied by Policy Module: the subject is not allowed by the template."},
		{file: "renew_failed.json", want: RenewFailed, wantMessage: "The certificate authority could not be reached."},
		{file: "renew_empty.json", want: RenewEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := serveFixture(t, tt.file, -1)
			r, err := c.Renew(context.Background(), RenewalRequest{CertificateId: 2429})
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Outcome(); got != tt.want || r.KeyfactorId != tt.wantID || r.KeyfactorRequestId != tt.wantRequest || r.DispositionMessage != tt.wantMessage {
				t.Errorf("outcome %v of %+v, want %v", got, r, tt.want)
			}
		})
	}
	t.Run("renew_bad_ids.json", func(t *testing.T) {
		c := serveFixture(t, "renew_bad_ids.json", -1)
		_, err := c.Renew(context.Background(), RenewalRequest{CertificateId: 2429})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 200 || Classify(err) != Unknown {
			t.Fatalf("error = %v, want an APIError of class unknown", err)
		}
		for _, s := range []string{"KeyfactorId: expected an integer id, got a string", "KeyfactorRequestId"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not name %q", err, s)
			}
		}
	})
}

func TestDeployFixtures(t *testing.T) {
	tests := []struct {
		file       string
		wantOK     []string
		wantFailed []string
	}{
		{file: "deploy_response.json", wantOK: []string{"f0cc1ede-7d1b-4a2c-9b7e-0e3f5d1a2b3c"}, wantFailed: []string{"1a2b3c4d-0000-4000-8000-00000000abcd"}},
		{file: "deploy_response_messy.json", wantOK: []string{"f0cc1ede-7d1b-4a2c-9b7e-0e3f5d1a2b3c", "1a2b3c4d-0000-4000-8000-00000000abcd"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := serveFixture(t, tt.file, -1)
			d, err := c.Deploy(context.Background(), DeployRequest{CertificateId: 2431, Stores: []DeployStore{{StoreId: "f0cc1ede-7d1b-4a2c-9b7e-0e3f5d1a2b3c"}}})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.SuccessfulStores, tt.wantOK) || !slices.Equal(d.FailedStores, tt.wantFailed) {
				t.Errorf("got %+v", d)
			}
		})
	}
}

func TestPermissionFixtures(t *testing.T) {
	four, nine := 4, 9
	type check struct {
		perm      string
		container *int
		want      bool
	}
	tests := []struct {
		name       string
		file       string // answer of the endpoint that answers 200
		endpoint   string // the endpoint that answers 200; the other answers 404
		wantSource string
		checks     []check
	}{
		{name: "container-scoped schedule", file: "permissions_container.json", endpoint: SourceMyPermissions, wantSource: SourceMyPermissions, checks: []check{
			{PermStoresSchedule, &four, true}, {PermStoresSchedule, &nine, false}, {PermStoresSchedule, nil, false},
			{PermEnrollPFX, nil, true}, {PermCertificatesRead, nil, true},
		}},
		{name: "parents only", file: "permissions_v11.json", endpoint: SourceMyPermissions, wantSource: SourceMyPermissions, checks: []check{
			{PermStoresSchedule, &four, true}, {PermStoresSchedule, nil, true}, {PermStoresRead, nil, true},
			{PermEnrollPFX, nil, true}, {PermCertificatesRead, nil, true}, {"/agents/management/read/", nil, false},
		}},
		{name: "administrator", file: "permissions_admin.json", endpoint: SourceMyPermissions, wantSource: SourceMyPermissions, checks: []check{
			{PermStoresSchedule, &nine, true}, {PermEnrollPFX, nil, true}, {"/anything/at/all/", nil, true},
		}},
		{name: "hosted example", file: "permissions_hosted.json", endpoint: SourceMyPermissions, wantSource: SourceMyPermissions, checks: []check{
			{PermEnrollPFX, nil, true}, {PermStoresSchedule, &four, true}, {PermCertificatesRead, nil, true}, {"/certificates/collections/delete/", nil, false},
		}},
		{name: "v11.3 global permissions", file: "security_my_v11.json", endpoint: SourceMy, wantSource: SourceMy, checks: []check{
			{PermEnrollPFX, nil, true}, {PermStoresSchedule, nil, true}, {PermStoresRead, nil, true}, {PermCertificatesRead, nil, true},
		}},
		{name: "v11.3 read only", file: "security_my_readonly.json", endpoint: SourceMy, wantSource: SourceMy, checks: []check{
			{PermEnrollPFX, nil, false}, {PermStoresSchedule, nil, false}, {PermCertificatesRead, nil, true},
			// Container permissions are not listed by /Security/My: left to Deploy.
			{PermStoresSchedule, &four, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := fixture(t, tt.file)
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/KeyfactorAPI"+tt.endpoint {
					writeJSON(w, 200, string(body))
					return
				}
				writeJSON(w, 404, `{"Message":"not here"}`)
			}))
			c, _ := newTestClient(t, srv.URL, nil)
			p, err := c.Permissions(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !p.Known || p.Source != tt.wantSource || p.GlobalOnly != (tt.wantSource == SourceMy) {
				t.Fatalf("permissions %+v", p)
			}
			for _, ck := range tt.checks {
				if got := p.Has(ck.perm, ck.container); got != ck.want {
					t.Errorf("Has(%s, %v) = %v, want %v (list %v)", ck.perm, deref(ck.container), got, ck.want, p.List)
				}
			}
		})
	}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestStoreFixtures(t *testing.T) {
	t.Run("store.json", func(t *testing.T) {
		c := serveFixture(t, "store.json", -1)
		s, err := c.GetCertificateStore(context.Background(), "f0cc1ede-7d1b-4a2c-9b7e-0e3f5d1a2b3c")
		if err != nil {
			t.Fatal(err)
		}
		want := CertificateStore{Id: "f0cc1ede-7d1b-4a2c-9b7e-0e3f5d1a2b3c", DisplayName: "container_uo-25-4 - default/tf-unit-deploy-a",
			ClientMachine: "container_uo-25-4", Storepath: "default/tf-unit-deploy-a", CertStoreType: 154, Approved: true, AgentAssigned: true}
		if *s != want {
			t.Errorf("got  %+v\nwant %+v", *s, want)
		}
	})
	t.Run("stores_page.json", func(t *testing.T) {
		c := serveFixture(t, "stores_page.json", 3)
		page, err := c.ListCertificateStores(context.Background(), StoreQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Stores) != 2 || len(page.Odd) != 1 || page.Odd[0].Index != 2 || page.Total != 3 {
			t.Fatalf("page %+v", page)
		}
		iis := page.Stores[1]
		if iis.Id != "aaaaaaaa-0000-4000-8000-000000000001" || iis.ContainerId == nil || *iis.ContainerId != 4 || iis.CertStoreType != 5 ||
			!iis.Approved || iis.AgentAssigned || iis.ContainerName != "Web" {
			t.Errorf("store with string numbers and flags: %+v", iis)
		}
		if k8s := page.Stores[0]; k8s.ContainerId != nil || k8s.Storepath != "default/tf-unit-deploy-1773955588664811000" {
			t.Errorf("25.4.1 store: %+v", k8s)
		}
	})
}

func TestStoreTypeFixtures(t *testing.T) {
	c := serveFixture(t, "store_types.json", 4)
	types, odd, err := c.CertificateStoreTypes(context.Background())
	if err != nil || len(odd) != 0 {
		t.Fatal(err, odd)
	}
	want := []CertificateStoreType{
		{StoreType: 154, ShortName: "K8STLSSecr", Name: "K8STLSSecr", CustomAliasAllowed: AliasForbidden},
		{StoreType: 2, ShortName: "PEM", Name: "PEM File", EntryPasswordSupported: true, CustomAliasAllowed: AliasRequired},
		{StoreType: 6, ShortName: "IIS", Name: "IIS Personal", CustomAliasAllowed: AliasOptional},
		{StoreType: 0, ShortName: "JKS", Name: "Java Keystore", EntryPasswordSupported: true, StorePasswordRequired: true, CustomAliasAllowed: AliasRequired},
	}
	if !slices.Equal(types, want) {
		t.Errorf("got  %+v\nwant %+v", types, want)
	}
}

func TestJobHistoryFixture(t *testing.T) {
	c := serveFixture(t, "job_history.json", 5)
	jobs, odd, err := c.JobHistory(context.Background(), JobHistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 4 || len(odd) != 1 || odd[0].Index != 4 || !strings.Contains(odd[0].Error(), "JobHistoryId") {
		t.Fatalf("%d jobs, odd %v", len(jobs), odd)
	}
	tests := []struct {
		name                       string
		job                        JobHistory
		wantId                     string
		wantDone, wantOK, wantFail bool
	}{
		{name: "success", job: jobs[0], wantId: "aac43f8f-93e0-41c1-b05f-6b8301ca72af", wantDone: true, wantOK: true},
		{name: "failure Command will retry", job: jobs[1], wantId: "5c6d7e8f-1111-4222-8333-944455556666"},
		{name: "final failure", job: jobs[2], wantId: "5c6d7e8f-1111-4222-8333-944455556666", wantDone: true, wantFail: true},
		{name: "in process", job: jobs[3], wantId: "11111111-2222-4333-8444-555555555555"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := tt.job
			if j.JobId != tt.wantId || j.Done() != tt.wantDone || j.Succeeded() != tt.wantOK || j.Failed() != tt.wantFail {
				t.Errorf("job %+v: done %v succeeded %v failed %v", j, j.Done(), j.Succeeded(), j.Failed())
			}
		})
	}
	if !jobs[0].OperationEnd.Equal(utc(2026, 3, 19, 21, 26, 44, 7e8)) || jobs[2].Message != "Access to the path is denied." {
		t.Errorf("fields: %+v", jobs[0])
	}
}

func TestWorkflowRequestFixtures(t *testing.T) {
	tests := []struct {
		file        string
		want        RequestStatus
		wantId      int
		wantComment string
		wantDate    time.Time
	}{
		{file: "workflow_request.json", want: RequestPending, wantId: 248, wantDate: utc(2026, 11, 24, 2, 0, 1, 25e7)},
		{file: "workflow_request_denied.json", want: RequestDenied, wantId: 250, wantComment: "Not approved: the application was decommissioned.",
			wantDate: utc(2026, 11, 24, 2, 0, 9, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := serveFixture(t, tt.file, -1)
			r, err := c.CertificateRequest(context.Background(), tt.wantId)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status() != tt.want || r.Id != tt.wantId || r.DenialComment != tt.wantComment || !r.SubmissionDate.Equal(tt.wantDate) {
				t.Errorf("request %+v: status %v, want %v", r, r.Status(), tt.want)
			}
		})
	}
}

func TestErrorFixtures(t *testing.T) {
	tests := []struct {
		file   string
		status int
		want   string
	}{
		{file: "error_400.json", status: 400, want: "POST /Enrollment/Renew: HTTP 400: 0xA0110008: The format 'STORE' is invalid."},
		{file: "error_403.json", status: 403, want: "POST /Enrollment/Renew: HTTP 403: KF-AUTH-403: Access is denied due to insufficient permissions.: Missing permission /certificate_stores/schedule/4/"},
		{file: "proxy_502.html", status: 502, want: "POST /Enrollment/Renew: HTTP 502 Bad Gateway: 502 Bad Gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			err := decodeResponse("POST", "/Enrollment/Renew", tt.status, nil, fixture(t, tt.file), &RenewalResponse{}, time.Now(), nil)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// Every fixture that holds a JSON document is valid JSON, so that a
// broken fixture cannot pass a test for the wrong reason.
func TestFixturesAreJSON(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures found: %v", err)
	}
	for _, path := range files {
		if !json.Valid(fixture(t, filepath.Base(path))) {
			t.Errorf("%s is not valid JSON", path)
		}
	}
}
