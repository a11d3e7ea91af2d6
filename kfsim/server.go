package kfsim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Error codes. Only 0xA0110008 (invalid value) was seen from a real server
// and 0xA011004A (invalid sort field) in a mock; the rest are the
// simulator's own, in the same shape, so a client cannot rely on particular
// values.
const (
	codeMissingHeader = "0xA0110001"
	codeNotFound      = "0xA0110005"
	codeInvalid       = "0xA0110008"
	codeQuery         = "0xA011000B"
	codeSort          = "0xA011004A"
	codeForbidden     = "0xA0110019"
	codeStaging       = "0xA0110031"
	codeNoRoute       = "0xA0110404"
	codeInternal      = "0xA0000001"
)

// maxBody bounds request bodies; Command's own limit is far larger, but no
// request of this API comes close.
const maxBody = 1 << 20

// token is an issued OAuth access token; it expires on the simulator's
// clock.
type token struct {
	clientID string
	expires  time.Time
}

// call is one request being handled, with everything handlers need. It is
// only used with s.mu held.
type call struct {
	r        *http.Request
	query    map[string]string // lowercase keys, first value
	body     []byte
	param    string
	identity string
	perms    []string
	roles    []string
	now      time.Time
	lost     bool // the client will not get a usable answer
}

// response is a handler's answer, written after fault handling decides how.
type response struct {
	status int
	header http.Header
	body   []byte
}

// route is one API endpoint under the base path.
type route struct {
	method   string
	segs     []string // lowercase; "{id}" is the parameter
	key      string   // fault and ledger key
	template string   // "GET /Certificates/{id}"
	handle   func(s *Server, c *call) response
	// visible reports whether GET /Status/Endpoints lists the route for
	// these permissions.
	visible func(perms []string) bool
}

func always([]string) bool { return true }

func anyScope(perm string) func([]string) bool {
	return func(perms []string) bool { return hasAnyScope(perms, perm) }
}

func allOf(perms ...string) func([]string) bool {
	return func(have []string) bool {
		for _, p := range perms {
			if !hasPermission(have, p, nil) {
				return false
			}
		}
		return true
	}
}

// routes is filled in init because GET /Status/Endpoints lists it.
var routes []route

func init() {
	routes = []route{
		{"GET", segs("Status/Endpoints"), "status", "GET /Status/Endpoints", (*Server).statusEndpoints, always},
		{"GET", segs("Security/My/Permissions"), "permissions", "GET /Security/My/Permissions", (*Server).myPermissions, always},
		{"GET", segs("Security/My"), "permissions", "GET /Security/My", (*Server).securityMy, always},
		{"GET", segs("Certificates"), "certificates", "GET /Certificates", (*Server).listCertificates, anyScope(PermCertificatesRead)},
		{"GET", segs("Certificates/{id}"), "certificate", "GET /Certificates/{id}", (*Server).getCertificate, anyScope(PermCertificatesRead)},
		{"GET", segs("CertificateStores"), "stores", "GET /CertificateStores", (*Server).listStores, anyScope(PermStoresRead)},
		{"GET", segs("CertificateStores/{id}"), "store", "GET /CertificateStores/{id}", (*Server).getStore, anyScope(PermStoresRead)},
		{"GET", segs("CertificateStoreTypes"), "storetypes", "GET /CertificateStoreTypes", (*Server).listStoreTypes, anyScope(PermStoresRead)},
		{"GET", segs("CertificateStoreTypes/{id}"), "storetypes", "GET /CertificateStoreTypes/{id}", (*Server).getStoreType, anyScope(PermStoresRead)},
		{"GET", segs("CertificateStoreTypes/Name/{id}"), "storetypes", "GET /CertificateStoreTypes/Name/{name}", (*Server).getStoreTypeByName, anyScope(PermStoresRead)},
		{"POST", segs("Enrollment/Renew"), "renew", "POST /Enrollment/Renew", (*Server).renew, allOf(PermEnrollPFX)},
		{"POST", segs("Enrollment/PFX/Deploy"), "deploy", "POST /Enrollment/PFX/Deploy", (*Server).deploy, allOf(PermEnrollPFX)},
		{"GET", segs("Workflow/Certificates/Pending"), "workflow", "GET /Workflow/Certificates/Pending", (*Server).pendingRequests, allOf(PermAlertsRead)},
		{"GET", segs("Workflow/Certificates/Denied"), "workflow", "GET /Workflow/Certificates/Denied", (*Server).deniedRequests, allOf(PermAlertsRead)},
		{"GET", segs("Workflow/Certificates/{id}"), "workflow", "GET /Workflow/Certificates/{id}", (*Server).requestDetails, allOf(PermAlertsRead)},
		{"POST", segs("Workflow/Certificates/Approve"), "workflow", "POST /Workflow/Certificates/Approve", (*Server).approveRequests, allOf(PermAlertsRead)},
		{"POST", segs("Workflow/Certificates/Deny"), "workflow", "POST /Workflow/Certificates/Deny", (*Server).denyRequests, allOf(PermAlertsRead)},
		{"GET", segs("OrchestratorJobs/JobHistory"), "jobhistory", "GET /OrchestratorJobs/JobHistory", (*Server).jobHistory, allOf(PermAgentsRead)},
	}
}

