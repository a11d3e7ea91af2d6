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
	"sort"
	"strconv"
	"strings"
	"time"

	"runner/keyfactor"
)

// Error codes. Only 0xA0110008 (invalid value) and 0xA011004A (invalid sort
// field) were seen in public sources; the rest are the simulator's own, in
// the same shape, so a client cannot rely on particular values.
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

// tokenLifetime is how long OAuth tokens live, in wall-clock time: the
// client's token cache runs on wall time, so a driven test clock must not
// expire tokens under it.
const tokenLifetime = time.Hour

// token is an issued OAuth access token.
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
	now      time.Time
	lost     bool // the client will not get the answer (drop-after, malformed-json)
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

func hasAny(perm string) func([]string) bool {
	p := strings.ToLower(strings.TrimSuffix(perm, "/"))
	return func(perms []string) bool {
		for _, x := range perms {
			if strings.HasPrefix(strings.ToLower(x), p) {
				return true
			}
		}
		return false
	}
}

func hasAll(perms ...string) func([]string) bool {
	return func(have []string) bool {
		for _, p := range perms {
			if !keyfactor.HasPermission(have, p, nil) {
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
		{method: "GET", segs: []string{"status", "endpoints"}, key: "status", template: "GET /Status/Endpoints", handle: (*Server).statusEndpoints, visible: always},
		{method: "GET", segs: []string{"security", "my", "permissions"}, key: "permissions", template: "GET /Security/My/Permissions", handle: (*Server).myPermissions, visible: always},
		{method: "GET", segs: []string{"certificates"}, key: "certificates", template: "GET /Certificates", handle: (*Server).listCertificates, visible: hasAll(keyfactor.PermCertificatesRead)},
		{method: "GET", segs: []string{"certificates", "{id}"}, key: "certificate", template: "GET /Certificates/{id}", handle: (*Server).getCertificate, visible: hasAll(keyfactor.PermCertificatesRead)},
		{method: "GET", segs: []string{"certificatestores"}, key: "stores", template: "GET /CertificateStores", handle: (*Server).listStores, visible: hasAny(keyfactor.PermStoresRead)},
		{method: "GET", segs: []string{"certificatestores", "{id}"}, key: "store", template: "GET /CertificateStores/{id}", handle: (*Server).getStore, visible: hasAny(keyfactor.PermStoresRead)},
		{method: "POST", segs: []string{"enrollment", "renew"}, key: "renew", template: "POST /Enrollment/Renew", handle: (*Server).renew, visible: hasAll(keyfactor.PermCertificatesRead, keyfactor.PermEnrollPFX)},
		{method: "POST", segs: []string{"enrollment", "pfx", "deploy"}, key: "deploy", template: "POST /Enrollment/PFX/Deploy", handle: (*Server).deploy, visible: hasAll(keyfactor.PermEnrollPFX)},
	}
}

// endpoint is how ServeHTTP treats a request: which handler, under which
// key, with which checks.
type endpoint struct {
	key    string
	api    bool // needs credentials and x-keyfactor-requested-with
	handle func(s *Server, c *call) response
	param  string
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
		s.serveApprove(w, path[len("/_kfsim/approve/"):])
		return
	case lower == "/_kfsim/oauth/token" && r.Method == http.MethodPost:
		s.serve(w, r, endpoint{key: "token", handle: (*Server).issueToken})
		return
	}
	s.serve(w, r, s.match(r.Method, path))
}

// match finds the route of a request; unknown routes get a handler that
// answers 404 (405 for a known path with the wrong method) and logs loudly,
// because a client calling an endpoint the simulator lacks is a bug to fix
// on one side or the other.
func (s *Server) match(method, path string) endpoint {
	base := strings.ToLower(s.base) + "/"
	if strings.HasPrefix(strings.ToLower(path), base) {
		rest := strings.Trim(path[len(base):], "/")
		segs := strings.Split(rest, "/")
		var allowed []string
		for _, rt := range routes {
			param, ok := matchSegs(rt.segs, segs)
			if !ok {
				continue
			}
			if rt.method != method {
				allowed = append(allowed, rt.method)
				continue
			}
			return endpoint{key: rt.key, api: true, handle: rt.handle, param: param}
		}
		if len(allowed) > 0 {
			return endpoint{key: "unknown", handle: func(s *Server, c *call) response {
				s.logf("kfsim: method %s not allowed on %s (allowed: %s)", method, path, strings.Join(allowed, ", "))
				resp := errorResponse(http.StatusMethodNotAllowed, codeNoRoute, "The requested resource does not support http method '"+method+"'.")
				resp.header.Set("Allow", strings.Join(allowed, ", "))
				return resp
			}}
		}
	}
	return endpoint{key: "unknown", handle: func(s *Server, c *call) response {
		s.logf("kfsim: UNKNOWN ROUTE %s %s (the simulator serves %s under %s)", method, path, strings.Join(routeTemplates(), ", "), s.base)
		return errorResponse(http.StatusNotFound, codeNoRoute, "No HTTP resource was found that matches the request URI '"+path+"'.")
	}}
}

func matchSegs(pattern, segs []string) (string, bool) {
	if len(pattern) != len(segs) {
		return "", false
	}
	var param string
	for i, p := range pattern {
		if p == "{id}" {
			if segs[i] == "" {
				return "", false
			}
			param = segs[i]
			continue
		}
		if !strings.EqualFold(p, segs[i]) {
			return "", false
		}
	}
	return param, true
}

func routeTemplates() []string {
	out := make([]string, len(routes))
	for i, rt := range routes {
		out[i] = rt.template
	}
	return out
}

// serve runs one request through latency, faults, authentication and its
// handler, records it in the ledger, and writes (or loses) the answer.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, ep endpoint) {
	ctx := r.Context()
	var body []byte
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Body != nil {
		// Keyfactor's Go client sends "null" on GETs; only bodies of other
		// methods mean anything.
		body, _ = io.ReadAll(io.LimitReader(r.Body, maxBody))
	}

	s.mu.Lock()
	s.settle(s.now())
	delay := s.latencyFixed
	if s.latencyJitter > 0 {
		delay += time.Duration(s.latencyRng.Int64N(int64(s.latencyJitter)))
	}
	identity, perms, authOK := s.authenticate(r)
	rule, faultDelay := s.pickFault(ep.key)
	s.mu.Unlock()
	fault := rule.Kind

	rec := Request{Method: r.Method, Path: r.URL.Path, Endpoint: ep.key, Identity: identity}
	faultName := fault
	if faultName == "" && faultDelay > 0 {
		faultName = kindLatency
	}
	if err := keyfactor.Sleep(ctx, delay+faultDelay); err != nil {
		// The client gave up while the server was "busy": nothing was
		// processed and nobody is listening.
		rec.Fault = faultName
		s.record(rec)
		return
	}
	if fault != "" && !isPostFault(fault) {
		rec.Fault = fault
		rec.Status = preFault(w, rule)
		s.record(rec)
		return
	}

	s.mu.Lock()
	now := s.now()
	s.settle(now)
	c := &call{r: r, query: lowerQuery(r.URL.Query()), body: body, param: ep.param,
		identity: identity, perms: perms, now: now, lost: fault == kindDropAfter || fault == kindMalformed}
	var resp response
	switch {
	case ep.api && !authOK:
		resp = unauthorized()
	case ep.api && r.Header.Get("x-keyfactor-requested-with") == "":
		resp = errorResponse(http.StatusBadRequest, codeMissingHeader, "The 'x-keyfactor-requested-with' header is required; send 'APIClient'.")
	default:
		resp = ep.handle(s, c)
	}
	rec.At, rec.Identity, rec.Fault = now, c.identity, faultName
	switch fault {
	case kindDropAfter:
		rec.Status = 0
	case kindMalformed:
		rec.Status = http.StatusOK
	default:
		rec.Status = resp.status
	}
	s.ledger.Requests = append(s.ledger.Requests, rec)
	s.mu.Unlock()

	switch fault {
	case kindDropAfter:
		dropConnection(w)
	case kindMalformed:
		writeMalformed(w, resp)
	case kindSlowBody:
		writeSlowly(ctx, w, resp, rule.Delay)
	default:
		writeResponse(w, resp)
	}
}

