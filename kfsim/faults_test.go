package kfsim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseFault(t *testing.T) {
	tests := []struct {
		spec    string
		want    FaultRule
		wantErr string
	}{
		{spec: "renew:drop-after:times=1", want: FaultRule{Endpoint: "renew", Kind: "drop-after", Times: 1}},
		{spec: "deploy:429:times=3,retry-after=1s", want: FaultRule{Endpoint: "deploy", Kind: "429", Times: 3, RetryAfter: time.Second}},
		{spec: "*:503:p=0.1", want: FaultRule{Endpoint: "*", Kind: "503", Probability: 0.1}},
		{spec: " Certificate:Latency:delay=250ms, skip=2 ", want: FaultRule{Endpoint: "certificate", Kind: "latency", Delay: 250 * time.Millisecond, Skip: 2}},
		{spec: "stores:slow-body:delay=2s,probability=1", want: FaultRule{Endpoint: "stores", Kind: "slow-body", Delay: 2 * time.Second, Probability: 1}},
		{spec: "token:malformed-json", want: FaultRule{Endpoint: "token", Kind: "malformed-json"}},
		{spec: "certificates:html-error:status=504", want: FaultRule{Endpoint: "certificates", Kind: "html-error", Status: 504}},
		{spec: "*:restart:times=1,delay=3s", want: FaultRule{Endpoint: "*", Kind: "restart", Times: 1, Delay: 3 * time.Second}},
		{spec: "deploy:500-after", want: FaultRule{Endpoint: "deploy", Kind: "500-after"}},
		{spec: "workflow:reset-after:skip=2", want: FaultRule{Endpoint: "workflow", Kind: "reset-after", Skip: 2}},
		{spec: "jobhistory:wrong-content-type", want: FaultRule{Endpoint: "jobhistory", Kind: "wrong-content-type"}},
		{spec: "storetypes:reset-before", want: FaultRule{Endpoint: "storetypes", Kind: "reset-before"}},
		{spec: "renew:html-error:status=200", wantErr: "400–599"},
		{spec: "renew", wantErr: "want ENDPOINT:KIND"},
		{spec: "renewal:500", wantErr: `unknown endpoint "renewal"`},
		{spec: "renew:404", wantErr: `unknown kind "404"`},
		{spec: "renew:500:times", wantErr: "not key=value"},
		{spec: "renew:500:times=-1", wantErr: "non-negative"},
		{spec: "renew:500:p=1.5", wantErr: "0 < p <= 1"},
		{spec: "renew:429:retry-after=soon", wantErr: "duration"},
		{spec: "renew:500:color=red", wantErr: `unknown option "color"`},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := ParseFault(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			back, err := ParseFault(got.String())
			if err != nil || back != got {
				t.Errorf("String() %q does not round-trip: %+v, %v", got.String(), back, err)
			}
		})
	}
}

// TestEndpointKeysAreTheRoutes: a fault can name exactly the keys requests
// are recorded under (every route's, the token endpoint's) and "*".
func TestEndpointKeysAreTheRoutes(t *testing.T) {
	want := []string{"token", "*"}
	for _, rt := range routes {
		if !slices.Contains(want, rt.key) {
			want = append(want, rt.key)
		}
	}
	got := slices.Clone(endpointKeys)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("endpointKeys = %q, want the route keys %q", got, want)
	}
}

func mustFault(t testing.TB, spec string) FaultRule {
	t.Helper()
	r, err := ParseFault(spec)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestErrorStatusFaults(t *testing.T) {
	tests := []struct {
		spec           string
		wantStatus     int
		wantRetryAfter string
		wantJSON       bool
	}{
		{"renew:500", 500, "", true},
		{"renew:503", 503, "", false},
		{"renew:503:retry-after=2s", 503, "2", false},
		{"renew:429", 429, "1", true},
		{"renew:429:retry-after=3s", 429, "3", true},
		{"renew:429:retry-after=250ms", 429, "1", true},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			h := newHarness(t, Options{})
			h.sim.SetFaults(mustFault(t, tc.spec))
			res := h.call("POST", "Enrollment/Renew", alice, wireRenewalRequest{CertificateId: 100})
			if res.status != tc.wantStatus {
				t.Fatalf("status = %d, want %d", res.status, tc.wantStatus)
			}
			if got := res.header.Get("Retry-After"); got != tc.wantRetryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tc.wantRetryAfter)
			}
			var e wireError
			if isJSON := json.Unmarshal(res.body, &e) == nil; isJSON != tc.wantJSON {
				t.Errorf("body JSON = %v, want %v: %s", isJSON, tc.wantJSON, res.body)
			}
			l := h.sim.Ledger()
			if len(l.Renewals) != 0 {
				t.Error("a faulted renew was processed")
			}
			if r := l.Requests[0]; r.Fault != mustFault(t, tc.spec).Kind || r.Status != tc.wantStatus || r.Identity != `CORP\alice` {
				t.Errorf("ledger request = %+v", r)
			}
		})
	}
}