func segs(path string) []string {
	return strings.Split(strings.ToLower(path), "/")
}

// endpoint is how ServeHTTP treats a request: which handler, under which
// key, with which checks.
type endpoint struct {
	key     string
	api     bool // needs credentials and x-keyfactor-requested-with
	handle  func(s *Server, c *call) response
	param   string
	unknown bool // not a route the simulator serves (404/405)
}

// ServeHTTP serves the API under BasePath and the simulator's own routes
// under /_kfsim/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	lower := strings.ToLower(path)
	switch {
	case lower == "/_kfsim/ledger" && r.Method == http.MethodGet:
		s.serveLedger(w)
		return
	case strings.HasPrefix(lower, "/_kfsim/approve/") && r.Method == http.MethodPost:
		s.serveDecision(w, r, true, strings.Trim(path[len("/_kfsim/approve/"):], "/"))
		return
	case strings.HasPrefix(lower, "/_kfsim/deny/") && r.Method == http.MethodPost:
		s.serveDecision(w, r, false, strings.Trim(path[len("/_kfsim/deny/"):], "/"))
		return
	case lower == "/_kfsim/oauth/token" && r.Method == http.MethodPost:
		s.serve(w, r, endpoint{key: "token", handle: (*Server).issueToken})
		return
	}
	ep := s.match(r.Method, path)
	if limit := s.maxQueryString(); len(r.URL.RawQuery) > limit {
		ep = queryTooLong(ep, r.Method, path, len(r.URL.RawQuery), limit)
	}
	s.serve(w, r, ep)
}

// defaultMaxQueryString is IIS request filtering's default maxQueryString.
const defaultMaxQueryString = 2048

func (s *Server) maxQueryString() int {
	if s.opts.MaxQueryString > 0 {
		return s.opts.MaxQueryString
	}
	return defaultMaxQueryString
}

// queryTooLong answers as IIS does (404.15, an HTML page). Under the
// default limit it is recorded as an unknown route: a client that sends
// one is the bug, since it is meant to keep its batched reads inside the
// limit. A test that sets a stricter limit expects the refusals.
func queryTooLong(ep endpoint, method, path string, n, limit int) endpoint {
	return endpoint{key: ep.key, unknown: ep.unknown || limit == defaultMaxQueryString, handle: func(s *Server, c *call) response {
		s.logf("kfsim: %s %s has a query string of %d bytes; IIS refuses more than %d (404.15)", method, path, n, limit)
		return htmlResponse(http.StatusNotFound, "<html><head><title>404 - Not Found</title></head><body>"+
			"<h3>HTTP Error 404.15 - Not Found</h3><p>The request filtering module is configured to deny a request where the query string is too long.</p></body></html>")
	}}
}