// record appends a request to the ledger, stamped now.
func (s *Server) record(rec Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.At = s.now()
	s.ledger.Requests = append(s.ledger.Requests, rec)
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

// authenticate checks Basic or Bearer credentials. Callers hold s.mu.
func (s *Server) authenticate(r *http.Request) (identity string, perms []string, ok bool) {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return "", nil, false
		}
		name, pass, found := strings.Cut(string(raw), ":")
		if !found {
			return "", nil, false
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
			return "", nil, false
		}
		return identityOf(u), u.Permissions, true
	case "bearer":
		t, found := s.tokens[cred]
		if !found || time.Now().After(t.expires) {
			return "", nil, false
		}
		c := s.clients[t.clientID]
		if c == nil {
			return "", nil, false
		}
		return c.ClientID, c.Permissions, true
	}
	return "", nil, false
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
	return jsonResponse(status, keyfactor.ErrorBody{ErrorCode: code, Message: message})
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
		if rt.visible(c.perms) {
			out = append(out, rt.template)
		}
	}
	return jsonResponse(http.StatusOK, out)
}

// myPermissions answers GET /Security/My/Permissions.
func (s *Server) myPermissions(c *call) response {
	return jsonResponse(http.StatusOK, keyfactor.MyPermissions{Permissions: permissionsOf(c.perms)})
}

