package keyfactor

import (
	"strconv"
	"strings"
)

// Permission names used by the renew → deploy path (Command 11+ style, as
// returned by GET /Security/My/Permissions).
const (
	PermCertificatesRead = "/certificates/collections/read/"
	PermEnrollPFX        = "/certificates/enrollment/pfx/"
	PermStoresRead       = "/certificate_stores/read/"
	PermStoresSchedule   = "/certificate_stores/schedule/"
)

// HasPermission reports whether perms grant perm, either globally
// ("/certificate_stores/schedule/") or, when containerID is not nil, for
// that container only ("/certificate_stores/schedule/4/"). Comparison
// ignores case and a missing trailing slash.
func HasPermission(perms []string, perm string, containerID *int) bool {
	want := normalizePermission(perm)
	var scoped string
	if containerID != nil {
		scoped = want + strconv.Itoa(*containerID) + "/"
	}
	for _, p := range perms {
		p = normalizePermission(p)
		if p == want || (scoped != "" && p == scoped) {
			return true
		}
	}
	return false
}

func normalizePermission(p string) string {
	p = strings.ToLower(strings.TrimSpace(p))
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}
