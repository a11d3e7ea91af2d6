package kfsim

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRenewIssuesNewCertificate(t *testing.T) {
	h := newHarness(t, Options{Seed: 7})
	tests := []struct {
		name         string
		req          wireRenewalRequest
		wantOld      int
		wantTemplate string
		wantLifetime time.Duration
	}{
		{"by id, template lifetime", wireRenewalRequest{CertificateId: 100}, 100, "WebServer", 90 * 24 * time.Hour},
		{"by thumbprint with separators", wireRenewalRequest{Thumbprint: "aa:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01:00"}, 100, "WebServer", 90 * 24 * time.Hour},
		{"unknown template keeps old lifetime", wireRenewalRequest{CertificateId: 104}, 104, "Unknown", 181 * 24 * time.Hour},
		{"template from request", wireRenewalRequest{CertificateId: 102, Template: "WebServer", CertificateAuthority: `ca01\Issuing`}, 102, "WebServer", 90 * 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.clock.Advance(time.Minute)
			now := h.clock.Now()
			resp := h.renew(alice, tc.req)
			if resp.KeyfactorId == 0 || resp.KeyfactorRequestId == 0 || resp.RequestDisposition != "ISSUED" {
				t.Fatalf("response = %+v", resp)
			}
			if len(resp.Thumbprint) != 40 || len(resp.SerialNumber) != 40 || resp.IssuerDN == nil {
				t.Errorf("thumbprint %q serial %q issuer %v", resp.Thumbprint, resp.SerialNumber, resp.IssuerDN)
			}
			old, _ := h.sim.Certificate(tc.wantOld)
			c, ok := h.sim.Certificate(resp.KeyfactorId)
			if !ok {
				t.Fatalf("certificate %d not found", resp.KeyfactorId)
			}
			if c.IssuedDN != old.IssuedDN || c.IssuedCN != old.IssuedCN || c.Thumbprint != resp.Thumbprint {
				t.Errorf("new certificate %+v does not match old %+v", c, old)
			}
			if !c.NotBefore.Equal(now) || !c.ImportDate.Equal(now) || c.NotAfter.Sub(c.NotBefore) != tc.wantLifetime {
				t.Errorf("validity %s – %s (import %s), want from %s for %s", c.NotBefore, c.NotAfter, c.ImportDate, now, tc.wantLifetime)
			}
			if c.TemplateName != tc.wantTemplate || c.CertRequestId != resp.KeyfactorRequestId {
				t.Errorf("template %q request %v, want %q %d", c.TemplateName, c.CertRequestId, tc.wantTemplate, resp.KeyfactorRequestId)
			}
			if len(c.Locations) != 0 {
				t.Errorf("new certificate already has locations %+v", c.Locations)
			}
			l := h.sim.Ledger()
			rn := l.Renewals[len(l.Renewals)-1]
			if rn.OldCertificateId != tc.wantOld || rn.NewCertificateId != resp.KeyfactorId || rn.RequestId != resp.KeyfactorRequestId || rn.Pending || rn.ResponseLost {
				t.Errorf("ledger renewal = %+v", rn)
			}
		})
	}
}

func TestRenewIsReproducibleFromSeed(t *testing.T) {
	run := func(seed int64) renewAnswer {
		h := newHarness(t, Options{Seed: seed})
		return h.renew(alice, wireRenewalRequest{CertificateId: 100})
	}
	a, b, c := run(42), run(42), run(43)
	if *a.IssuerDN != *b.IssuerDN {
		t.Errorf("IssuerDN %q != %q", *a.IssuerDN, *b.IssuerDN)
	}
	a.IssuerDN, b.IssuerDN = nil, nil
	if a != b {
		t.Errorf("same seed gave %+v and %+v", a, b)
	}
	if a.Thumbprint == c.Thumbprint {
		t.Errorf("different seeds gave the same thumbprint %s", a.Thumbprint)
	}
}

func TestRenewRejects(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name   string
		body   any
		status int
		msg    string
	}{
		{"both id and thumbprint", wireRenewalRequest{CertificateId: 100, Thumbprint: "AA00000000000000000000000000000000000100"}, 400, "not both"},
		{"neither", wireRenewalRequest{}, 400, "CertificateId or Thumbprint"},
		{"unknown id", wireRenewalRequest{CertificateId: 999}, 404, "999"},
		{"unknown thumbprint", wireRenewalRequest{Thumbprint: "FFFF"}, 404, "FFFF"},
		{"requires template and CA", wireRenewalRequest{CertificateId: 102}, 400, "Template and CertificateAuthority"},
		{"requires CA", wireRenewalRequest{CertificateId: 102, Template: "WebServer"}, 400, "include CertificateAuthority"},
		{"empty body", "", 400, "body is required"},
		{"not json", "{", 400, "not valid"},
		{"lowercase keys are fine but unknown id", `{"certificateid": 998}`, 404, "998"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, h.call("POST", "Enrollment/Renew", alice, tc.body), tc.status, tc.msg)
		})
	}
	if n := len(h.sim.Ledger().Renewals); n != 0 {
		t.Errorf("rejected renewals committed %d renewals", n)
	}
}