// getCertificate answers GET /Certificates/{id}.
func (s *Server) getCertificate(c *call) response {
	if !keyfactor.HasPermission(c.perms, keyfactor.PermCertificatesRead, nil) {
		return forbidden(keyfactor.PermCertificatesRead)
	}
	id, err := strconv.Atoi(c.param)
	if err != nil {
		return errorResponse(http.StatusBadRequest, codeInvalid, "The value '"+c.param+"' is not a valid certificate id.")
	}
	withLocations, errResp := boolParam(c, "includeLocations")
	if errResp != nil {
		return *errResp
	}
	rec := s.certs[id]
	if rec == nil {
		return errorResponse(http.StatusNotFound, codeNotFound, "Certificate with id "+strconv.Itoa(id)+" was not found.")
	}
	return jsonResponse(http.StatusOK, copyCertificate(rec.cert, withLocations))
}

// param returns the first of names present in the query (names are
// matched without regard to case).
func param(c *call, names ...string) (string, string, bool) {
	for _, n := range names {
		if v, ok := c.query[strings.ToLower(n)]; ok {
			return n, v, true
		}
	}
	return "", "", false
}

func boolParam(c *call, names ...string) (bool, *response) {
	name, v, ok := param(c, names...)
	if !ok || v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r := errorResponse(http.StatusBadRequest, codeInvalid, "The value '"+v+"' is not valid for "+name+": want true or false.")
		return false, &r
	}
	return b, nil
}

func intParam(c *call, def int, names ...string) (int, *response) {
	name, v, ok := param(c, names...)
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r := errorResponse(http.StatusBadRequest, codeInvalid, "The value '"+v+"' is not valid for "+name+": want an integer.")
		return 0, &r
	}
	return n, nil
}

// paging reads pageReturned (1-based, default 1) and returnLimit (default
// 50) under the given prefix or unprefixed.
func paging(c *call, prefix string) (page, limit int, errResp *response) {
	page, errResp = intParam(c, 1, prefix+".pageReturned", "PageReturned")
	if errResp != nil {
		return 0, 0, errResp
	}
	limit, errResp = intParam(c, 50, prefix+".returnLimit", "ReturnLimit")
	if errResp != nil {
		return 0, 0, errResp
	}
	return max(page, 1), max(limit, 1), nil
}

// pageOf returns the page of n items as a [start, end) range; past the end
// it is empty.
func pageOf(n, page, limit int) (int, int) {
	start := (page - 1) * limit
	if start >= n || start < 0 {
		return n, n
	}
	return start, min(start+limit, n)
}

// listCertificates answers GET /Certificates.
func (s *Server) listCertificates(c *call) response {
	if !keyfactor.HasPermission(c.perms, keyfactor.PermCertificatesRead, nil) {
		return forbidden(keyfactor.PermCertificatesRead)
	}
	_, q, _ := param(c, "pq.queryString", "QueryString")
	clauses, err := parseQuery(q, certificateFields)
	if err != nil {
		return errorResponse(http.StatusBadRequest, codeQuery, "Invalid query: "+err.Error())
	}
	page, limit, errResp := paging(c, "pq")
	if errResp != nil {
		return *errResp
	}
	withLocations, errResp := boolParam(c, "includeLocations")
	if errResp != nil {
		return *errResp
	}
	includeExpired, errResp := boolParam(c, "pq.includeExpired", "IncludeExpired")
	if errResp != nil {
		return *errResp
	}
	sortField := certificateFields["id"]
	if _, name, ok := param(c, "pq.sortField", "SortField"); ok && name != "" {
		f, known := certificateFields[strings.ToLower(name)]
		if !known {
			return errorResponse(http.StatusBadRequest, codeSort, "Invalid sort field: "+name+".")
		}
		sortField = f
	}
	desc, errResp := intParam(c, 0, "pq.sortAscending", "SortAscending")
	if errResp != nil {
		return *errResp
	}

	var found []*keyfactor.Certificate
	for _, id := range s.sortedCertIDs() {
		cert := &s.certs[id].cert
		if !includeExpired && cert.NotAfter.Before(c.now) {
			// Command leaves expired certificates out unless asked.
			continue
		}
		if matches(clauses, func(f string) fieldValue { return certificateValue(cert, f) }) {
			found = append(found, cert)
		}
	}
	sort.SliceStable(found, func(a, b int) bool {
		cmp := compareValues(sortField.kind, certificateValue(found[a], sortField.name), certificateValue(found[b], sortField.name))
		if desc == 1 {
			return cmp > 0
		}
		return cmp < 0
	})
	start, end := pageOf(len(found), page, limit)
	out := make([]keyfactor.Certificate, 0, end-start)
	for _, cert := range found[start:end] {
		out = append(out, copyCertificate(*cert, withLocations))
	}
	resp := jsonResponse(http.StatusOK, out)
	resp.header.Set("X-Total-Count", strconv.Itoa(len(found)))
	return resp
}

