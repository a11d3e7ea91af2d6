package kfsim

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestHasPermission(t *testing.T) {
	four, seven := 4, 7
	tests := []struct {
		name     string
		held     []string
		required string
		scope    *int
		want     bool
	}{
		{"exact", []string{"/certificate_stores/schedule/"}, PermStoresSchedule, nil, true},
		{"root grants all", []string{"/"}, PermEnrollPFX, nil, true},
		{"root grants scoped", []string{"/"}, PermStoresSchedule, &seven, true},
		{"parent grants child", []string{"/certificates/"}, PermEnrollPFX, nil, true},
		{"enrollment grants pfx", []string{"/certificates/enrollment/"}, PermEnrollPFX, nil, true},
		{"area grants every container", []string{"/certificate_stores/"}, PermStoresSchedule, &four, true},
		{"global grants container", []string{"/certificate_stores/schedule/"}, PermStoresSchedule, &four, true},
		{"scoped grants its container", []string{"/certificate_stores/schedule/4/"}, PermStoresSchedule, &four, true},
		{"scoped does not grant another", []string{"/certificate_stores/schedule/4/"}, PermStoresSchedule, &seven, false},
		{"scoped does not grant global", []string{"/certificate_stores/schedule/4/"}, PermStoresSchedule, nil, false},
		{"sibling does not grant", []string{"/certificate_stores/read/"}, PermStoresSchedule, nil, false},
		{"child does not grant parent", []string{"/certificates/enrollment/pfx/"}, "/certificates/enrollment/", nil, false},
		{"segment prefix is not enough", []string{"/certificate"}, PermCertificatesRead, nil, false},
		{"any case and no slashes", []string{"Certificate_Stores/Schedule"}, PermStoresSchedule, &four, true},
		{"scoped 14 is not 4", []string{"/certificate_stores/schedule/14/"}, PermStoresSchedule, &four, false},
		{"nothing held", nil, PermCertificatesRead, nil, false},
		{"empty string held", []string{""}, PermCertificatesRead, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := hasPermission(tc.held, tc.required, tc.scope); got != tc.want {
				t.Errorf("hasPermission(%q, %q, %v) = %v, want %v", tc.held, tc.required, tc.scope, got, tc.want)
			}
		})
	}
}

// TestInheritedPermissionsOverHTTP runs renew → deploy for an administrator
// holding only "/" and a service account holding only the two areas: both
// must pass every check that the exact strings pass.
func TestInheritedPermissionsOverHTTP(t *testing.T) {
	for _, who := range []cred{root, sam} {
		t.Run(who.user, func(t *testing.T) {
			h := newHarness(t, Options{})
			rn := h.renew(who, wireRenewalRequest{CertificateId: 104})
			got := h.deploy(who, wireDeployRequest{CertificateId: rn.KeyfactorId, Password: "pw",
				Stores: []wireDeployStore{{StoreId: storeWeb02, Alias: "api"}, {StoreId: storeDB}, {StoreId: storeK8s}}})
			if !slices.Equal(got.SuccessfulStores, []string{storeWeb02, storeDB, storeK8s}) || len(got.FailedStores) != 0 {
				t.Errorf("deploy = %+v", got)
			}
			stores := decode[[]wireStore](t, h.call("GET", "CertificateStores", who, nil), 200)
			if len(stores) != 7 {
				t.Errorf("%d stores visible, want 7", len(stores))
			}
		})
	}
}

// TestCollectionScopedReads: a user whose certificate permission is scoped
// to collection 3 reads and renews its certificates only when naming it.
func TestCollectionScopedReads(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"list without collection", "GET", "Certificates", nil, 403},
		{"get without collection", "GET", "Certificates/100", nil, 403},
		{"get in collection", "GET", "Certificates/100?collectionId=3", nil, 200},
		{"get outside collection", "GET", "Certificates/104?collectionId=3", nil, 404},
		{"unknown collection", "GET", "Certificates/100?collectionId=99", nil, 404},
		{"bad collection", "GET", "Certificates/100?collectionId=web", nil, 400},
		{"renew without collection", "POST", "Enrollment/Renew", wireRenewalRequest{CertificateId: 100}, 403},
		{"renew outside collection", "POST", "Enrollment/Renew?collectionId=3", wireRenewalRequest{CertificateId: 104}, 404},
		{"renew in collection", "POST", "Enrollment/Renew?collectionId=3", wireRenewalRequest{CertificateId: 105}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := h.call(tc.method, tc.path, frank, tc.body)
			if res.status != tc.want {
				t.Errorf("status = %d, want %d; body %s", res.status, tc.want, res.body)
			}
		})
	}
	res := h.call("GET", "Certificates?collectionId=3&pq.includeExpired=true", frank, nil)
	var ids []int
	for _, c := range decode[[]wireCertificate](t, res, 200) {
		ids = append(ids, c.Id)
	}
	if !slices.Equal(ids, []int{100, 105}) || res.header.Get("X-Total-Count") != "2" {
		t.Errorf("collection 3 lists %v (total %s), want [100 105]", ids, res.header.Get("X-Total-Count"))
	}
	// A globally permitted user may also name a collection: the list is
	// still the collection's.
	res = h.call("GET", "Certificates?collectionId=3&pq.queryString=Id+-ge+101", alice, nil)
	if got := decode[[]wireCertificate](t, res, 200); len(got) != 1 || got[0].Id != 105 {
		t.Errorf("alice in collection 3 = %+v", got)
	}
}