func TestDeployWithinWindow(t *testing.T) {
	h := newHarness(t, Options{})
	rn := h.renew(alice, wireRenewalRequest{CertificateId: 104})
	h.clock.Advance(5 * time.Minute) // the last moment of the window
	got := h.deploy(alice, wireDeployRequest{
		CertificateId: rn.KeyfactorId,
		Stores:        []wireDeployStore{{StoreId: strings.ToUpper(storeK8s)}, {StoreId: storeWeb02, Alias: "api"}},
	})
	if !slices.Equal(got.SuccessfulStores, []string{storeK8s, storeWeb02}) || len(got.FailedStores) != 0 {
		t.Fatalf("deploy = %+v", got)
	}
	l := h.sim.Ledger()
	d := l.Deploys[0]
	if d.Refused != "" || d.StagedBy != `CORP\alice` || !d.StagedAt.Equal(t0) || d.CertificateId != rn.KeyfactorId || d.RequestId != rn.KeyfactorRequestId {
		t.Errorf("ledger deploy = %+v", d)
	}
	if len(l.Jobs) != 2 || l.Jobs[0].State != JobScheduled || l.Jobs[1].Alias != "api" || l.Jobs[0].Alias != rn.Thumbprint {
		t.Errorf("jobs = %+v", l.Jobs)
	}
}

func TestDeployAfterWindowExpired(t *testing.T) {
	tests := []struct {
		name string
		mode ExpiredMode
	}{
		{"error", StagingError},
		{"failed stores", StagingFailedStores},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{ExpiredStaging: tc.mode, Window: 2 * time.Minute})
			rn := h.renew(alice, wireRenewalRequest{CertificateId: 104})
			h.clock.Advance(2*time.Minute + time.Second)
			req := wireDeployRequest{CertificateId: rn.KeyfactorId, Stores: stores(storeK8s, storeWeb01)}
			res := h.call("POST", "Enrollment/PFX/Deploy", alice, req)
			switch tc.mode {
			case StagingError:
				wantError(t, res, http.StatusBadRequest, "expired")
			case StagingFailedStores:
				got := decode[wireDeployResponse](t, res, 200)
				if len(got.SuccessfulStores) != 0 || !slices.Equal(got.FailedStores, []string{storeK8s, storeWeb01}) {
					t.Errorf("deploy = %+v", got)
				}
			}
			l := h.sim.Ledger()
			if len(l.Deploys) != 1 || l.Deploys[0].Refused != RefusedExpired || len(l.Jobs) != 0 {
				t.Errorf("ledger deploys %+v jobs %+v", l.Deploys, l.Jobs)
			}
			if !h.logged("expired") {
				t.Error("refusal not logged")
			}
		})
	}
}

func TestDeployRefusedStaging(t *testing.T) {
	tests := []struct {
		name        string
		who         cred
		certID      int // 0: the renewed certificate
		wantRefused string
		wantMsg     string
	}{
		{"another user", bob, 0, RefusedOtherUser, "another user"},
		{"never staged", alice, 100, RefusedNotStaged, "No staging data"},
		{"same user any case", cred{`corp\ALICE`, "alice-pw"}, 0, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			rn := h.renew(alice, wireRenewalRequest{CertificateId: 104})
			id := tc.certID
			if id == 0 {
				id = rn.KeyfactorId
			}
			res := h.call("POST", "Enrollment/PFX/Deploy", tc.who, wireDeployRequest{CertificateId: id, Stores: stores(storeK8s)})
			if tc.wantRefused == "" {
				decode[wireDeployResponse](t, res, 200)
			} else {
				wantError(t, res, http.StatusBadRequest, tc.wantMsg)
			}
			if got := h.sim.Ledger().Deploys[0].Refused; got != tc.wantRefused {
				t.Errorf("Refused = %q, want %q", got, tc.wantRefused)
			}
		})
	}
}

