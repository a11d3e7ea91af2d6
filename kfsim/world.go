// Package kfsim is a miniature Keyfactor Command server: an http.Handler that
// serves the endpoints of the renew → PFX deploy path with Command's
// documented semantics (staging window per user, permissions global or per
// container, approval, asynchronous management jobs that end up in
// Locations), injects reproducible faults, and keeps a ledger of everything
// that happened so tests and benchmarks can check invariants against ground
// truth.
//
// It owns the simulated world and its HTTP surface. It does not own the
// client side of the wire (package keyfactor) nor any renewal decisions
// (package runner); it shares only the wire types of package keyfactor.
package kfsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"runner/keyfactor"
)

// Defaults applied by New when an Options field is zero.
const (
	DefaultAPIPath  = "KeyfactorAPI"
	DefaultWindow   = 5 * time.Minute
	DefaultJobDelay = 2 * time.Second
	// DefaultLifetime is the validity of certificates issued from a template
	// that does not set one.
	DefaultLifetime = 365 * 24 * time.Hour
	// defaultIssuerDN is the issuer of fixture certificates that name none.
	defaultIssuerDN = "CN=kfsim Issuing CA,O=kfsim"
)

// ExpiredMode chooses how Deploy reports staging that cannot be used
// (expired, staged for another user, or never staged). Command's behaviour
// is not documented, so the simulator offers both plausible answers.
type ExpiredMode int

const (
	// StagingError answers 400 with {"ErrorCode","Message"}.
	StagingError ExpiredMode = iota
	// StagingFailedStores answers 200 with every store in FailedStores.
	StagingFailedStores
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// APIPath is the base path, default "KeyfactorAPI"; matched without
	// regard to case, like IIS. "Keyfactor/API" (container builds) works too.
	APIPath string
	// Window is how long a renewed certificate stays staged for deploy,
	// default 5m.
	Window time.Duration
	// Clock drives staging, job run times and issued validity; default is
	// the wall clock.
	Clock Clock
	// ExpiredStaging chooses how Deploy refuses unusable staging.
	ExpiredStaging ExpiredMode
	// JobDelay is how long after creation (or after JobTime) a management
	// job runs; default 2s, a negative value means at once.
	JobDelay time.Duration
	// Seed makes ids, thumbprints, serials and probabilistic faults
	// reproducible.
	Seed int64
	// Logf, when set, receives notable events (unknown routes, refused
	// deploys). Secrets are never passed to it.
	Logf func(format string, args ...any)
}

// Fixture is a world to load into a Server; it is JSON-loadable with Go's
// field names (any key case).
type Fixture struct {
	Users        []User
	Clients      []OAuthClient
	Containers   []Container
	Stores       []Store
	Templates    []Template
	Certificates []Certificate
}

// User is an Active Directory account for Basic authentication:
// "DOMAIN\user:pass", or "user:pass" when Domain is empty. Domain and
// username are matched without regard to case.
type User struct {
	Username, Domain, Password string
	Permissions                []string
}

// OAuthClient is a client-credentials client; it gets tokens from
// POST /_kfsim/oauth/token and its identity is its ClientID.
type OAuthClient struct {
	ClientID, ClientSecret string
	Permissions            []string
}

// Container is a certificate store container, the unit of scoped store
// permissions ("/certificate_stores/schedule/4/").
type Container struct {
	Id   int
	Name string
}

// Store is a certificate store.
type Store struct {
	Id                       string // GUID; matched without regard to case
	ContainerId              int    // 0 = none
	ClientMachine, StorePath string
	CertStoreType            int
	// RequiresEntryPassword makes Deploy fail this store when Password is
	// empty, like PEM stores.
	RequiresEntryPassword bool
	// FailJobs, when set, makes every management job to this store fail with
	// this message.
	FailJobs string
}

// Template is a certificate template.
type Template struct {
	Name             string
	RequiresApproval bool
	// Lifetime is the validity of issued certificates, default 365 days. In
	// JSON it is a duration string ("8760h", "90d") or nanoseconds.
	Lifetime time.Duration
}

