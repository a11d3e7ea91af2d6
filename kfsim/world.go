// Package kfsim is a miniature Keyfactor Command: an http.Handler that
// serves the endpoints of the renew → PFX deploy path with Command's
// documented semantics (staging window per user, inherited permissions
// global or per container and collection, approval and denial, store types,
// asynchronous management jobs with job history and slow inventory),
// injects reproducible faults, and keeps a ledger of everything that
// happened so tests and benchmarks can check invariants against ground
// truth.
//
// It owns the simulated world and its HTTP surface, written from Command's
// public documentation, OpenAPI file and recorded traffic. It imports
// nothing from the client (package keyfactor) or from runner: its wire
// types, permission checks, query language, decoding and sleeps are its own,
// so a mistake on the client side cannot be mirrored here.
package kfsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults applied by New when an Options field is zero.
const (
	DefaultAPIPath  = "KeyfactorAPI"
	DefaultWindow   = 5 * time.Minute
	DefaultJobDelay = 2 * time.Second
	// DefaultLifetime is the validity of certificates issued from a template
	// that does not set one.
	DefaultLifetime = 365 * 24 * time.Hour
	// DefaultTokenLifetime is how long an OAuth access token lives on the
	// simulator's clock.
	DefaultTokenLifetime = time.Hour
	// DefaultReturnLimit is the page size of list endpoints when a request
	// names none [DOC: "The default is 50" on every paged GET].
	DefaultReturnLimit = 50
	// DefaultMaxPageSize caps returnLimit. Command's maximum is not
	// documented (UNCONFIRMED); 1000 is the simulator's choice, large
	// enough for honest clients, small enough that a client trusting the
	// page size it asked for is caught.
	DefaultMaxPageSize = 1000
	// defaultIssuerDN is the issuer of fixture certificates that name none.
	defaultIssuerDN = "CN=kfsim Issuing CA,O=kfsim"
)

// ExpiredMode chooses how Deploy reports staging that cannot be used
// (expired, staged for another user, never staged, or denied). Command's
// behaviour is not documented, so the simulator offers both plausible
// answers.
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
	// Clock drives staging, job run times, inventory, token expiry and
	// issued validity; default is the wall clock.
	Clock Clock
	// ExpiredStaging chooses how Deploy refuses unusable staging.
	ExpiredStaging ExpiredMode
	// JobDelay is how long after creation (or after JobTime) a management
	// job runs; 0 means DefaultJobDelay, a negative value means at once.
	JobDelay time.Duration
	// InventoryDelay is how long after a job succeeded its location shows in
	// GET /Certificates/{id}?includeLocations=true (the 25.4.1 recordings
	// show about 30 s); 0 or negative means at once.
	InventoryDelay time.Duration
	// Seed makes ids, thumbprints, serials and probabilistic faults
	// reproducible.
	Seed int64
	// Logf, when set, receives notable events (unknown routes, refused
	// deploys). Secrets are never passed to it.
	Logf func(format string, args ...any)
	// MaxPageSize caps returnLimit on every list; 0 means
	// DefaultMaxPageSize, a negative value means no cap.
	MaxPageSize int
	// TokenLifetime is how long OAuth tokens live on Clock (expires_in
	// reports it); 0 means DefaultTokenLifetime.
	TokenLifetime time.Duration
	// NumericPrincipalId gives certificates whose fixture sets no
	// PrincipalId a number. Off by default: the OpenAPI files declare a
	// nullable integer, but Keyfactor's own Go client v3 cannot decode one.
	NumericPrincipalId bool
	// RefuseOr answers queries that use OR with 400, like a server that
	// does not support them, so a client's one-id-at-a-time fallback can be
	// tested.
	RefuseOr bool
	// NoMyPermissions makes GET /Security/My/Permissions answer 404, as a
	// Command older than the endpoint does.
	NoMyPermissions bool
	// NoSecurityMy makes GET /Security/My answer 404.
	NoSecurityMy bool
	// NumericStoreTypeEnums writes CustomAliasAllowed, PrivateKeyAllowed and
	// PasswordOptions.Style as the v10 OpenAPI file declares them (integers)
	// instead of the strings Command 25.4.1 sends.
	NumericStoreTypeEnums bool
	// MaxQueryString is the longest query string IIS lets through (request
	// filtering's maxQueryString); 0 means its default, 2048. A longer one
	// is answered 404.15 before Command sees it.
	MaxQueryString int
}