func TestFaultTimesAndSkip(t *testing.T) {
	h := newHarness(t, Options{})
	h.sim.SetFaults(mustFault(t, "status:500:times=2,skip=1"))
	var got []int
	for i := 0; i < 5; i++ {
		got = append(got, h.call("GET", "Status/Endpoints", alice, nil).status)
	}
	// Other endpoints are not touched.
	if s := h.call("GET", "Security/My/Permissions", alice, nil).status; s != 200 {
		t.Errorf("permissions status = %d", s)
	}
	if want := []int{200, 500, 500, 200, 200}; !slices.Equal(got, want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
}

func TestProbabilityFaultsReproducible(t *testing.T) {
	run := func(h *harness) []int {
		var out []int
		for i := 0; i < 40; i++ {
			out = append(out, h.call("GET", "Status/Endpoints", alice, nil).status)
		}
		return out
	}
	a := newHarness(t, Options{Seed: 9})
	a.sim.SetFaults(mustFault(t, "*:503:p=0.5"))
	b := newHarness(t, Options{Seed: 9})
	b.sim.SetFaults(mustFault(t, "*:503:p=0.5"))
	first, second := run(a), run(b)
	if !slices.Equal(first, second) {
		t.Errorf("same seed, different faults:\n%v\n%v", first, second)
	}
	n503 := 0
	for _, s := range first {
		if s == 503 {
			n503++
		}
	}
	if n503 == 0 || n503 == len(first) {
		t.Errorf("p=0.5 gave %d of %d faults", n503, len(first))
	}
	// SetFaults restarts the random source.
	a.sim.SetFaults(mustFault(t, "*:503:p=0.5"))
	if again := run(a); !slices.Equal(first, again) {
		t.Errorf("after SetFaults:\n%v\n%v", first, again)
	}
}

func TestDropBefore(t *testing.T) {
	h := newHarness(t, Options{})
	h.sim.SetFaults(mustFault(t, "renew:drop-before:times=1"))
	if _, err := h.try("POST", "Enrollment/Renew", alice, wireRenewalRequest{CertificateId: 100}, true); err == nil {
		t.Fatal("dropped request returned no error")
	}
	l := h.sim.Ledger()
	if len(l.Renewals) != 0 {
		t.Errorf("drop-before processed the renewal: %+v", l.Renewals)
	}
	if r := l.Requests[0]; r.Fault != "drop-before" || r.Status != 0 || r.Endpoint != "renew" {
		t.Errorf("ledger request = %+v", r)
	}
	h.renew(alice, wireRenewalRequest{CertificateId: 100}) // times=1: the next one passes
}

func TestDropAfterCommitsRenewal(t *testing.T) {
	h := newHarness(t, Options{})
	h.sim.SetFaults(mustFault(t, "renew:drop-after:times=1"))
	if _, err := h.try("POST", "Enrollment/Renew", alice, wireRenewalRequest{CertificateId: 100}, true); err == nil {
		t.Fatal("dropped response returned no error")
	}
	l := h.sim.Ledger()
	if len(l.Renewals) != 1 || !l.Renewals[0].ResponseLost || l.Renewals[0].NewCertificateId == 0 {
		t.Fatalf("renewals = %+v", l.Renewals)
	}
	if r := l.Requests[0]; r.Fault != "drop-after" || r.Status != 0 {
		t.Errorf("ledger request = %+v", r)
	}
	// The certificate exists and can be found, as a recovering client would.
	newID := l.Renewals[0].NewCertificateId
	certs := decode[[]wireCertificate](t, h.call("GET", "Certificates?pq.queryString=CertRequestId+-eq+"+itoa(l.Renewals[0].RequestId), alice, nil), 200)
	if len(certs) != 1 || certs[0].Id != newID {
		t.Errorf("lookup by request id = %+v", certs)
	}
}

func TestMalformedJSON(t *testing.T) {
	h := newHarness(t, Options{})
	h.sim.SetFaults(mustFault(t, "renew:malformed-json"))
	res := h.call("POST", "Enrollment/Renew", alice, wireRenewalRequest{CertificateId: 100})
	var v renewAnswer
	if res.status != 200 || json.Unmarshal(res.body, &v) == nil {
		t.Fatalf("status %d body %s: want 200 and undecodable JSON", res.status, res.body)
	}
	if l := h.sim.Ledger(); len(l.Renewals) != 1 || !l.Renewals[0].ResponseLost || l.Requests[0].Fault != "malformed-json" {
		t.Errorf("ledger = %+v", l)
	}
}

func TestSlowBody(t *testing.T) {
	h := newHarness(t, Options{})
	h.sim.SetFaults(mustFault(t, "certificate:slow-body:delay=50ms"))
	c := decode[wireCertificate](t, h.call("GET", "Certificates/100", alice, nil), 200)
	if c.Id != 100 {
		t.Errorf("certificate = %+v", c)
	}
	if r := h.sim.Ledger().Requests[0]; r.Fault != "slow-body" || r.Status != 200 {
		t.Errorf("ledger request = %+v", r)
	}
}

func TestLatencyFault(t *testing.T) {
	h := newHarness(t, Options{})
	h.sim.SetFaults(mustFault(t, "status:latency:delay=5ms"), mustFault(t, "*:500:skip=1"))
	if s := h.call("GET", "Status/Endpoints", alice, nil).status; s != 200 {
		t.Errorf("first status = %d, want 200 (latency only)", s)
	}
	if s := h.call("GET", "Status/Endpoints", alice, nil).status; s != 500 {
		t.Errorf("second status = %d, want 500 (latency, then 500)", s)
	}
	l := h.sim.Ledger()
	if l.Requests[0].Fault != "latency" || l.Requests[1].Fault != "500" {
		t.Errorf("ledger = %+v", l.Requests)
	}
}

func TestLatencyIsContextAware(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *Server)
		fault string
	}{
		{"SetLatency", func(s *Server) { s.SetLatency(time.Hour, time.Minute) }, ""},
		{"latency fault", func(s *Server) { s.SetFaults(FaultRule{Endpoint: "renew", Kind: "latency", Delay: time.Hour}) }, "latency"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			tc.setup(h.sim)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			req := httptest.NewRequest("POST", "/KeyfactorAPI/Enrollment/Renew", strings.NewReader(`{"CertificateId":100}`)).WithContext(ctx)
			req.Header.Set("Authorization", alice.header())
			req.Header.Set("x-keyfactor-requested-with", "APIClient")
			rec := httptest.NewRecorder()
			h.sim.ServeHTTP(rec, req) // returns at once: the client is gone
			l := h.sim.Ledger()
			if len(l.Renewals) != 0 {
				t.Error("renewal processed after the client went away")
			}
			if r := l.Requests[0]; r.Status != 0 || r.Fault != tc.fault {
				t.Errorf("ledger request = %+v", r)
			}
		})
	}
}