// Certificate is a fixture certificate. Missing Thumbprint, SerialNumber
// and IssuedCN are filled in; a zero validity becomes 350 days ago → 15 days
// from now, so the certificate is due under a 30-day renewal threshold.
type Certificate struct {
	Id                                           int
	Thumbprint, SerialNumber, IssuedDN, IssuedCN string
	NotBefore, NotAfter                          time.Time
	TemplateName, CertificateAuthorityName       string
	// RequiresTemplate means no one-click renewal: Renew must name Template
	// and CertificateAuthority.
	RequiresTemplate bool
	Locations        []keyfactor.Location
}

// UnmarshalJSON accepts Lifetime as a duration string (with a "d" day
// suffix allowed) or a number of nanoseconds, and rejects unknown keys.
func (t *Template) UnmarshalJSON(b []byte) error {
	var raw struct {
		Name             string
		RequiresApproval bool
		Lifetime         json.RawMessage
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	t.Name, t.RequiresApproval, t.Lifetime = raw.Name, raw.RequiresApproval, 0
	if len(raw.Lifetime) == 0 || string(raw.Lifetime) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(raw.Lifetime, &s); err == nil {
		d, err := parseDuration(s)
		if err != nil {
			return fmt.Errorf("template %q: Lifetime: %w", raw.Name, err)
		}
		t.Lifetime = d
		return nil
	}
	var n int64
	if err := json.Unmarshal(raw.Lifetime, &n); err != nil {
		return fmt.Errorf("template %q: Lifetime: want a duration string or nanoseconds", raw.Name)
	}
	t.Lifetime = time.Duration(n)
	return nil
}

// MarshalJSON writes Lifetime as a duration string, the form UnmarshalJSON
// reads back.
func (t Template) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name             string
		RequiresApproval bool
		Lifetime         string `json:",omitempty"`
	}{t.Name, t.RequiresApproval, durationString(t.Lifetime)})
}

func durationString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// parseDuration is time.ParseDuration plus a whole-day suffix ("90d").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// LoadFixture reads a Fixture from a JSON file. Unknown keys are errors, so
// a typo in a fixture does not silently change the world.
func LoadFixture(path string) (Fixture, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Fixture{}, fmt.Errorf("load fixture: %w", err)
	}
	var f Fixture
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Fixture{}, fmt.Errorf("load fixture %s: %w", path, err)
	}
	return f, nil
}

// Server is the simulated Command. Create it with New, fill it with Load,
// and mount it as an http.Handler. All state sits behind one mutex.
type Server struct {
	opts   Options
	base   string // "/KeyfactorAPI"
	window time.Duration
	delay  time.Duration
	clock  Clock
	logf   func(format string, args ...any)

	mu         sync.Mutex
	rng        *rand.Rand // ids, thumbprints, serials, job ids
	users      map[string]*User
	clients    map[string]*OAuthClient
	tokens     map[string]token
	containers map[int]*Container
	stores     map[string]*Store // key: lowercase id
	storeOrder []string
	templates  map[string]*Template // key: lowercase name
	certs      map[int]*certRecord
	thumbs     map[string]int // uppercase thumbprint → id
	maxCertID  int
	nextReqID  int
	requests   map[int]*request // request id → enrollment request
	jobs       []*job
	failJobs   map[string]string // store id → message, set by FailJobs
	ledger     Ledger

	faults        []*faultState
	faultRng      *rand.Rand
	latencyFixed  time.Duration
	latencyJitter time.Duration
	latencyRng    *rand.Rand
}

// certRecord is a certificate as the simulator holds it.
type certRecord struct {
	cert             keyfactor.Certificate
	requiresTemplate bool
}

// request is an enrollment request made by Renew: the staging record of its
// private key and, while approval is pending, what to issue.
type request struct {
	id            int
	certID        int // 0 while pending
	identity      string
	stagedAt      time.Time
	pending       bool
	old           keyfactor.Certificate
	template, ca  string
	lifetime      time.Duration
	renewalLedger int // index into ledger.Renewals
}

// firstRequestID keeps request ids far from fixture certificate ids, so a
// client that mixes up CertificateId and RequestId is caught.
const firstRequestID = 90001