// Fixture is a world to load into a Server; it is JSON-loadable with Go's
// field names (any key case).
type Fixture struct {
	Users        []User
	Clients      []OAuthClient
	Containers   []Container
	Stores       []Store
	StoreTypes   []StoreType
	Templates    []Template
	Certificates []Certificate
	Collections  []Collection
}

// User is an Active Directory account for Basic authentication:
// "DOMAIN\user:pass", or "user:pass" when Domain is empty. Domain and
// username are matched without regard to case. Permissions are v2
// access-control strings, inherited as Command 11+ does; Roles is what GET
// /Security/My lists.
type User struct {
	Username, Domain, Password string
	Permissions                []string
	Roles                      []string
}

// OAuthClient is a client-credentials client; it gets tokens from
// POST /_kfsim/oauth/token and its identity is its ClientID.
type OAuthClient struct {
	ClientID, ClientSecret string
	Permissions            []string
	Roles                  []string
}

// Container is a certificate store container, the unit of scoped store
// permissions ("/certificate_stores/schedule/4/").
type Container struct {
	Id   int
	Name string
}

// Collection is a certificate collection, the unit of scoped certificate
// permissions ("/certificates/collections/read/3/"); reads and Renew that
// name it with collectionId see only its certificates.
type Collection struct {
	Id             int
	Name           string
	CertificateIds []int
}

// Store is a certificate store.
type Store struct {
	Id                       string // GUID; matched without regard to case
	ContainerId              int    // 0 = none
	ClientMachine, StorePath string
	CertStoreType            int
	// RequiresEntryPassword makes Deploy fail this store when Password is
	// empty, like PEM stores (see also StoreType.EntryPasswordRequired).
	RequiresEntryPassword bool
	// FailJobs, when set, makes every management job to this store fail with
	// this message.
	FailJobs string
	// Unapproved and NoAgent model a store that is not approved, or has no
	// orchestrator assigned: Deploy accepts it, its jobs fail.
	Unapproved, NoAgent bool
	// Properties are the store's properties, sent as a JSON string.
	Properties map[string]string
}

// Alias rules of a store type, the values of CustomAliasAllowed.
const (
	AliasForbidden = "Forbidden"
	AliasOptional  = "Optional"
	AliasRequired  = "Required"
)

// StoreType is a certificate store type (GET /CertificateStoreTypes).
// Stores whose CertStoreType names no fixture type get a generated one with
// an optional alias and no entry password.
type StoreType struct {
	StoreType       int
	Name, ShortName string
	// CustomAliasAllowed is AliasForbidden, AliasOptional (default) or
	// AliasRequired; Deploy fails a store given an alias its type forbids
	// or missing one its type requires.
	CustomAliasAllowed string
	// EntryPasswordSupported is PasswordOptions.EntrySupported on the wire.
	EntryPasswordSupported bool
	// EntryPasswordRequired makes Deploy fail stores of this type when
	// Password is empty. Command has no such field on the wire (the
	// requirement is the store type's own rule), so it stays the
	// simulator's knob; it implies EntryPasswordSupported.
	EntryPasswordRequired bool
	generated             bool
}

// Template is a certificate template.
type Template struct {
	Name             string
	RequiresApproval bool
	// Lifetime is the validity of issued certificates, default 365 days. In
	// JSON it is a duration string ("8760h", "90d") or nanoseconds.
	Lifetime time.Duration
	// Disposition, when "DENIED" or "FAILED", makes Renew of certificates of
	// this template answer 200 with that RequestDisposition, no ids and
	// DispositionMessage.
	Disposition, DispositionMessage string
}

