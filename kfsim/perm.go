package kfsim

import (
	"sort"
	"strconv"
	"strings"
)

// Permissions the simulator checks, as Command 11 and later spell them
// (access-control strings of the version two permission model) [DOC
// Security Role Permissions v11.3 … Hosted v25.2; each endpoint's page].
const (
	// PermCertificatesRead reads certificates (GET /Certificates, Renew);
	// "/certificates/collections/read/N/" grants it for collection N only.
	PermCertificatesRead = "/certificates/collections/read/"
	// PermEnrollPFX renews and deploys (Renew, PFX Deploy).
	PermEnrollPFX = "/certificates/enrollment/pfx/"
	// PermStoresRead reads stores; "/certificate_stores/read/N/" grants it
	// for container N.
	PermStoresRead = "/certificate_stores/read/"
	// PermStoresSchedule schedules jobs on stores (Deploy, per container
	// with "/certificate_stores/schedule/N/").
	PermStoresSchedule = "/certificate_stores/schedule/"
	// PermAgentsRead reads orchestrator job history. The v1 name, "Agent
	// Management: Read", is what the terraform provider's (synthetic)
	// cassette names for GET /OrchestratorJobs/JobHistory; the v2 string is
	// the one GET /Agents documents. UNCONFIRMED for JobHistory.
	PermAgentsRead = "/agents/management/read/"
	// PermAlertsRead reads CA-level pending requests (GET
	// /Workflow/Certificates/…) [DOC v24.4 WorkflowOriginalGETCertificatesPendingID];
	// the simulator also asks it of Approve and Deny (UNCONFIRMED).
	PermAlertsRead = "/monitoring/alerts/read/"
)

// normalizePermission returns p in the canonical "/a/b/" form, lower case;
// "" for an empty string.
func normalizePermission(p string) string {
	p = strings.ToLower(strings.TrimSpace(p))
	if p == "" {
		return ""
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// scoped returns the container- or collection-scoped form of perm:
// "/certificate_stores/schedule/" and 4 → "/certificate_stores/schedule/4/".
func scoped(perm string, id int) string {
	return normalizePermission(perm) + strconv.Itoa(id) + "/"
}

// hasPermission reports whether held grants required, globally (scope nil)
// or for one container or collection (scope set), with Command 11+
// inheritance: a held permission grants every permission it is a prefix of
// on the "/a/b/" form, so "/" grants everything, "/certificates/" grants
// "/certificates/enrollment/pfx/", "/certificate_stores/" and
// "/certificate_stores/schedule/" grant "/certificate_stores/schedule/4/".
// A scoped permission never grants the global one.
func hasPermission(held []string, required string, scope *int) bool {
	target := normalizePermission(required)
	if scope != nil {
		target = scoped(required, *scope)
	}
	for _, h := range held {
		if p := normalizePermission(h); p != "" && strings.HasPrefix(target, p) {
			return true
		}
	}
	return false
}

// hasAnyScope reports whether held grants required globally or for at least
// one scope: what a list endpoint needs before it filters per record.
func hasAnyScope(held []string, required string) bool {
	req := normalizePermission(required)
	for _, h := range held {
		p := normalizePermission(h)
		if p == "" {
			continue
		}
		if strings.HasPrefix(req, p) {
			return true
		}
		if rest, ok := strings.CutPrefix(p, req); ok {
			if _, err := strconv.Atoi(strings.TrimSuffix(rest, "/")); err == nil {
				return true
			}
		}
	}
	return false
}

// permissionList is what GET /Security/My/Permissions lists: the held
// permissions normalised, sorted, without duplicates, and without a granular
// permission whose system-wide form is also held [DOC Hosted/Current
// SecurityGETMyPermissions].
func permissionList(held []string) []string {
	set := map[string]bool{}
	for _, h := range held {
		if p := normalizePermission(h); p != "" {
			set[p] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		trimmed := strings.TrimSuffix(p, "/")
		if i := strings.LastIndex(trimmed, "/"); i >= 0 {
			if _, err := strconv.Atoi(trimmed[i+1:]); err == nil && set[trimmed[:i+1]] {
				continue
			}
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// v1Permissions maps the v1 {Area, Permission} pairs that GET /Security/My
// answers [DOC v11.3 SecurityGETMy; v10.3 SecurityRolesPUT for the names] to
// the v2 strings they correspond to. The pairs are documented; which v2
// string each stands for is the simulator's reading of the two models
// (UNCONFIRMED), listed here so a client's mapping can be checked against it.
var v1Permissions = []struct {
	area, permission, v2 string
}{
	{"AdminPortal", "Read", "/portal/"},
	{"AgentManagement", "Read", PermAgentsRead},
	{"Certificates", "Read", PermCertificatesRead},
	{"CertificateEnrollment", "EnrollPFX", PermEnrollPFX},
	{"CertificateStoreManagement", "Read", PermStoresRead},
	{"CertificateStoreManagement", "Schedule", PermStoresSchedule},
	{"WorkflowManagement", "Read", PermAlertsRead},
}

// globalPermissions is the GlobalPermissions list of GET /Security/My: every
// v1 pair whose v2 string the caller holds system-wide.
func globalPermissions(held []string) []wireGlobalPermission {
	out := []wireGlobalPermission{}
	for _, m := range v1Permissions {
		if hasPermission(held, m.v2, nil) {
			out = append(out, wireGlobalPermission{Area: m.area, Permission: m.permission})
		}
	}
	return out
}
