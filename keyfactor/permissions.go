package keyfactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Permission names used by the renew → deploy path, in the access-control
// string form of Command 11 and later (GET /Security/My/Permissions).
const (
	PermCertificatesRead = "/certificates/collections/read/"
	PermEnrollPFX        = "/certificates/enrollment/pfx/"
	PermStoresRead       = "/certificate_stores/read/"
	PermStoresSchedule   = "/certificate_stores/schedule/"
)

// Where permissions were learned from (Permissions.Source).
const (
	SourceMyPermissions = "/Security/My/Permissions"
	SourceMy            = "/Security/My"
)

// v1Permissions maps the global permissions of Command's version one
// permission model (GET /Security/My on v10 and v11: {Area, Permission},
// names as the OpenAPI file lists them for /Security/Roles/{id}/Permissions/Global)
// to the access-control strings runner checks. The docs of Renew and
// Deploy name the same pairs for v10: "Certificates: Read",
// "CertificateEnrollment: EnrollPFX", "CertificateStoreManagement: Schedule".
// Areas runner does not check are left out.
var v1Permissions = map[string]string{
	"certificates:read":                   PermCertificatesRead,
	"certificateenrollment:enrollpfx":     PermEnrollPFX,
	"certificatestoremanagement:read":     PermStoresRead,
	"certificatestoremanagement:schedule": PermStoresSchedule,
}

// Permissions are the caller's permissions, as far as Command told them.
type Permissions struct {
	// Known is false when no endpoint said (older or locked-down servers);
	// Has then grants everything and Deploy decides.
	Known bool
	// Source is the endpoint they came from (SourceMyPermissions or
	// SourceMy), "" when unknown.
	Source string
	// List holds the normalised "/a/b/" strings, sorted, without duplicates.
	List []string
	// GlobalOnly is set when List holds only global permissions
	// (GET /Security/My lists no container or collection permissions).
	GlobalOnly bool
	// Why says, when Known is false, what the endpoints answered.
	Why string
}

// Has reports whether perm (e.g. PermStoresSchedule) is granted globally
// or, with containerID, for that container (for collection permissions,
// the collection id): "/a/b/N/". Command 11 and later structure the
// strings for inheritance, so any held permission that is a prefix of the
// required one grants it ("/" grants everything, "/certificate_stores/"
// grants "/certificate_stores/schedule/4/"); a container permission never
// grants the global one. When permissions are not Known, or come from a
// list of global permissions only and a scope was asked for, Has answers
// true: what cannot be seen is left to Command to refuse.
func (p Permissions) Has(perm string, containerID *int) bool {
	if !p.Known {
		return true
	}
	want := normalizePermission(perm)
	scoped := ""
	if containerID != nil {
		scoped = want + strconv.Itoa(*containerID) + "/"
	}
	for _, held := range p.List {
		if strings.HasPrefix(want, held) || (scoped != "" && strings.HasPrefix(scoped, held)) {
			return true
		}
	}
	return p.GlobalOnly && containerID != nil
}

// normalizePermission lower-cases p and gives it exactly one leading and
// trailing slash, with no empty segments: "Certificate_Stores/Schedule"
// becomes "/certificate_stores/schedule/", and "/" stays "/".
func normalizePermission(p string) string {
	segs := strings.FieldsFunc(strings.ToLower(strings.TrimSpace(p)), func(r rune) bool { return r == '/' })
	if len(segs) == 0 {
		return "/"
	}
	return "/" + strings.Join(segs, "/") + "/"
}

// newPermissions normalises, sorts and de-duplicates list.
func newPermissions(source string, list []string, globalOnly bool) Permissions {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if strings.TrimSpace(s) != "" {
			out = append(out, normalizePermission(s))
		}
	}
	slices.Sort(out)
	return Permissions{Known: true, Source: source, List: slices.Compact(out), GlobalOnly: globalOnly}
}

// fallbackStatus reports whether a permissions endpoint answered in a way
// that means "not here" or "not for you" rather than a fault: the caller
// then tries the older endpoint, or leaves the check to Deploy.
func fallbackStatus(err error) (string, bool) {
	var ae *APIError
	if !errors.As(err, &ae) {
		return "", false
	}
	switch ae.Status {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed:
		return fmt.Sprintf("GET %s: HTTP %d", ae.Endpoint, ae.Status), true
	}
	return "", false
}

// Permissions learns the caller's permissions from
// GET /Security/My/Permissions (Command 11+ strings), or, when that answers
// 400, 403, 404 or 405, from GET /Security/My (the v10/v11 global
// permissions {Area, Permission}, mapped to the same strings); when that
// too answers one of those, Known is false and Why says what was answered.
// Any other failure (transport, 401, 5xx, an undecodable answer) is
// returned as an error.
func (c *Client) Permissions(ctx context.Context) (Permissions, error) {
	var mine struct {
		Permissions []string `json:"Permissions"`
	}
	err := c.do(ctx, request{method: http.MethodGet, endpoint: SourceMyPermissions, path: SourceMyPermissions, out: &mine})
	if err == nil {
		return newPermissions(SourceMyPermissions, mine.Permissions, false), nil
	}
	why1, ok := fallbackStatus(err)
	if !ok {
		return Permissions{}, err
	}
	var my struct {
		GlobalPermissions []json.RawMessage `json:"GlobalPermissions"`
	}
	err = c.do(ctx, request{method: http.MethodGet, endpoint: SourceMy, path: SourceMy, out: &my})
	if err != nil {
		why2, ok := fallbackStatus(err)
		if !ok {
			return Permissions{}, err
		}
		return Permissions{Why: why1 + "; " + why2}, nil
	}
	var list []string
	for _, raw := range my.GlobalPermissions {
		if p, ok := v1Permission(raw); ok {
			list = append(list, p)
		}
	}
	return newPermissions(SourceMy, list, true), nil
}

// v1Permission maps one GlobalPermissions item, {"Area": …, "Permission": …}
// or the "Area:Permission" string form, to its access-control string.
func v1Permission(raw json.RawMessage) (string, bool) {
	var key string
	var pair struct{ Area, Permission string }
	if json.Unmarshal(raw, &pair) == nil && pair.Area != "" {
		key = pair.Area + ":" + pair.Permission
	} else if json.Unmarshal(raw, &key) != nil {
		return "", false
	}
	area, perm, _ := strings.Cut(key, ":")
	p, ok := v1Permissions[strings.ToLower(strings.TrimSpace(area))+":"+strings.ToLower(strings.TrimSpace(perm))]
	return p, ok
}