// Location is one entry of a certificate's Locations: a store that
// inventory found holding it, under an alias [OAS
// CertificateStoreInventoryItemModel; REC].
type Location struct {
	StoreMachine string
	StorePath    string
	StoreType    int
	Alias        string
	CertStoreId  string
}

// Certificate is a fixture certificate, and the simulator's view of one
// (Server.Certificate). Missing Thumbprint, SerialNumber and IssuedCN are
// filled in; a zero validity becomes 350 days ago → 15 days from now, so
// the certificate is due under a 30-day renewal threshold.
type Certificate struct {
	Id                                           int
	Thumbprint, SerialNumber, IssuedDN, IssuedCN string
	IssuerDN                                     string
	ImportDate, NotBefore, NotAfter              time.Time
	TemplateName, CertificateAuthorityName       string
	// RequiresTemplate means no one-click renewal: Renew must name Template
	// and CertificateAuthority.
	RequiresTemplate bool
	// PrincipalId is the certificate's principal; nil is null on the wire
	// (see Options.NumericPrincipalId).
	PrincipalId   *int
	RequesterName string
	// CertRequestId is the enrollment request that issued it, 0 for none.
	CertRequestId int
	// Revoked certificates have CertState 2 and are listed only with
	// includeRevoked.
	Revoked bool
	// RenewDisposition, when "DENIED" or "FAILED", makes Renew of this
	// certificate answer so (see Template.Disposition).
	RenewDisposition, DispositionMessage string
	Locations                            []Location
}

// UnmarshalJSON accepts Lifetime as a duration string (with a "d" day
// suffix allowed) or a number of nanoseconds, and rejects unknown keys.
func (t *Template) UnmarshalJSON(b []byte) error {
	var raw struct {
		Name                            string
		RequiresApproval                bool
		Lifetime                        json.RawMessage
		Disposition, DispositionMessage string
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	*t = Template{Name: raw.Name, RequiresApproval: raw.RequiresApproval, Disposition: raw.Disposition, DispositionMessage: raw.DispositionMessage}
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
		Name                            string
		RequiresApproval                bool
		Lifetime                        string `json:",omitempty"`
		Disposition, DispositionMessage string `json:",omitempty"`
	}{t.Name, t.RequiresApproval, durationString(t.Lifetime), t.Disposition, t.DispositionMessage})
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
// and mount it as an http.Handler. All state sits behind one mutex. Lookups
// by id, thumbprint, request id, subject and store entry go through an
// index, so the requests runner makes cost the same in a world of a
// thousand certificates as in one of a million; a query on another field
// scans.
type Server struct {
	opts          Options
	base          string // "/KeyfactorAPI"
	window        time.Duration
	delay         time.Duration
	inventory     time.Duration
	maxPage       int // 0: no cap
	tokenLifetime time.Duration
	clock         Clock
	logf          func(format string, args ...any)

	mu          sync.Mutex
	rng         *rand.Rand // ids, thumbprints, serials, job ids
	users       map[string]*User
	clients     map[string]*OAuthClient
	tokens      map[string]token
	containers  map[int]*Container
	collections map[int]*collection
	stores      map[string]*Store // key: lowercase id
	storeOrder  []string
	storeTypes  map[int]*StoreType
	templates   map[string]*Template // key: lowercase name
	world       certIndex
	nextReqID   int
	requests    map[int]*request // request id → enrollment request
	jobs        jobQueue
	failJobs    map[string]string // store id → message, set by FailJobs
	ledger      Ledger
	names       nameIDs

	faults        []*faultState
	faultRng      *rand.Rand
	latencyFixed  time.Duration
	latencyJitter time.Duration
	latencyRng    *rand.Rand
	outage        outage
}

// collection is a loaded Collection.
type collection struct {
	Collection
	members map[int]bool
}

