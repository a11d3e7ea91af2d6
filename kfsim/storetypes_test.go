package kfsim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStoreTypesEndpoint(t *testing.T) {
	h := newHarness(t, Options{})
	if err := h.sim.Load(Fixture{Stores: []Store{{Id: "77777777-7777-4777-8777-777777777777", CertStoreType: 9}}}); err != nil {
		t.Fatal(err)
	}
	res := h.call("GET", "CertificateStoreTypes", alice, nil)
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(decodeRaw(t, res), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 5 || res.header.Get("X-Total-Count") != "5" {
		t.Fatalf("%d store types (X-Total-Count %s), want 5 (four declared, one generated)", len(raw), res.header.Get("X-Total-Count"))
	}
	want := map[string]struct{ alias, passwords string }{
		"2":   {`"Optional"`, `{"EntrySupported":false,"StoreRequired":false,"Style":"Default"}`},
		"3":   {`"Optional"`, `{"EntrySupported":true,"StoreRequired":false,"Style":"Default"}`},
		"5":   {`"Required"`, `{"EntrySupported":false,"StoreRequired":false,"Style":"Default"}`},
		"9":   {`"Optional"`, `{"EntrySupported":false,"StoreRequired":false,"Style":"Default"}`},
		"154": {`"Forbidden"`, `{"EntrySupported":false,"StoreRequired":false,"Style":"Default"}`},
	}
	for _, st := range raw {
		w, ok := want[string(st["StoreType"])]
		if !ok {
			t.Errorf("unexpected store type %s", st["StoreType"])
			continue
		}
		if string(st["CustomAliasAllowed"]) != w.alias || string(st["PasswordOptions"]) != w.passwords {
			t.Errorf("store type %s: CustomAliasAllowed %s PasswordOptions %s, want %s %s",
				st["StoreType"], st["CustomAliasAllowed"], st["PasswordOptions"], w.alias, w.passwords)
		}
		for _, k := range []string{"Name", "ShortName", "Capability", "SupportedOperations", "Properties", "EntryParameters", "PrivateKeyAllowed", "InventoryJobType", "ManagementJobType"} {
			if st[k] == nil {
				t.Errorf("store type %s lacks %s", st["StoreType"], k)
			}
		}
	}

	one := decode[wireStoreType](t, h.call("GET", "CertificateStoreTypes/154", alice, nil), 200)
	if one.ShortName != "K8STLSSecr" {
		t.Errorf("store type 154 = %+v", one)
	}
	byName := decode[[]wireStoreType](t, h.call("GET", "CertificateStoreTypes/Name/k8stlssecr", alice, nil), 200)
	if len(byName) != 1 || byName[0].StoreType != 154 {
		t.Errorf("by name = %+v", byName)
	}
	wantError(t, h.call("GET", "CertificateStoreTypes/77", alice, nil), 404, "77")
	wantError(t, h.call("GET", "CertificateStoreTypes", eve, nil), 403, PermStoresRead)
	if s := h.call("GET", "CertificateStoreTypes", carol, nil).status; s != 200 {
		t.Errorf("container-scoped reader gets %d, want 200", s)
	}

	v10 := newHarness(t, Options{NumericStoreTypeEnums: true})
	num := decode[[]map[string]any](t, v10.call("GET", "CertificateStoreTypes?QueryString="+strings.ReplaceAll("StoreType -eq 154", " ", "+"), alice, nil), 200)
	if len(num) != 1 || num[0]["CustomAliasAllowed"] != float64(0) || num[0]["PasswordOptions"].(map[string]any)["Style"] != float64(0) {
		t.Errorf("v10 shape = %+v", num)
	}
}

func TestDeployFollowsStoreTypes(t *testing.T) {
	const pemStore = "99999999-9999-4999-8999-999999999999"
	tests := []struct {
		name     string
		req      wireDeployRequest
		wantOK   []string
		wantFail map[string]string
	}{
		{"required alias given", wireDeployRequest{Stores: []wireDeployStore{{StoreId: storeF5, Alias: "web_2026"}}}, []string{storeF5}, nil},
		{"required alias missing", wireDeployRequest{Stores: []wireDeployStore{{StoreId: storeF5}}}, nil,
			map[string]string{storeF5: "store type F5-SL-REST requires an alias"}},
		{"forbidden alias given", wireDeployRequest{Stores: []wireDeployStore{{StoreId: storeK8s, Alias: "tls"}}}, nil,
			map[string]string{storeK8s: "store type K8STLSSecr does not allow a custom alias"}},
		{"forbidden alias absent", wireDeployRequest{Stores: []wireDeployStore{{StoreId: storeK8s}}}, []string{storeK8s}, nil},
		{"type needs entry password", wireDeployRequest{Stores: []wireDeployStore{{StoreId: pemStore}}}, nil,
			map[string]string{pemStore: "store type PEMX requires an entry password"}},
		{"type gets entry password", wireDeployRequest{Password: "pw", Stores: []wireDeployStore{{StoreId: pemStore}}}, []string{pemStore}, nil},
		{"legacy shape alias per type", wireDeployRequest{StoreIds: []string{storeF5, storeK8s},
			StoreTypes: []wireLegacyStoreType{{StoreTypeId: 5, Alias: "legacy"}, {StoreTypeId: 154}}}, []string{storeF5, storeK8s}, nil},
		{"legacy shape alias missing for its type", wireDeployRequest{StoreIds: []string{storeF5},
			StoreTypes: []wireLegacyStoreType{{StoreTypeId: 2, Alias: "other"}}}, nil,
			map[string]string{storeF5: "store type F5-SL-REST requires an alias"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			if err := h.sim.Load(Fixture{
				StoreTypes: []StoreType{{StoreType: 11, ShortName: "PEMX", EntryPasswordRequired: true}},
				Stores:     []Store{{Id: pemStore, CertStoreType: 11, ClientMachine: "pem01", StorePath: "/etc/ssl/app.pem"}},
			}); err != nil {
				t.Fatal(err)
			}
			rn := h.renew(alice, wireRenewalRequest{CertificateId: 104})
			tc.req.CertificateId = rn.KeyfactorId
			got := h.deploy(alice, tc.req)
			var wantFailed []string
			for id := range tc.wantFail {
				wantFailed = append(wantFailed, id)
			}
			if !slices.Equal(got.SuccessfulStores, append([]string{}, tc.wantOK...)) || !slices.Equal(got.FailedStores, append([]string{}, wantFailed...)) {
				t.Errorf("deploy = %+v, want ok %v failed %v", got, tc.wantOK, wantFailed)
			}
			d := h.sim.Ledger().Deploys[0]
			for id, reason := range tc.wantFail {
				if d.Reasons[id] != reason {
					t.Errorf("reason for %s = %q, want %q", id, d.Reasons[id], reason)
				}
			}
		})
	}
}

// TestUnapprovedAndAgentlessStores: Deploy accepts them, their jobs fail
// with a message, and the store model says why.
func TestUnapprovedAndAgentlessStores(t *testing.T) {
	h := newHarness(t, Options{JobDelay: 5 * time.Second})
	rn := h.renew(bob, wireRenewalRequest{CertificateId: 104})
	got := h.deploy(bob, wireDeployRequest{CertificateId: rn.KeyfactorId, Stores: stores(storeUnapproved, storeNoAgent, storeWeb02)})
	if !slices.Equal(got.SuccessfulStores, []string{storeUnapproved, storeNoAgent, storeWeb02}) {
		t.Fatalf("deploy = %+v: the jobs are created, they fail later", got)
	}
	h.clock.Advance(5 * time.Second)
	l := h.sim.Ledger()
	want := []struct{ state, msg string }{
		{JobFailed, "is not approved"},
		{JobFailed, "No orchestrator is assigned"},
		{JobSucceeded, ""},
	}
	for i, w := range want {
		if j := l.Jobs[i]; j.State != w.state || (w.msg == "") != (j.Message == "") || !strings.Contains(j.Message, w.msg) {
			t.Errorf("job %d = %+v, want %s %q", i, j, w.state, w.msg)
		}
	}
	for _, tc := range []struct {
		id                      string
		approved, agentAssigned bool
	}{{storeUnapproved, false, true}, {storeNoAgent, true, false}, {storeWeb02, true, true}} {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(decodeRaw(t, h.call("GET", "CertificateStores/"+tc.id, bob, nil)), &raw); err != nil {
			t.Fatal(err)
		}
		if string(raw["Approved"]) != boolText(tc.approved) || string(raw["AgentAssigned"]) != boolText(tc.agentAssigned) ||
			(string(raw["AgentId"]) == "null") != !tc.agentAssigned {
			t.Errorf("store %s: Approved %s AgentAssigned %s AgentId %s", tc.id, raw["Approved"], raw["AgentAssigned"], raw["AgentId"])
		}
	}
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TestRenewDispositions: templates and certificates configured to be
// denied or to fail answer 200 with the disposition, no ids, and a message;
// nothing is issued or staged.
func TestRenewDispositions(t *testing.T) {
	tests := []struct {
		name        string
		fixture     Fixture
		certID      int
		disposition string
		message     string
	}{
		{"template denies", Fixture{}, 106, "DENIED", "Denied by policy: RSA 1024 is not allowed."},
		{"template fails", Fixture{Certificates: []Certificate{{Id: 400, TemplateName: "Broken"}}}, 400, "FAILED", "failed to process the request for certificate 400"},
		{"certificate denies", Fixture{Certificates: []Certificate{{Id: 401, TemplateName: "WebServer", RenewDisposition: "denied", DispositionMessage: "no"}}}, 401, "DENIED", "no"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			if err := h.sim.Load(tc.fixture); err != nil {
				t.Fatal(err)
			}
			res := h.call("POST", "Enrollment/Renew", alice, wireRenewalRequest{CertificateId: tc.certID})
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(decodeRaw(t, res), &raw); err != nil {
				t.Fatal(err)
			}
			if string(raw["KeyfactorId"]) != "0" || string(raw["KeyfactorRequestId"]) != "0" || string(raw["Thumbprint"]) != "null" {
				t.Errorf("answer %s: want no ids", res.body)
			}
			got := decode[renewAnswer](t, res, http.StatusOK)
			if got.RequestDisposition != tc.disposition || !strings.Contains(got.DispositionMessage, tc.message) {
				t.Errorf("answer = %+v, want %s %q", got, tc.disposition, tc.message)
			}
			l := h.sim.Ledger()
			rn := l.Renewals[0]
			if rn.Disposition != tc.disposition || rn.NewCertificateId != 0 || rn.RequestId != 0 || rn.Denied != (tc.disposition == "DENIED") {
				t.Errorf("ledger renewal = %+v", rn)
			}
			if issued := decode[[]wireCertificate](t, h.call("GET", "Certificates?pq.queryString=CertRequestId+-ne+NULL", alice, nil), 200); len(issued) != 0 {
				t.Errorf("certificates were issued: %+v", issued)
			}
		})
	}
}

// Store types are paged with the cstquery. prefix the OpenAPI file gives
// their list (and unprefixed, like every list).
func TestStoreTypesArePagedWithTheirOwnPrefix(t *testing.T) {
	h := newHarness(t, Options{MaxPageSize: 2})
	if err := h.sim.Load(Fixture{Stores: []Store{{Id: "77777777-7777-4777-8777-777777777777", CertStoreType: 9}}}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for page := 1; page <= 3; page++ {
		for _, st := range decode[[]wireStoreType](t, h.call("GET", "CertificateStoreTypes?cstquery.pageReturned="+itoa(page), alice, nil), 200) {
			seen[st.ShortName] = true
		}
	}
	if len(seen) != 5 {
		t.Errorf("three pages of two held %d distinct store types, want all 5: %v", len(seen), seen)
	}
}