func TestStarFaultCoversToken(t *testing.T) {
	h := newHarness(t, Options{})
	h.sim.SetFaults(mustFault(t, "*:503:times=1"))
	resp, err := h.srv.Client().Post(h.srv.URL+"/_kfsim/oauth/token", "application/x-www-form-urlencoded",
		strings.NewReader("grant_type=client_credentials&client_id=svc-runner&client_secret=s3cret%2F%2B%3D"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("token status = %d, want 503", resp.StatusCode)
	}
	if r := h.sim.Ledger().Requests[0]; r.Endpoint != "token" || r.Fault != "503" {
		t.Errorf("ledger request = %+v", r)
	}
}

// TestBeforeFaultAnswers checks what a client sees from each fault that
// answers instead of Command: a Command error, or a page from something in
// front of it.
func TestBeforeFaultAnswers(t *testing.T) {
	tests := []struct {
		spec        string
		status      int
		contentType string
		bodyHas     string
	}{
		{"certificates:500", 500, "application/json", `"ErrorCode":"0x`},
		{"certificates:html-error", 502, "text/html", "502 - Bad Gateway"},
		{"certificates:html-error:status=504", 504, "text/html", "504 - Gateway Timeout"},
		{"certificates:wrong-content-type", 200, "text/html", "<form"},
		{"certificates:503", 503, "text/html", "Service Unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			h := newHarness(t, Options{})
			h.sim.SetFaults(mustFault(t, tc.spec))
			res := h.call("GET", "Certificates", alice, nil)
			if res.status != tc.status || !strings.HasPrefix(res.header.Get("Content-Type"), tc.contentType) || !strings.Contains(string(res.body), tc.bodyHas) {
				t.Errorf("got %d %q %s, want %d %s containing %q", res.status, res.header.Get("Content-Type"), res.body, tc.status, tc.contentType, tc.bodyHas)
			}
		})
	}
}