// certRecord is a certificate as the simulator holds it: the filled-in
// fixture view (Locations are what inventory shows) plus wire details.
type certRecord struct {
	Certificate
	templateID, caID, requesterID int
}

// nameIDs numbers templates, CAs and requesters for the *Id fields of the
// wire, in order of first appearance.
type nameIDs struct {
	templates, cas, requesters map[string]int
}

func (n *nameIDs) id(m *map[string]int, name string) int {
	if name == "" {
		return 0
	}
	if *m == nil {
		*m = map[string]int{}
	}
	k := strings.ToLower(name)
	if id, ok := (*m)[k]; ok {
		return id
	}
	id := len(*m) + 1
	(*m)[k] = id
	return id
}

// numberNames sets the wire ids of rec's template, CA and requester.
func (s *Server) numberNames(rec *certRecord) {
	rec.templateID = s.names.id(&s.names.templates, rec.TemplateName)
	rec.caID = s.names.id(&s.names.cas, rec.CertificateAuthorityName)
	rec.requesterID = s.names.id(&s.names.requesters, rec.RequesterName)
}

// defaultPrincipal is the PrincipalId of certificate id when nothing sets
// one: null, or a number under Options.NumericPrincipalId.
func (s *Server) defaultPrincipal(id int) *int {
	if !s.opts.NumericPrincipalId {
		return nil
	}
	v := 100 + id%900
	return &v
}

