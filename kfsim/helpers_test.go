package kfsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Store ids of testdata/world.json.
const (
	storeWeb01 = "11111111-1111-4111-8111-111111111111" // container 4
	storeDB    = "22222222-2222-4222-8222-222222222222" // container 7, entry password
	storeK8s   = "33333333-3333-4333-8333-333333333333" // no container
	storeWeb02 = "44444444-4444-4444-8444-444444444444" // container 4
	storeF5    = "55555555-5555-4555-8555-555555555555" // container 4, type 5: alias required
	// storeUnapproved (container 4) and storeNoAgent (no container) take
	// deploys whose jobs fail.
	storeUnapproved = "66666666-6666-4666-8666-666666666666"
	storeNoAgent    = "88888888-8888-4888-8888-888888888888"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// Credentials of testdata/world.json.
var (
	alice = cred{`CORP\alice`, "alice-pw"}
	bob   = cred{`CORP\bob`, "bob-pw"}
	carol = cred{`CORP\carol`, "carol-pw"}
	dave  = cred{`CORP\dave`, "dave-pw"}
	eve   = cred{"eve", "eve-pw"}
	root  = cred{`CORP\root`, "root-pw"}   // "/"
	sam   = cred{`CORP\sam`, "sam-pw"}     // "/certificates/", "/certificate_stores/"
	frank = cred{`CORP\frank`, "frank-pw"} // collection 3 and container 4 only
	olga  = cred{`CORP\olga`, "olga-pw"}   // alerts and agents read
)

type cred struct{ user, pass string }

func (c cred) header() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.user+":"+c.pass))
}

// harness is a simulator loaded with testdata/world.json behind a real
// HTTP server, with a driven clock and captured logs.
type harness struct {
	t     testing.TB
	sim   *Server
	clock *ManualClock
	srv   *httptest.Server
	// client makes one connection per request.
	client *http.Client

	mu   sync.Mutex
	logs []string
}

func newHarness(t testing.TB, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, clock: NewManualClock(t0)}
	if opts.Clock == nil {
		opts.Clock = h.clock
	}
	opts.Logf = func(format string, args ...any) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.logs = append(h.logs, fmt.Sprintf(format, args...))
	}
	h.sim = New(opts)
	f, err := LoadFixture("testdata/world.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.sim.Load(f); err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(h.sim)
	t.Cleanup(h.srv.Close)
	transport := &http.Transport{DisableKeepAlives: true}
	h.client = &http.Client{Transport: transport}
	t.Cleanup(transport.CloseIdleConnections)
	return h
}

func (h *harness) logged(substr string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.logs {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

// result is an answer read in full.
type result struct {
	status int
	header http.Header
	body   []byte
}

// call sends a request as a Keyfactor client would (header set, JSON body);
// path is relative to the base path unless it starts with "/".
func (h *harness) call(method, path string, who cred, body any) result {
	h.t.Helper()
	res, err := h.try(method, path, who, body, true)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	return res
}

func (h *harness) try(method, path string, who cred, body any, header bool) (result, error) {
	h.t.Helper()
	if !strings.HasPrefix(path, "/") {
		path = h.sim.BasePath() + "/" + path
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if header {
		req.Header.Set("x-keyfactor-requested-with", "APIClient")
	}
	req.Header.Set("x-keyfactor-api-version", "1")
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if who.user != "" {
		req.Header.Set("Authorization", who.header())
	}
	// A connection per request: Go's client retries an idempotent request
	// once when a reused connection breaks, which would hide (and double)
	// the faults these tests inject.
	resp, err := h.client.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, err
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// decode decodes a JSON body, failing the test when it does not decode or
// the status is not want.
func decode[T any](t testing.TB, res result, want int) T {
	t.Helper()
	var v T
	if res.status != want {
		t.Fatalf("status = %d, want %d; body: %s", res.status, want, res.body)
	}
	if err := json.Unmarshal(res.body, &v); err != nil {
		t.Fatalf("decode %T: %v; body: %s", v, err, res.body)
	}
	return v
}

// wantError checks a Command error answer.
func wantError(t testing.TB, res result, status int, msgContains string) wireError {
	t.Helper()
	e := decode[wireError](t, res, status)
	if !strings.HasPrefix(e.ErrorCode, "0x") {
		t.Errorf("ErrorCode = %q, want 0x…", e.ErrorCode)
	}
	if !strings.Contains(e.Message, msgContains) {
		t.Errorf("Message = %q, want it to contain %q", e.Message, msgContains)
	}
	return e
}

// renewAnswer decodes a Renew answer as a client would, independently of
// the simulator's own wire type.
type renewAnswer struct {
	KeyfactorId, KeyfactorRequestId        int
	Thumbprint, SerialNumber               string
	IssuerDN                               *string
	RequestDisposition, DispositionMessage string
}

func (h *harness) renew(who cred, req wireRenewalRequest) renewAnswer {
	h.t.Helper()
	return decode[renewAnswer](h.t, h.call("POST", "Enrollment/Renew", who, req), http.StatusOK)
}

// at returns t as a request time.
func at(t time.Time) *wireTime { return &wireTime{t} }

// holds reports whether locs has an entry in store under alias (any case).
func holds(locs []Location, store, alias string) bool {
	for _, l := range locs {
		if strings.EqualFold(l.CertStoreId, store) && strings.EqualFold(l.Alias, alias) {
			return true
		}
	}
	return false
}

func (h *harness) deploy(who cred, req wireDeployRequest) wireDeployResponse {
	h.t.Helper()
	return decode[wireDeployResponse](h.t, h.call("POST", "Enrollment/PFX/Deploy", who, req), http.StatusOK)
}

func stores(ids ...string) []wireDeployStore {
	out := make([]wireDeployStore, len(ids))
	for i, id := range ids {
		out[i] = wireDeployStore{StoreId: id}
	}
	return out
}