func TestSecurityMy(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		who       cred
		wantRoles []string
		want      []wireGlobalPermission
	}{
		{root, []string{"Administrator"}, []wireGlobalPermission{{"AdminPortal", "Read"}, {"AgentManagement", "Read"},
			{"Certificates", "Read"}, {"CertificateEnrollment", "EnrollPFX"}, {"CertificateStoreManagement", "Read"},
			{"CertificateStoreManagement", "Schedule"}, {"WorkflowManagement", "Read"}}},
		{bob, []string{}, []wireGlobalPermission{{"Certificates", "Read"}, {"CertificateEnrollment", "EnrollPFX"},
			{"CertificateStoreManagement", "Read"}, {"CertificateStoreManagement", "Schedule"}}},
		// Container-scoped permissions are not global ones.
		{carol, []string{}, []wireGlobalPermission{{"Certificates", "Read"}, {"CertificateEnrollment", "EnrollPFX"}}},
		{eve, []string{}, []wireGlobalPermission{}},
	}
	for _, tc := range tests {
		t.Run(tc.who.user, func(t *testing.T) {
			res := h.call("GET", "Security/My", tc.who, nil)
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(decodeRaw(t, res), &raw); err != nil || raw["Roles"] == nil || raw["GlobalPermissions"] == nil {
				t.Fatalf("body %s: want Roles and GlobalPermissions", res.body)
			}
			got := decode[wireSecurityMy](t, res, 200)
			if !slices.Equal(got.Roles, tc.wantRoles) || !slices.Equal(got.GlobalPermissions, tc.want) {
				t.Errorf("got %+v, want roles %v permissions %v", got, tc.wantRoles, tc.want)
			}
		})
	}
}

// TestOlderCommandWithoutPermissionEndpoints: the switches take the
// endpoints away, as an older or differently built Command would.
func TestOlderCommandWithoutPermissionEndpoints(t *testing.T) {
	tests := []struct {
		name                 string
		opts                 Options
		permissions, secMy   int
		listedPerms, listedM bool
	}{
		{"current", Options{}, 200, 200, true, true},
		{"no /Security/My/Permissions", Options{NoMyPermissions: true}, 404, 200, false, true},
		{"neither", Options{NoMyPermissions: true, NoSecurityMy: true}, 404, 404, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts)
			if s := h.call("GET", "Security/My/Permissions", alice, nil).status; s != tc.permissions {
				t.Errorf("GET /Security/My/Permissions = %d, want %d", s, tc.permissions)
			}
			if s := h.call("GET", "Security/My", alice, nil).status; s != tc.secMy {
				t.Errorf("GET /Security/My = %d, want %d", s, tc.secMy)
			}
			eps := decode[[]string](t, h.call("GET", "Status/Endpoints", alice, nil), 200)
			if got := slices.Contains(eps, "GET /Security/My/Permissions"); got != tc.listedPerms {
				t.Errorf("endpoints list permissions endpoint: %v, want %v", got, tc.listedPerms)
			}
			if got := slices.Contains(eps, "GET /Security/My"); got != tc.listedM {
				t.Errorf("endpoints list /Security/My: %v, want %v", got, tc.listedM)
			}
			if len(h.sim.UnknownRoutes()) != 0 {
				t.Errorf("absent endpoints counted as unknown routes")
			}
		})
	}
}

func TestPermissionListNormalises(t *testing.T) {
	got := permissionList([]string{"Certificates/Collections/Read", "/certificates/collections/read/3/", "/a/", "/a/"})
	want := []string{"/a/", "/certificates/collections/read/"}
	if !slices.Equal(got, want) {
		t.Errorf("permissionList = %q, want %q", got, want)
	}
	if got := permissionList(nil); got == nil || len(got) != 0 {
		t.Errorf("permissionList(nil) = %#v, want []", got)
	}
}