// request is an enrollment request made by Renew: the staging record of its
// private key and, while approval is pending, what to issue.
type request struct {
	id            int
	certID        int // 0 until issued
	identity      string
	submittedAt   time.Time
	stagedAt      time.Time
	state         requestState
	denialComment string
	old           certRecord
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
		opts:          opts,
		window:        opts.Window,
		delay:         opts.JobDelay,
		inventory:     max(opts.InventoryDelay, 0),
		tokenLifetime: opts.TokenLifetime,
		clock:         opts.Clock,
		logf:          opts.Logf,
		rng:           rand.New(rand.NewPCG(uint64(opts.Seed), 0x6b6673696d)),
		users:         map[string]*User{},
		clients:       map[string]*OAuthClient{},
		tokens:        map[string]token{},
		containers:    map[int]*Container{},
		collections:   map[int]*collection{},
		stores:        map[string]*Store{},
		storeTypes:    map[int]*StoreType{},
		templates:     map[string]*Template{},
		world:         newCertIndex(),
		nextReqID:     firstRequestID,
		requests:      map[int]*request{},
		failJobs:      map[string]string{},
		latencyRng:    rand.New(rand.NewPCG(uint64(opts.Seed), 0x6c6174)),
	}
	s.jobs.init()
	s.outage.init()
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
	switch {
	case opts.MaxPageSize == 0:
		s.maxPage = DefaultMaxPageSize
	case opts.MaxPageSize > 0:
		s.maxPage = opts.MaxPageSize
	}
	if s.tokenLifetime <= 0 {
		s.tokenLifetime = DefaultTokenLifetime
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

// storeKey is the form a store id is held and looked up in: a GUID,
// matched without regard to case or surrounding space.
func storeKey(id string) string { return strings.ToLower(strings.TrimSpace(id)) }

func userKey(domain, username string) string {
	return strings.ToLower(domain) + `\` + strings.ToLower(username)
}

// Load merges f into the world. It validates the whole fixture first and
// changes nothing when any part is wrong; duplicates of what is already
// loaded are errors too. Containers named by stores but not declared are
// created, and so are store types. Its cost is linear in the fixture (n log
// n when its certificate ids are out of order).
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
		u.Permissions = slices.Clone(u.Permissions)
		u.Roles = slices.Clone(u.Roles)
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
		c.Permissions = slices.Clone(c.Permissions)
		c.Roles = slices.Clone(c.Roles)
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
	storeTypes := map[int]*StoreType{}
	for _, t := range f.StoreTypes {
		if t.StoreType <= 0 {
			bad("store type %q: StoreType must be positive", t.Name)
			continue
		}
		if old := s.storeTypes[t.StoreType]; (old != nil && !old.generated) || storeTypes[t.StoreType] != nil {
			bad("store type %d: duplicate", t.StoreType)
			continue
		}
		switch strings.ToLower(t.CustomAliasAllowed) {
		case "", "optional":
			t.CustomAliasAllowed = AliasOptional
		case "forbidden":
			t.CustomAliasAllowed = AliasForbidden
		case "required":
			t.CustomAliasAllowed = AliasRequired
		default:
			bad("store type %d: CustomAliasAllowed %q: want Forbidden, Optional or Required", t.StoreType, t.CustomAliasAllowed)
			continue
		}
		if t.EntryPasswordRequired {
			t.EntryPasswordSupported = true
		}
		fillStoreTypeNames(&t)
		t.generated = false
		storeTypes[t.StoreType] = &t
	}
	stores := map[string]*Store{}
	var storeOrder []string
	for i, st := range f.Stores {
		st.Id = storeKey(st.Id)
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
		if st.CertStoreType > 0 && s.storeTypes[st.CertStoreType] == nil && storeTypes[st.CertStoreType] == nil {
			t := &StoreType{StoreType: st.CertStoreType, CustomAliasAllowed: AliasOptional, generated: true}
			fillStoreTypeNames(t)
			storeTypes[st.CertStoreType] = t
		}
		st.Properties = maps.Clone(st.Properties)
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
		if err := checkDisposition(t.Disposition); err != nil {
			bad("template %s: %w", t.Name, err)
			continue
		}
		templates[k] = &t
	}
	// Ids first, so certificates without one are numbered after all the
	// explicit ones.
	maxID := s.world.maxID
	ids := make(map[int]bool, len(f.Certificates))
	for _, c := range f.Certificates {
		if c.Id < 0 {
			bad("certificate %d: Id must not be negative", c.Id)
		}
		if c.Id > 0 {
			if s.world.byID[c.Id] != nil || ids[c.Id] {
				bad("certificate %d: duplicate Id", c.Id)
			}
			ids[c.Id] = true
			maxID = max(maxID, c.Id)
		}
	}
	certs := make([]*certRecord, 0, len(f.Certificates))
	thumbs := make(map[string]int, len(f.Certificates))
	locs := map[locKey]int{}
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
		tp := rec.Thumbprint
		if s.world.byThumb[tp] != 0 || thumbs[tp] != 0 {
			bad("certificate %d: duplicate Thumbprint %s", c.Id, tp)
			continue
		}
		for _, l := range rec.Locations {
			k := locKey{l.CertStoreId, strings.ToLower(l.Alias)}
			other, taken := s.world.locs[k]
			if !taken {
				other, taken = locs[k]
			}
			if taken && other != rec.Id {
				bad("certificate %d: store %s alias %q is already held by certificate %d", rec.Id, l.CertStoreId, l.Alias, other)
			}
			locs[k] = rec.Id
		}
		thumbs[tp] = c.Id
		certs = append(certs, rec)
	}
	colls := map[int]*collection{}
	for _, c := range f.Collections {
		if c.Id <= 0 {
			bad("collection %q: Id must be positive", c.Name)
			continue
		}
		if s.collections[c.Id] != nil || colls[c.Id] != nil {
			bad("collection %d: duplicate", c.Id)
			continue
		}
		if c.Name == "" {
			c.Name = "Collection " + strconv.Itoa(c.Id)
		}
		col := &collection{Collection: c, members: map[int]bool{}}
		col.CertificateIds = slices.Clone(c.CertificateIds)
		for _, id := range c.CertificateIds {
			col.members[id] = true
		}
		colls[c.Id] = col
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
	for k, v := range storeTypes {
		s.storeTypes[k] = v
	}
	for k, v := range stores {
		s.stores[k] = v
	}
	s.storeOrder = append(s.storeOrder, storeOrder...)
	for k, v := range templates {
		s.templates[k] = v
	}
	for k, v := range colls {
		s.collections[k] = v
	}
	for _, rec := range certs {
		s.numberNames(rec)
	}
	s.world.addAll(certs)
	return nil
}

func checkDisposition(d string) error {
	switch strings.ToUpper(d) {
	case "", dispositionDenied, dispositionFailed:
		return nil
	}
	return fmt.Errorf("disposition %q: want DENIED, FAILED or nothing", d)
}

// fillStoreTypeNames names a store type that has no name.
func fillStoreTypeNames(t *StoreType) {
	if t.ShortName == "" {
		t.ShortName = "KFS" + strconv.Itoa(t.StoreType)
	}
	if t.Name == "" {
		t.Name = "kfsim store type " + strconv.Itoa(t.StoreType)
	}
}

// fixtureCertificate turns a fixture certificate into a record, filling in
// what a real certificate always has.
func (s *Server) fixtureCertificate(c Certificate, now time.Time, newStores map[string]*Store) (*certRecord, error) {
	c.Thumbprint = normalizeHex(c.Thumbprint)
	if c.Thumbprint == "" {
		c.Thumbprint = s.randomHex(20)
	} else if !isHex(c.Thumbprint) {
		return nil, fmt.Errorf("field Thumbprint: %q is not hex", c.Thumbprint)
	}
	c.SerialNumber = normalizeHex(c.SerialNumber)
	if c.SerialNumber == "" {
		c.SerialNumber = s.randomHex(20)
	}
	switch {
	case c.IssuedDN == "" && c.IssuedCN == "":
		c.IssuedCN = "cert-" + strconv.Itoa(c.Id) + ".kfsim.test"
		c.IssuedDN = "CN=" + c.IssuedCN
	case c.IssuedDN == "":
		c.IssuedDN = "CN=" + c.IssuedCN
	case c.IssuedCN == "":
		c.IssuedCN = cnOf(c.IssuedDN)
	}
	if c.IssuerDN == "" {
		c.IssuerDN = defaultIssuerDN
	}
	if c.NotBefore.IsZero() && c.NotAfter.IsZero() {
		c.NotBefore = now.Add(-350 * 24 * time.Hour).Truncate(time.Second)
		c.NotAfter = c.NotBefore.Add(DefaultLifetime)
	}
	if !c.NotAfter.After(c.NotBefore) {
		return nil, fmt.Errorf("field NotAfter: %s is not after NotBefore %s", c.NotAfter.Format(time.RFC3339), c.NotBefore.Format(time.RFC3339))
	}
	c.NotBefore, c.NotAfter = c.NotBefore.UTC(), c.NotAfter.UTC()
	if c.ImportDate.IsZero() {
		c.ImportDate = c.NotBefore
	}
	c.ImportDate = c.ImportDate.UTC().Truncate(time.Millisecond)
	if err := checkDisposition(c.RenewDisposition); err != nil {
		return nil, err
	}
	if c.CertRequestId < 0 {
		return nil, fmt.Errorf("field CertRequestId: must not be negative")
	}
	if c.PrincipalId != nil {
		v := *c.PrincipalId
		c.PrincipalId = &v
	} else {
		c.PrincipalId = s.defaultPrincipal(c.Id)
	}
	locs := make([]Location, 0, len(c.Locations))
	for _, l := range c.Locations {
		l.CertStoreId = storeKey(l.CertStoreId)
		st := s.stores[l.CertStoreId]
		if st == nil {
			st = newStores[l.CertStoreId]
		}
		if st != nil {
			fillLocation(&l, st)
		}
		if l.Alias == "" {
			l.Alias = c.Thumbprint
		}
		locs = append(locs, l)
	}
	c.Locations = locs
	return &certRecord{Certificate: c}, nil
}

// fillLocation completes a location from its store.
func fillLocation(l *Location, st *Store) {
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

// hexSeparators are what people paste between the bytes of a thumbprint.
var hexSeparators = strings.NewReplacer(":", "", " ", "", "-", "")

// normalizeHex uppercases a hex string and drops the separators people
// paste with thumbprints.
func normalizeHex(s string) string {
	return strings.ToUpper(hexSeparators.Replace(strings.TrimSpace(s)))
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
	return guidOf(strings.ToLower(s.randomHex(16)))
}

// nameGUID returns a GUID derived from a name, for ids that must not
// consume the seeded source (agents, job types).
func nameGUID(name string) string {
	h := fnv.New128a()
	h.Write([]byte(name))
	return guidOf(fmt.Sprintf("%x", h.Sum(nil)))
}

func guidOf(h string) string {
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// FailJobs makes management jobs to storeID that run from now on fail with
// message; an empty message lifts it again. Jobs already due are settled
// first, so they keep their outcome.
func (s *Server) FailJobs(storeID, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(s.now())
	id := storeKey(storeID)
	if message == "" {
		delete(s.failJobs, id)
		return
	}
	s.failJobs[id] = message
}

// Certificate returns the simulator's view of certificate id, with the
// Locations inventory shows now, after settling due jobs.
func (s *Server) Certificate(id int) (Certificate, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(s.now())
	rec := s.world.byID[id]
	if rec == nil {
		return Certificate{}, false
	}
	c := rec.Certificate
	c.Locations = slices.Clone(c.Locations)
	if c.PrincipalId != nil {
		v := *c.PrincipalId
		c.PrincipalId = &v
	}
	return c, true
}

// AddLocation puts certificate certID into store storeID under alias (the
// thumbprint when empty), as if inventory had found it there, replacing
// whatever entry held that alias: drift made by hand, for tests.
func (s *Server) AddLocation(certID int, storeID, alias string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(s.now())
	rec := s.world.byID[certID]
	if rec == nil {
		return fmt.Errorf("add location: certificate %d: %w", certID, errNotFound)
	}
	st := s.stores[storeKey(storeID)]
	if st == nil {
		return fmt.Errorf("add location: store %s: %w", storeID, errNotFound)
	}
	if alias == "" {
		alias = rec.Thumbprint
	}
	s.world.place(rec, st, alias)
	return nil
}

// RemoveLocation takes certificate certID out of store storeID (every alias
// it has there), as if inventory had found it gone.
func (s *Server) RemoveLocation(certID int, storeID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(s.now())
	rec := s.world.byID[certID]
	if rec == nil {
		return fmt.Errorf("remove location: certificate %d: %w", certID, errNotFound)
	}
	id := storeKey(storeID)
	if !s.world.removeFromStore(rec, id) {
		return fmt.Errorf("remove location: certificate %d is not in store %s: %w", certID, storeID, errNotFound)
	}
	return nil
}

var errNotFound = errors.New("not found")

// certIndex holds the certificates with every index a request needs: by id,
// thumbprint, request id, issued DN and CN, the ids in ascending order for
// scans, and the entries of every store by (store, alias).
type certIndex struct {
	byID    map[int]*certRecord
	byThumb map[string]int   // uppercase thumbprint → id
	byReq   map[int]int      // CertRequestId → id
	byDN    map[string][]int // lowercase IssuedDN → ids
	byCN    map[string][]int // lowercase IssuedCN → ids
	order   []int            // ascending ids
	locs    map[locKey]int   // (store, lowercase alias) → id
	maxID   int
}

// locKey names one entry of one store.
type locKey struct {
	store, alias string
}

func newCertIndex() certIndex {
	return certIndex{byID: map[int]*certRecord{}, byThumb: map[string]int{}, byReq: map[int]int{},
		byDN: map[string][]int{}, byCN: map[string][]int{}, locs: map[locKey]int{}}
}

// add indexes a new record. Issued certificates take the next id, so order
// stays sorted with an append; an id below the last one is inserted in place.
func (x *certIndex) add(rec *certRecord) {
	x.index(rec)
	if n := len(x.order); n == 0 || x.order[n-1] < rec.Id {
		x.order = append(x.order, rec.Id)
	} else {
		i, _ := slices.BinarySearch(x.order, rec.Id)
		x.order = slices.Insert(x.order, i, rec.Id)
	}
}

// addAll indexes many new records at once, sorting the id order once, so a
// fixture in any id order loads in O(n log n).
func (x *certIndex) addAll(recs []*certRecord) {
	sorted := true
	last := 0
	if n := len(x.order); n > 0 {
		last = x.order[n-1]
	}
	for _, rec := range recs {
		x.index(rec)
		if rec.Id < last {
			sorted = false
		}
		last = rec.Id
		x.order = append(x.order, rec.Id)
	}
	if !sorted {
		slices.Sort(x.order)
	}
}

// index puts rec into every index but order.
func (x *certIndex) index(rec *certRecord) {
	id := rec.Id
	x.byID[id] = rec
	x.byThumb[rec.Thumbprint] = id
	if rec.CertRequestId != 0 {
		x.byReq[rec.CertRequestId] = id
	}
	dn := strings.ToLower(rec.IssuedDN)
	x.byDN[dn] = append(x.byDN[dn], id)
	cn := strings.ToLower(rec.IssuedCN)
	x.byCN[cn] = append(x.byCN[cn], id)
	for _, l := range rec.Locations {
		x.locs[locKey{l.CertStoreId, strings.ToLower(l.Alias)}] = id
	}
	x.maxID = max(x.maxID, id)
}

// lookup answers an indexed `-eq` clause of a certificate query.
func (x *certIndex) lookup(c clause) ([]int, bool) {
	switch c.field.name {
	case "Id":
		if x.byID[int(c.num)] != nil {
			return []int{int(c.num)}, true
		}
		return nil, true
	case "Thumbprint":
		if id, ok := x.byThumb[strings.ToUpper(c.str)]; ok {
			return []int{id}, true
		}
		return nil, true
	case "CertRequestId":
		if id, ok := x.byReq[int(c.num)]; ok {
			return []int{id}, true
		}
		return nil, true
	case "IssuedDN":
		return x.byDN[c.str], true
	case "IssuedCN":
		return x.byCN[c.str], true
	}
	return nil, false
}

// place puts rec at (store, alias): the entry that held the alias, if any,
// leaves that certificate.
func (x *certIndex) place(rec *certRecord, st *Store, alias string) {
	k := locKey{st.Id, strings.ToLower(alias)}
	if other, ok := x.locs[k]; ok {
		if other == rec.Id {
			return
		}
		if o := x.byID[other]; o != nil {
			o.Locations = slices.DeleteFunc(o.Locations, func(l Location) bool {
				return l.CertStoreId == st.Id && strings.EqualFold(l.Alias, alias)
			})
		}
	}
	l := Location{Alias: alias, CertStoreId: st.Id}
	fillLocation(&l, st)
	rec.Locations = append(rec.Locations, l)
	x.locs[k] = rec.Id
}

// removeFromStore drops every entry of rec in store; it reports whether
// there was one.
func (x *certIndex) removeFromStore(rec *certRecord, store string) bool {
	found := false
	rec.Locations = slices.DeleteFunc(rec.Locations, func(l Location) bool {
		if l.CertStoreId != store {
			return false
		}
		found = true
		delete(x.locs, locKey{store, strings.ToLower(l.Alias)})
		return true
	})
	return found
}

// holder returns the certificate that holds alias in store, 0 if none.
func (x *certIndex) holder(store, alias string) int {
	return x.locs[locKey{store, strings.ToLower(alias)}]
}

// sortedIDs returns ids sorted, without duplicates, for an index answer.
func sortedIDs(ids []int) []int {
	out := slices.Clone(ids)
	sort.Ints(out)
	return slices.Compact(out)
}