// match finds the route of a request. Among the routes whose path fits, the
// most literal ones win (so /Workflow/Certificates/Pending is not read as
// an id); a path that fits only with another method is 405. Everything else
// gets a handler that answers 404 and logs loudly, because a client calling
// an endpoint the simulator lacks is a bug to fix on one side or the other;
// both are recorded in Ledger.UnknownRoutes.
func (s *Server) match(method, path string) endpoint {
	base := strings.ToLower(s.base) + "/"
	if strings.HasPrefix(strings.ToLower(path), base) {
		parts := strings.Split(strings.Trim(path[len(base):], "/"), "/")
		best, bestLiterals := -1, -1
		var allowed []string
		for i, rt := range routes {
			literals, ok := matchSegs(rt.segs, parts)
			if !ok || literals < bestLiterals {
				continue
			}
			if literals > bestLiterals {
				best, bestLiterals, allowed = -1, literals, nil
			}
			if rt.method == method {
				best = i
			} else {
				allowed = append(allowed, rt.method)
			}
		}
		if best >= 0 {
			rt := routes[best]
			param, _ := routeParam(rt.segs, parts)
			if !s.absent(rt) {
				return endpoint{key: rt.key, api: true, handle: rt.handle, param: param}
			}
			return endpoint{key: rt.key, api: true, handle: func(s *Server, c *call) response {
				return errorResponse(http.StatusNotFound, codeNoRoute, "No HTTP resource was found that matches the request URI '"+path+"'.")
			}}
		}
		if len(allowed) > 0 {
			return endpoint{key: "unknown", unknown: true, handle: func(s *Server, c *call) response {
				s.logf("kfsim: method %s not allowed on %s (allowed: %s)", method, path, strings.Join(allowed, ", "))
				resp := errorResponse(http.StatusMethodNotAllowed, codeNoRoute, "The requested resource does not support http method '"+method+"'.")
				resp.header.Set("Allow", strings.Join(allowed, ", "))
				return resp
			}}
		}
	}
	return endpoint{key: "unknown", unknown: true, handle: func(s *Server, c *call) response {
		s.logf("kfsim: UNKNOWN ROUTE %s %s (the simulator serves %s under %s)", method, path, strings.Join(routeTemplates(), ", "), s.base)
		return errorResponse(http.StatusNotFound, codeNoRoute, "No HTTP resource was found that matches the request URI '"+path+"'.")
	}}
}

// absent reports whether the options make a known route answer 404, as an
// older or differently built Command without it would. Such a 404 is
// expected by a client probing for the endpoint, so it is not an unknown
// route.
func (s *Server) absent(rt route) bool {
	switch rt.template {
	case "GET /Security/My/Permissions":
		return s.opts.NoMyPermissions
	case "GET /Security/My":
		return s.opts.NoSecurityMy
	}
	return false
}

// matchSegs reports whether a route's pattern fits the path's segments, and
// how many of them are literal.
func matchSegs(pattern, parts []string) (int, bool) {
	if len(pattern) != len(parts) {
		return 0, false
	}
	literals := 0
	for i, p := range pattern {
		if p == "{id}" {
			if parts[i] == "" {
				return 0, false
			}
			continue
		}
		if !strings.EqualFold(p, parts[i]) {
			return 0, false
		}
		literals++
	}
	return literals, true
}

func routeParam(pattern, parts []string) (string, bool) {
	for i, p := range pattern {
		if p == "{id}" {
			v, err := url.PathUnescape(parts[i])
			if err != nil {
				return parts[i], true
			}
			return v, true
		}
	}
	return "", false
}

func routeTemplates() []string {
	out := make([]string, len(routes))
	for i, rt := range routes {
		out[i] = rt.template
	}
	return out
}

func lowerQuery(v url.Values) map[string]string {
	out := make(map[string]string, len(v))
	for k, vals := range v {
		k = strings.ToLower(k)
		if _, seen := out[k]; !seen && len(vals) > 0 {
			out[k] = vals[0]
		}
	}
	return out
}