func TestDeployPermissionPerContainer(t *testing.T) {
	all := []string{storeWeb01, storeDB, storeK8s, storeWeb02}
	tests := []struct {
		name        string
		who         cred
		wantOK      []string
		wantFailed  []string
		wantReasons map[string]string
	}{
		{"global schedule", bob, all, []string{}, nil},
		{"container 4 only", carol, []string{storeWeb01, storeWeb02}, []string{storeDB, storeK8s}, map[string]string{
			storeDB:  "permission /certificate_stores/schedule/ missing for container 7",
			storeK8s: "permission /certificate_stores/schedule/ missing",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			rn := h.renew(tc.who, wireRenewalRequest{CertificateId: 104})
			got := h.deploy(tc.who, wireDeployRequest{CertificateId: rn.KeyfactorId, Stores: stores(all...), Password: "entry-pw"})
			if !slices.Equal(got.SuccessfulStores, tc.wantOK) || !slices.Equal(got.FailedStores, tc.wantFailed) {
				t.Errorf("deploy = %+v, want ok %v failed %v", got, tc.wantOK, tc.wantFailed)
			}
			d := h.sim.Ledger().Deploys[0]
			for id, want := range tc.wantReasons {
				if d.Reasons[id] != want {
					t.Errorf("reason for %s = %q, want %q", id, d.Reasons[id], want)
				}
			}
		})
	}
}

func TestDeployStoreChecks(t *testing.T) {
	const unknown = "99999999-0000-4000-8000-000000000000"
	tests := []struct {
		name       string
		password   string
		stores     []string
		wantOK     []string
		wantFailed []string
		reason     string
	}{
		{"unknown store", "", []string{unknown, storeK8s}, []string{storeK8s}, []string{unknown}, "store not found"},
		{"entry password missing", "", []string{storeDB}, []string{}, []string{storeDB}, "store requires an entry password"},
		{"entry password given", "pw", []string{storeDB}, []string{storeDB}, []string{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			rn := h.renew(alice, wireRenewalRequest{CertificateId: 104})
			got := h.deploy(alice, wireDeployRequest{CertificateId: rn.KeyfactorId, Stores: stores(tc.stores...), Password: tc.password})
			if !slices.Equal(got.SuccessfulStores, tc.wantOK) || !slices.Equal(got.FailedStores, tc.wantFailed) {
				t.Errorf("deploy = %+v, want ok %v failed %v", got, tc.wantOK, tc.wantFailed)
			}
			l := h.sim.Ledger()
			if len(l.Jobs) != len(tc.wantOK) {
				t.Errorf("%d jobs, want %d", len(l.Jobs), len(tc.wantOK))
			}
			if tc.reason != "" && l.Deploys[0].Reasons[tc.wantFailed[0]] != tc.reason {
				t.Errorf("reasons = %v, want %q", l.Deploys[0].Reasons, tc.reason)
			}
		})
	}
}

func TestDeployRejects(t *testing.T) {
	h := newHarness(t, Options{})
	rn := h.renew(alice, wireRenewalRequest{CertificateId: 104})
	tests := []struct {
		name   string
		req    wireDeployRequest
		status int
		msg    string
	}{
		{"no stores", wireDeployRequest{CertificateId: rn.KeyfactorId}, 400, "Stores is required"},
		{"no certificate", wireDeployRequest{Stores: stores(storeK8s)}, 400, "CertificateId or RequestId"},
		{"unknown certificate", wireDeployRequest{CertificateId: 999, Stores: stores(storeK8s)}, 404, "999"},
		{"unknown request", wireDeployRequest{RequestId: 5, Stores: stores(storeK8s)}, 404, "request with id 5"},
		{"mismatched ids", wireDeployRequest{CertificateId: rn.KeyfactorId, RequestId: rn.KeyfactorRequestId + 1, Stores: stores(storeK8s)}, 400, "does not belong"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, h.call("POST", "Enrollment/PFX/Deploy", alice, tc.req), tc.status, tc.msg)
		})
	}
	if l := h.sim.Ledger(); len(l.Deploys) != 0 || len(l.Jobs) != 0 {
		t.Errorf("rejected deploys recorded: %+v", l.Deploys)
	}
}

func TestDeployByRequestIdAndRetry(t *testing.T) {
	h := newHarness(t, Options{})
	rn := h.renew(alice, wireRenewalRequest{CertificateId: 104})
	// Keyfactor's Go client sends both ids; a retried deploy inside the
	// window runs again.
	for i := 0; i < 2; i++ {
		got := h.deploy(alice, wireDeployRequest{RequestId: rn.KeyfactorRequestId, CertificateId: rn.KeyfactorId, Stores: stores(storeK8s)})
		if !slices.Equal(got.SuccessfulStores, []string{storeK8s}) {
			t.Fatalf("deploy %d = %+v", i, got)
		}
	}
	got := h.deploy(alice, wireDeployRequest{RequestId: rn.KeyfactorRequestId, Stores: stores(storeWeb01)})
	if !slices.Equal(got.SuccessfulStores, []string{storeWeb01}) {
		t.Fatalf("deploy by request id = %+v", got)
	}
	l := h.sim.Ledger()
	if len(l.Deploys) != 3 || len(l.Jobs) != 3 || l.Deploys[2].CertificateId != rn.KeyfactorId {
		t.Errorf("deploys %+v jobs %d", l.Deploys, len(l.Jobs))
	}
}