// canReadStore reports whether perms allow reading st: globally or for its
// container.
func canReadStore(perms []string, st *Store) bool {
	return keyfactor.HasPermission(perms, keyfactor.PermStoresRead, containerPtr(st))
}

func containerPtr(st *Store) *int {
	if st.ContainerId == 0 {
		return nil
	}
	id := st.ContainerId
	return &id
}

// storeModel renders a store as GET /CertificateStores does.
func (s *Server) storeModel(st *Store) keyfactor.CertificateStore {
	m := keyfactor.CertificateStore{
		Id:            st.Id,
		ContainerId:   containerPtr(st),
		DisplayName:   st.ClientMachine + " - " + st.StorePath,
		ClientMachine: st.ClientMachine,
		Storepath:     st.StorePath,
		CertStoreType: st.CertStoreType,
		Approved:      true,
		Properties:    "{}",
	}
	if ct := s.containers[st.ContainerId]; ct != nil {
		m.ContainerName = ct.Name
	}
	return m
}

// listStores answers GET /CertificateStores with the stores the caller may
// read.
func (s *Server) listStores(c *call) response {
	_, q, _ := param(c, "certificateStoreQuery.queryString", "QueryString")
	clauses, err := parseQuery(q, storeFields)
	if err != nil {
		return errorResponse(http.StatusBadRequest, codeQuery, "Invalid query: "+err.Error())
	}
	page, limit, errResp := paging(c, "certificateStoreQuery")
	if errResp != nil {
		return *errResp
	}
	var found []*Store
	for _, id := range s.storeOrder {
		st := s.stores[id]
		if !canReadStore(c.perms, st) {
			continue
		}
		if matches(clauses, func(f string) fieldValue { return storeValue(st, f) }) {
			found = append(found, st)
		}
	}
	start, end := pageOf(len(found), page, limit)
	out := make([]keyfactor.CertificateStore, 0, end-start)
	for _, st := range found[start:end] {
		out = append(out, s.storeModel(st))
	}
	resp := jsonResponse(http.StatusOK, out)
	resp.header.Set("X-Total-Count", strconv.Itoa(len(found)))
	return resp
}

// getStore answers GET /CertificateStores/{id}.
func (s *Server) getStore(c *call) response {
	st := s.stores[strings.ToLower(c.param)]
	if st == nil {
		return errorResponse(http.StatusNotFound, codeNotFound, "Certificate store with id "+c.param+" was not found.")
	}
	if !canReadStore(c.perms, st) {
		return forbidden(keyfactor.PermStoresRead)
	}
	return jsonResponse(http.StatusOK, s.storeModel(st))
}

// issueToken answers POST /_kfsim/oauth/token (client credentials).
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
	s.tokens[tok] = token{clientID: cl.ClientID, expires: time.Now().Add(tokenLifetime)}
	c.identity = cl.ClientID
	r := jsonResponse(http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int(tokenLifetime / time.Second),
	})
	r.header.Set("Cache-Control", "no-store")
	return r
}

// serveApprove answers POST /_kfsim/approve/{requestId}.
func (s *Server) serveApprove(w http.ResponseWriter, idText string) {
	id, err := strconv.Atoi(strings.Trim(idText, "/"))
	if err != nil {
		writeResponse(w, errorResponse(http.StatusBadRequest, codeInvalid, "request id "+strconv.Quote(idText)+" is not an integer"))
		return
	}
	certID, err := s.Approve(id)
	if err != nil {
		writeResponse(w, errorResponse(http.StatusNotFound, codeNotFound, err.Error()))
		return
	}
	writeResponse(w, jsonResponse(http.StatusOK, map[string]int{"CertificateId": certID, "RequestId": id}))
}