// identityOf names a user as Command would: "DOMAIN\user", or "user".
func identityOf(u *User) string {
	if u.Domain == "" {
		return u.Username
	}
	return u.Domain + `\` + u.Username
}

// principal is an authenticated caller.
type principal struct {
	identity string
	perms    []string
	roles    []string
}

// authenticate checks Basic or Bearer credentials; Bearer tokens expire on
// the simulator's clock. Callers hold s.mu.
func (s *Server) authenticate(r *http.Request, now time.Time) (principal, bool) {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return principal{}, false
		}
		name, pass, found := strings.Cut(string(raw), ":")
		if !found {
			return principal{}, false
		}
		domain, user, hasDomain := strings.Cut(name, `\`)
		if !hasDomain {
			domain, user = "", name
			if u, d, at := strings.Cut(name, "@"); at {
				user, domain = u, d
			}
		}
		u := s.users[userKey(domain, user)]
		if u == nil {
			// "user@example.com" may also be a plain user name.
			u = s.users[userKey("", name)]
		}
		if u == nil || subtle.ConstantTimeCompare([]byte(u.Password), []byte(pass)) != 1 {
			return principal{}, false
		}
		return principal{identityOf(u), u.Permissions, u.Roles}, true
	case "bearer":
		t, found := s.tokens[cred]
		if !found || !now.Before(t.expires) {
			return principal{}, false
		}
		c := s.clients[t.clientID]
		if c == nil {
			return principal{}, false
		}
		return principal{c.ClientID, c.Permissions, c.Roles}, true
	}
	return principal{}, false
}

// unauthorized answers like IIS in front of Command: a short text body, not
// a Command error.
func unauthorized() response {
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Add("WWW-Authenticate", `Basic realm="kfsim"`)
	h.Add("WWW-Authenticate", "Bearer")
	return response{status: http.StatusUnauthorized, header: h,
		body: []byte("401 - Unauthorized: Access is denied due to invalid credentials.")}
}

func jsonResponse(status int, v any) response {
	b, err := json.Marshal(v)
	if err != nil {
		return errorResponse(http.StatusInternalServerError, codeInternal, "encode response")
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	return response{status: status, header: h, body: b}
}

func errorResponse(status int, code, message string) response {
	return jsonResponse(status, wireError{ErrorCode: code, Message: message})
}

func forbidden(perm string) response {
	return errorResponse(http.StatusForbidden, codeForbidden,
		"Access is denied due to insufficient permissions: "+perm+" is required.")
}

func writeResponse(w http.ResponseWriter, resp response) {
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	w.Header().Set("X-Keyfactor-Product-Version", "25.4.1+kfsim")
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

// statusEndpoints answers GET /Status/Endpoints: the endpoints the caller
// may use.
func (s *Server) statusEndpoints(c *call) response {
	out := []string{}
	for _, rt := range routes {
		if rt.visible(c.perms) && !s.absent(rt) {
			out = append(out, rt.template)
		}
	}
	return jsonResponse(http.StatusOK, out)
}

// myPermissions answers GET /Security/My/Permissions.
func (s *Server) myPermissions(c *call) response {
	return jsonResponse(http.StatusOK, wireMyPermissions{Permissions: permissionList(c.perms)})
}

// securityMy answers GET /Security/My in its v11.3 shape: the caller's
// roles and the v1 {Area, Permission} pairs its permissions amount to.
func (s *Server) securityMy(c *call) response {
	roles := append([]string{}, c.roles...)
	return jsonResponse(http.StatusOK, wireSecurityMy{Roles: roles, GlobalPermissions: globalPermissions(c.perms)})
}

// issueToken answers POST /_kfsim/oauth/token (client credentials). The
// token lives Options.TokenLifetime on the simulator's clock; expires_in
// says so.
func (s *Server) issueToken(c *call) response {
	oauthError := func(status int, code string) response {
		r := jsonResponse(status, map[string]string{"error": code})
		r.header.Set("Cache-Control", "no-store")
		return r
	}
	form, err := url.ParseQuery(string(c.body))
	if err != nil {
		return oauthError(http.StatusBadRequest, "invalid_request")
	}
	if form.Get("grant_type") != "client_credentials" {
		return oauthError(http.StatusBadRequest, "unsupported_grant_type")
	}
	id, secret, basic := c.r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: Basic credentials are form-encoded first.
		if v, err := url.QueryUnescape(id); err == nil {
			id = v
		}
		if v, err := url.QueryUnescape(secret); err == nil {
			secret = v
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	cl := s.clients[id]
	if cl == nil || subtle.ConstantTimeCompare([]byte(cl.ClientSecret), []byte(secret)) != 1 {
		r := oauthError(http.StatusUnauthorized, "invalid_client")
		if basic {
			r.header.Set("WWW-Authenticate", `Basic realm="kfsim"`)
		}
		return r
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	s.tokens[tok] = token{clientID: cl.ClientID, expires: c.now.Add(s.tokenLifetime)}
	c.identity = cl.ClientID
	r := jsonResponse(http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int(s.tokenLifetime / time.Second),
	})
	r.header.Set("Cache-Control", "no-store")
	return r
}

// readBody reads a request body for methods that carry one; Keyfactor's Go
// client sends "null" on GETs, and only bodies of other methods mean
// anything.
func readBody(r *http.Request) []byte {
	if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Body == nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	return b
}