// TestFiveHundredAfterTheWork: the deploy's jobs exist although the client
// was told 500.
func TestFiveHundredAfterTheWork(t *testing.T) {
	h := newHarness(t, Options{})
	rn := h.renew(alice, wireRenewalRequest{CertificateId: 104})
	h.sim.SetFaults(mustFault(t, "deploy:500-after:times=1"))
	res := h.call("POST", "Enrollment/PFX/Deploy", alice, wireDeployRequest{CertificateId: rn.KeyfactorId, Stores: stores(storeK8s)})
	wantError(t, res, 500, "after the work was done")
	l := h.sim.Ledger()
	if len(l.Deploys) != 1 || len(l.Jobs) != 1 || l.Requests[1].Fault != "500-after" || l.Requests[1].Status != 500 {
		t.Errorf("ledger = %+v", l)
	}
}

// setWall makes the harness's simulator read wall time from a variable the
// test moves, so outages end when the test says.
func (h *harness) setWall(c *ManualClock) {
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	h.sim.outage.wall = c.Now
}

// waitingHook makes every wait of a request signal on the returned channel.
func (h *harness) waitingHook() <-chan struct{} {
	ch := make(chan struct{}, 16)
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	h.sim.outage.waiting = func() { ch <- struct{}{} }
	return ch
}

// TestRestart: a restart cuts the requests in flight (work committed stays
// committed, its answer is lost), resets new ones while down, and keeps
// Command's state: a renewal staged before it deploys after it.
func TestRestart(t *testing.T) {
	wall := NewManualClock(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	h := newHarness(t, Options{})
	h.setWall(wall)
	rn := h.renew(alice, wireRenewalRequest{CertificateId: 104})
	waiting := h.waitingHook()

	h.sim.SetFaults(mustFault(t, "certificate:latency:delay=1h"), mustFault(t, "renew:slow-body:delay=1h"))
	errs := make(chan error, 2)
	go func() {
		_, err := h.try("GET", "Certificates/100", alice, nil, true)
		errs <- err
	}()
	go func() {
		_, err := h.try("POST", "Enrollment/Renew", alice, wireRenewalRequest{CertificateId: 100}, true)
		errs <- err
	}()
	<-waiting
	<-waiting // both in flight: one in its latency, one between pieces of its body
	h.sim.Restart(time.Minute)
	for i := 0; i < 2; i++ {
		if err := <-errs; !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("request in flight: err = %v, want a reset", err)
		}
	}
	h.sim.SetFaults()
	if _, err := h.try("GET", "Certificates/100", alice, nil, true); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("request while down: err = %v, want a reset", err)
	}
	l := h.sim.Ledger()
	if len(l.Renewals) != 2 || l.Renewals[0].ResponseLost || !l.Renewals[1].ResponseLost {
		t.Errorf("renewals = %+v: the one cut mid-answer is committed with its answer lost", l.Renewals)
	}
	restarts := 0
	for _, r := range l.Requests {
		if r.Fault == "restart" {
			restarts++
		}
	}
	if restarts != 2 {
		t.Errorf("%d requests recorded as cut by the restart, want 2 (in its latency, and while down): %+v", restarts, l.Requests)
	}

	wall.Advance(time.Minute)
	got := h.deploy(alice, wireDeployRequest{CertificateId: rn.KeyfactorId, Stores: stores(storeK8s)})
	if !slices.Equal(got.SuccessfulStores, []string{storeK8s}) {
		t.Errorf("deploy after the restart = %+v: staging must survive", got)
	}
}

func TestRestartFault(t *testing.T) {
	wall := NewManualClock(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	h := newHarness(t, Options{})
	h.setWall(wall)
	h.sim.SetFaults(mustFault(t, "renew:restart:times=1,delay=30s"))
	if _, err := h.try("POST", "Enrollment/Renew", alice, wireRenewalRequest{CertificateId: 104}, true); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("err = %v, want a reset", err)
	}
	// Down for every endpoint, not just the one that hit the fault.
	if _, err := h.try("GET", "Status/Endpoints", alice, nil, true); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("while down: err = %v, want a reset", err)
	}
	wall.Advance(30 * time.Second)
	h.renew(alice, wireRenewalRequest{CertificateId: 104})
	if l := h.sim.Ledger(); len(l.Renewals) != 1 {
		t.Errorf("renewals = %+v, want only the one after the restart", l.Renewals)
	}
}