// New returns an empty Server; Load puts a world into it.
func New(opts Options) *Server {
	s := &Server{
		opts:       opts,
		window:     opts.Window,
		delay:      opts.JobDelay,
		clock:      opts.Clock,
		logf:       opts.Logf,
		rng:        rand.New(rand.NewPCG(uint64(opts.Seed), 0x6b6673696d)),
		users:      map[string]*User{},
		clients:    map[string]*OAuthClient{},
		tokens:     map[string]token{},
		containers: map[int]*Container{},
		stores:     map[string]*Store{},
		templates:  map[string]*Template{},
		certs:      map[int]*certRecord{},
		thumbs:     map[string]int{},
		nextReqID:  firstRequestID,
		requests:   map[int]*request{},
		failJobs:   map[string]string{},
		latencyRng: rand.New(rand.NewPCG(uint64(opts.Seed), 0x6c6174)),
	}
	s.faultRng = newFaultRng(opts.Seed)
	path := strings.Trim(opts.APIPath, "/")
	if path == "" {
		path = DefaultAPIPath
	}
	s.base = "/" + path
	if s.window <= 0 {
		s.window = DefaultWindow
	}
	switch {
	case s.delay == 0:
		s.delay = DefaultJobDelay
	case s.delay < 0:
		s.delay = 0
	}
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	return s
}

// BasePath returns the base path requests are served under, e.g.
// "/KeyfactorAPI".
func (s *Server) BasePath() string { return s.base }

// now is the simulator's time, in UTC so JSON carries "Z".
func (s *Server) now() time.Time { return s.clock.Now().UTC() }