func TestApprovalFlow(t *testing.T) {
	for _, viaHTTP := range []bool{false, true} {
		name := "Approve"
		if viaHTTP {
			name = "POST /_kfsim/approve"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Options{JobDelay: 10 * time.Second})
			rn := h.renew(alice, wireRenewalRequest{CertificateId: 101})
			if rn.KeyfactorId != 0 || rn.KeyfactorRequestId == 0 || rn.RequestDisposition != "EXTERNAL VALIDATION" || rn.Thumbprint != "" {
				t.Fatalf("pending renewal = %+v", rn)
			}
			if l := h.sim.Ledger(); !l.Renewals[0].Pending || l.Renewals[0].NewCertificateId != 0 {
				t.Fatalf("ledger renewal = %+v", l.Renewals[0])
			}
			got := h.deploy(alice, wireDeployRequest{RequestId: rn.KeyfactorRequestId, Stores: stores(storeK8s)})
			if !slices.Equal(got.SuccessfulStores, []string{storeK8s}) {
				t.Fatalf("deploy = %+v", got)
			}
			h.clock.Advance(time.Hour) // nothing runs while approval is pending
			l := h.sim.Ledger()
			if l.Jobs[0].State != JobAwaitingApproval || l.Deploys[0].CertificateId != 0 {
				t.Fatalf("job %+v deploy %+v", l.Jobs[0], l.Deploys[0])
			}

			var certID int
			if viaHTTP {
				res := h.call("POST", "/_kfsim/approve/"+itoa(rn.KeyfactorRequestId), cred{}, nil)
				certID = decode[map[string]int](t, res, 200)["CertificateId"]
			} else {
				var err error
				if certID, err = h.sim.Approve(rn.KeyfactorRequestId); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := h.sim.Approve(rn.KeyfactorRequestId); err == nil {
				t.Error("second Approve succeeded")
			}
			if _, err := h.sim.Approve(12345); err == nil {
				t.Error("Approve of an unknown request succeeded")
			}
			l = h.sim.Ledger()
			if l.Renewals[0].Pending || l.Renewals[0].NewCertificateId != certID {
				t.Errorf("ledger renewal after approval = %+v", l.Renewals[0])
			}
			if j := l.Jobs[0]; j.State != JobScheduled || j.CertificateId != certID || !j.RunAt.Equal(h.clock.Now().Add(10*time.Second)) {
				t.Errorf("job after approval = %+v", j)
			}
			h.clock.Advance(10 * time.Second)
			c, _ := h.sim.Certificate(certID)
			if len(c.Locations) != 1 || c.Locations[0].CertStoreId != storeK8s || c.Locations[0].Alias != c.Thumbprint {
				t.Errorf("locations = %+v", c.Locations)
			}
			if c.IssuedDN != "CN=db.example.com" || c.NotAfter.Sub(c.NotBefore) != 720*time.Hour {
				t.Errorf("issued certificate = %+v", c)
			}
			// The issued certificate is staged for the requester from its
			// issue on.
			got = h.deploy(alice, wireDeployRequest{CertificateId: certID, Stores: stores(storeWeb01)})
			if !slices.Equal(got.SuccessfulStores, []string{storeWeb01}) {
				t.Errorf("deploy after approval = %+v", got)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestLegacyDeployShape(t *testing.T) {
	h := newHarness(t, Options{})
	rn := h.renew(alice, wireRenewalRequest{CertificateId: 104})
	// Keyfactor's Go client body: ids plus alias/overwrite per store type.
	body := `{"StoreIds":["` + storeWeb01 + `","` + storeK8s + `"],"Password":"",` +
		`"StoreTypes":[{"StoreTypeId":2,"Alias":"iis-alias","Overwrite":true},{"StoreTypeId":154}],` +
		`"CertificateId":` + itoa(rn.KeyfactorId) + `,"RequestId":` + itoa(rn.KeyfactorRequestId) + `}`
	got := decode[wireDeployResponse](t, h.call("POST", "Enrollment/PFX/Deploy", alice, body), 200)
	if !slices.Equal(got.SuccessfulStores, []string{storeWeb01, storeK8s}) {
		t.Fatalf("deploy = %+v", got)
	}
	l := h.sim.Ledger()
	if !l.Deploys[0].Legacy {
		t.Error("deploy not marked Legacy")
	}
	if j := l.Jobs[0]; j.StoreId != storeWeb01 || j.Alias != "iis-alias" || !j.Overwrite {
		t.Errorf("IIS job = %+v", j)
	}
	if j := l.Jobs[1]; j.Alias != rn.Thumbprint || j.Overwrite {
		t.Errorf("K8S job = %+v", j)
	}
}