func userKey(domain, username string) string {
	return strings.ToLower(domain) + `\` + strings.ToLower(username)
}

// Load merges f into the world. It validates the whole fixture first and
// changes nothing when any part is wrong; duplicates of what is already
// loaded are errors too. Containers named by stores but not declared are
// created.
func (s *Server) Load(f Fixture) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	users := map[string]*User{}
	for i, u := range f.Users {
		if u.Domain == "" {
			if d, n, ok := strings.Cut(u.Username, `\`); ok {
				u.Domain, u.Username = d, n
			}
		}
		if u.Username == "" {
			bad("user %d: Username is empty", i+1)
			continue
		}
		k := userKey(u.Domain, u.Username)
		if _, dup := s.users[k]; dup || users[k] != nil {
			bad("user %s: duplicate", identityOf(&u))
			continue
		}
		u.Permissions = append([]string(nil), u.Permissions...)
		users[k] = &u
	}
	clients := map[string]*OAuthClient{}
	for i, c := range f.Clients {
		if c.ClientID == "" || c.ClientSecret == "" {
			bad("oauth client %d: ClientID and ClientSecret are required", i+1)
			continue
		}
		if _, dup := s.clients[c.ClientID]; dup || clients[c.ClientID] != nil {
			bad("oauth client %s: duplicate", c.ClientID)
			continue
		}
		c.Permissions = append([]string(nil), c.Permissions...)
		clients[c.ClientID] = &c
	}
	containers := map[int]*Container{}
	for _, c := range f.Containers {
		if c.Id <= 0 {
			bad("container %q: Id must be positive", c.Name)
			continue
		}
		if _, dup := s.containers[c.Id]; dup || containers[c.Id] != nil {
			bad("container %d: duplicate", c.Id)
			continue
		}
		if c.Name == "" {
			c.Name = "Container " + strconv.Itoa(c.Id)
		}
		containers[c.Id] = &c
	}
	stores := map[string]*Store{}
	var storeOrder []string
	for i, st := range f.Stores {
		st.Id = strings.ToLower(strings.TrimSpace(st.Id))
		if st.Id == "" {
			bad("store %d: Id is empty", i+1)
			continue
		}
		if _, dup := s.stores[st.Id]; dup || stores[st.Id] != nil {
			bad("store %s: duplicate", st.Id)
			continue
		}
		if st.ContainerId < 0 {
			bad("store %s: ContainerId must not be negative", st.Id)
			continue
		}
		if st.ContainerId > 0 && s.containers[st.ContainerId] == nil && containers[st.ContainerId] == nil {
			containers[st.ContainerId] = &Container{Id: st.ContainerId, Name: "Container " + strconv.Itoa(st.ContainerId)}
		}
		stores[st.Id] = &st
		storeOrder = append(storeOrder, st.Id)
	}
	templates := map[string]*Template{}
	for i, t := range f.Templates {
		k := strings.ToLower(t.Name)
		if k == "" {
			bad("template %d: Name is empty", i+1)
			continue
		}
		if _, dup := s.templates[k]; dup || templates[k] != nil {
			bad("template %s: duplicate", t.Name)
			continue
		}
		if t.Lifetime < 0 {
			bad("template %s: Lifetime must not be negative", t.Name)
			continue
		}
		if t.Lifetime == 0 {
			t.Lifetime = DefaultLifetime
		}
		templates[k] = &t
	}
	// Ids first, so certificates without one are numbered after all the
	// explicit ones.
	maxID := s.maxCertID
	ids := map[int]bool{}
	for _, c := range f.Certificates {
		if c.Id < 0 {
			bad("certificate %d: Id must not be negative", c.Id)
		}
		if c.Id > 0 {
			if s.certs[c.Id] != nil || ids[c.Id] {
				bad("certificate %d: duplicate Id", c.Id)
			}
			ids[c.Id] = true
			maxID = max(maxID, c.Id)
		}
	}
	var certs []*certRecord
	thumbs := map[string]int{}
	for _, c := range f.Certificates {
		if c.Id == 0 {
			maxID++
			c.Id = maxID
		}
		rec, err := s.fixtureCertificate(c, now, stores)
		if err != nil {
			bad("certificate %d: %w", c.Id, err)
			continue
		}
		tp := rec.cert.Thumbprint
		if _, dup := s.thumbs[tp]; dup || thumbs[tp] != 0 {
			bad("certificate %d: duplicate Thumbprint %s", c.Id, tp)
			continue
		}
		thumbs[tp] = c.Id
		certs = append(certs, rec)
	}
	if len(errs) > 0 {
		return fmt.Errorf("load fixture: %w", errors.Join(errs...))
	}

	for k, v := range users {
		s.users[k] = v
	}
	for k, v := range clients {
		s.clients[k] = v
	}
	for k, v := range containers {
		s.containers[k] = v
	}
	for k, v := range stores {
		s.stores[k] = v
	}
	s.storeOrder = append(s.storeOrder, storeOrder...)
	for k, v := range templates {
		s.templates[k] = v
	}
	for _, rec := range certs {
		s.certs[rec.cert.Id] = rec
		s.thumbs[rec.cert.Thumbprint] = rec.cert.Id
	}
	s.maxCertID = maxID
	return nil
}

// fixtureCertificate turns a fixture certificate into a record, filling in
// what a real certificate always has.
func (s *Server) fixtureCertificate(c Certificate, now time.Time, newStores map[string]*Store) (*certRecord, error) {
	c.Thumbprint = normalizeHex(c.Thumbprint)
	if c.Thumbprint == "" {
		c.Thumbprint = s.randomHex(20)
	} else if !isHex(c.Thumbprint) {
		return nil, fmt.Errorf("Thumbprint %q is not hex", c.Thumbprint)
	}
	c.SerialNumber = normalizeHex(c.SerialNumber)
	if c.SerialNumber == "" {
		c.SerialNumber = s.randomHex(20)
	}
	switch {
	case c.IssuedDN == "" && c.IssuedCN == "":
		c.IssuedCN = fmt.Sprintf("cert-%d.kfsim.test", c.Id)
		c.IssuedDN = "CN=" + c.IssuedCN
	case c.IssuedDN == "":
		c.IssuedDN = "CN=" + c.IssuedCN
	case c.IssuedCN == "":
		c.IssuedCN = cnOf(c.IssuedDN)
	}
	if c.NotBefore.IsZero() && c.NotAfter.IsZero() {
		c.NotBefore = now.Add(-350 * 24 * time.Hour).Truncate(time.Second)
		c.NotAfter = c.NotBefore.Add(DefaultLifetime)
	}
	if !c.NotAfter.After(c.NotBefore) {
		return nil, fmt.Errorf("NotAfter %s is not after NotBefore %s", c.NotAfter.Format(time.RFC3339), c.NotBefore.Format(time.RFC3339))
	}
	locs := make([]keyfactor.Location, 0, len(c.Locations))
	for _, l := range c.Locations {
		l.CertStoreId = strings.ToLower(l.CertStoreId)
		st := s.stores[l.CertStoreId]
		if st == nil {
			st = newStores[l.CertStoreId]
		}
		if st != nil {
			if l.StoreMachine == "" {
				l.StoreMachine = st.ClientMachine
			}
			if l.StorePath == "" {
				l.StorePath = st.StorePath
			}
			if l.StoreType == 0 {
				l.StoreType = st.CertStoreType
			}
		}
		if l.Alias == "" {
			l.Alias = c.Thumbprint
		}
		locs = append(locs, l)
	}
	return &certRecord{
		requiresTemplate: c.RequiresTemplate,
		cert: keyfactor.Certificate{
			Id:                       c.Id,
			Thumbprint:               c.Thumbprint,
			SerialNumber:             c.SerialNumber,
			IssuedDN:                 c.IssuedDN,
			IssuedCN:                 c.IssuedCN,
			IssuerDN:                 defaultIssuerDN,
			ImportDate:               c.NotBefore.UTC(),
			NotBefore:                c.NotBefore.UTC(),
			NotAfter:                 c.NotAfter.UTC(),
			CertState:                1,
			CertStateString:          "Active (1)",
			TemplateName:             c.TemplateName,
			CertificateAuthorityName: c.CertificateAuthorityName,
			Locations:                locs,
		},
	}, nil
}

// cnOf returns the first CN of a distinguished name, "" if there is none.
func cnOf(dn string) string {
	for _, rdn := range strings.Split(dn, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(rdn), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "CN") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// normalizeHex uppercases a hex string and drops the separators people
// paste with thumbprints.
func normalizeHex(s string) string {
	return strings.ToUpper(strings.NewReplacer(":", "", " ", "", "-", "").Replace(strings.TrimSpace(s)))
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789ABCDEFabcdef", r) {
			return false
		}
	}
	return true
}

// randomHex returns n random bytes as uppercase hex from the seeded source.
// Callers hold s.mu (or own s exclusively).
func (s *Server) randomHex(n int) string {
	const digits = "0123456789ABCDEF"
	b := make([]byte, 2*n)
	for i := range b {
		b[i] = digits[s.rng.IntN(16)]
	}
	return string(b)
}

// randomGUID returns a version-4-shaped GUID from the seeded source.
func (s *Server) randomGUID() string {
	h := strings.ToLower(s.randomHex(16))
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// FailJobs makes management jobs to storeID that run from now on fail with
// message; an empty message lifts it again. Jobs already due are settled
// first, so they keep their outcome.
func (s *Server) FailJobs(storeID, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(s.now())
	id := strings.ToLower(strings.TrimSpace(storeID))
	if message == "" {
		delete(s.failJobs, id)
		return
	}
	s.failJobs[id] = message
}

// Certificate returns the current record of certificate id, including its
// Locations, after settling due jobs.
func (s *Server) Certificate(id int) (keyfactor.Certificate, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(s.now())
	rec := s.certs[id]
	if rec == nil {
		return keyfactor.Certificate{}, false
	}
	return copyCertificate(rec.cert, true), true
}

// copyCertificate deep-copies c; without locations, Locations is empty (not
// null), as Command answers without includeLocations.
func copyCertificate(c keyfactor.Certificate, locations bool) keyfactor.Certificate {
	if c.CertRequestId != nil {
		v := *c.CertRequestId
		c.CertRequestId = &v
	}
	if c.PrincipalId != nil {
		v := *c.PrincipalId
		c.PrincipalId = &v
	}
	if locations {
		c.Locations = append(make([]keyfactor.Location, 0, len(c.Locations)), c.Locations...)
	} else {
		c.Locations = []keyfactor.Location{}
	}
	return c
}

// sortedCertIDs returns all certificate ids in ascending order.
func (s *Server) sortedCertIDs() []int {
	ids := make([]int, 0, len(s.certs))
	for id := range s.certs {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// permissionsOf returns the sorted, deduplicated permissions of a caller;
// a container-scoped permission is dropped when the global one is held, as
// GET /Security/My/Permissions does.
func permissionsOf(perms []string) []string {
	set := map[string]bool{}
	for _, p := range perms {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		set[strings.ToLower(p)] = true
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
