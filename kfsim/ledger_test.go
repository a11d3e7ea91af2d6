package kfsim

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLedgerRecordsRequestBeforeAnswer checks, for every fault kind, that
// the request (and what it did) is in the ledger the moment the client has
// its answer or its error: the ledger is written before the answer leaves.
// Run it with -count=50 to see that nothing races.
func TestLedgerRecordsRequestBeforeAnswer(t *testing.T) {
	tests := []struct {
		kind       string
		wantStatus int  // ledger status, also the client's when it got an answer
		wantErr    bool // the client gets no answer
		processed  bool // the renewal was committed
		lost       bool // ... and its answer lost
	}{
		{kind: "500", wantStatus: 500},
		{kind: "503", wantStatus: 503},
		{kind: "429", wantStatus: 429},
		{kind: "html-error", wantStatus: 502},
		{kind: "wrong-content-type", wantStatus: 200},
		{kind: "reset-before", wantErr: true},
		{kind: "drop-before", wantErr: true},
		{kind: "restart", wantErr: true},
		{kind: "500-after", wantStatus: 500, processed: true, lost: true},
		{kind: "reset-after", wantErr: true, processed: true, lost: true},
		{kind: "drop-after", wantErr: true, processed: true, lost: true},
		{kind: "malformed-json", wantStatus: 200, processed: true, lost: true},
		{kind: "slow-body", wantStatus: 200, processed: true},
		{kind: "latency", wantStatus: 200, processed: true},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			h := newHarness(t, Options{})
			rule := mustFault(t, "renew:"+tc.kind+":times=1")
			rule.Delay = time.Millisecond // keeps latency, slow-body and restart short
			h.sim.SetFaults(rule)
			res, err := h.try("POST", "Enrollment/Renew", alice, wireRenewalRequest{CertificateId: 100}, true)
			if (err != nil) != tc.wantErr {
				t.Fatalf("client error = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && res.status != tc.wantStatus {
				t.Errorf("client status = %d, want %d", res.status, tc.wantStatus)
			}
			l := h.sim.Ledger()
			if len(l.Requests) != 1 {
				t.Fatalf("ledger has %d requests, want 1: %+v", len(l.Requests), l.Requests)
			}
			r := l.Requests[0]
			wantLedgerStatus := tc.wantStatus
			if tc.wantErr {
				wantLedgerStatus = 0
			}
			if r.Fault != tc.kind || r.Status != wantLedgerStatus || r.Endpoint != "renew" || r.Identity != `CORP\alice` {
				t.Errorf("ledger request = %+v, want fault %s status %d", r, tc.kind, wantLedgerStatus)
			}
			if got := len(l.Renewals) == 1; got != tc.processed {
				t.Fatalf("renewal committed = %v, want %v", got, tc.processed)
			}
			if tc.processed {
				rn := l.Renewals[0]
				if rn.ResponseLost != tc.lost || rn.AnsweredAt.IsZero() != tc.lost || !rn.At.Equal(t0) {
					t.Errorf("renewal = %+v, want ResponseLost %v, At %s", rn, tc.lost, t0)
				}
			}
		})
	}
}

// TestResetIsARealRST tells a reset (TCP RST) from a drop (an orderly
// close) as a client sees them.
func TestResetIsARealRST(t *testing.T) {
	tests := []struct {
		kind  string
		reset bool
	}{
		{"reset-before", true},
		{"reset-after", true},
		{"drop-before", false},
		{"drop-after", false},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			h := newHarness(t, Options{})
			h.sim.SetFaults(mustFault(t, "certificate:"+tc.kind))
			_, err := h.try("GET", "Certificates/100", alice, nil, true)
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, syscall.ECONNRESET); got != tc.reset {
				t.Errorf("err = %v: connection reset %v, want %v", err, got, tc.reset)
			}
			if !tc.reset && !errors.Is(err, io.EOF) {
				t.Errorf("err = %v, want EOF", err)
			}
		})
	}
}

// fakeReporter records what CheckNoUnknownRoutes reports.
type fakeReporter struct{ errs []string }

func (f *fakeReporter) Helper() {}
func (f *fakeReporter) Errorf(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func TestUnknownRoutesAreLoud(t *testing.T) {
	h := newHarness(t, Options{NoMyPermissions: true})
	var clean fakeReporter
	h.call("GET", "Certificates/100", alice, nil)
	// An endpoint the options take away answers 404 but is expected, so it
	// is not an unknown route.
	if s := h.call("GET", "Security/My/Permissions", alice, nil).status; s != 404 {
		t.Fatalf("absent endpoint status = %d, want 404", s)
	}
	h.sim.CheckNoUnknownRoutes(&clean)
	if len(clean.errs) != 0 || len(h.sim.UnknownRoutes()) != 0 {
		t.Fatalf("known routes reported: %v", clean.errs)
	}

	h.sim.SetFaults(mustFault(t, "*:503:times=1"))
	h.call("GET", "Certificates/100/Security", alice, nil) // faulted, still unknown
	h.call("DELETE", "Certificates/100", alice, nil)
	h.call("GET", "Workflow/Certificates/Approve", alice, nil)
	h.call("GET", "/KeyfactorApi/Nope", alice, nil)
	got := h.sim.UnknownRoutes()
	want := []struct {
		method, path string
		status       int
	}{
		{"GET", "/KeyfactorAPI/Certificates/100/Security", 503},
		{"DELETE", "/KeyfactorAPI/Certificates/100", 405},
		{"GET", "/KeyfactorAPI/Workflow/Certificates/Approve", 405},
		{"GET", "/KeyfactorApi/Nope", 404},
	}
	if len(got) != len(want) {
		t.Fatalf("unknown routes = %+v", got)
	}
	for i, w := range want {
		if got[i].Method != w.method || got[i].Path != w.path || got[i].Status != w.status || got[i].Endpoint != "unknown" {
			t.Errorf("unknown route %d = %+v, want %s %s %d", i, got[i], w.method, w.path, w.status)
		}
	}
	if l := h.sim.Ledger(); len(l.UnknownRoutes) != len(want) {
		t.Errorf("Ledger.UnknownRoutes = %+v", l.UnknownRoutes)
	}
	var rep fakeReporter
	h.sim.CheckNoUnknownRoutes(&rep)
	if len(rep.errs) != 1 || !strings.Contains(rep.errs[0], "DELETE /KeyfactorAPI/Certificates/100 → 405") || !strings.Contains(rep.errs[0], "4 request(s)") {
		t.Errorf("report = %q", rep.errs)
	}
	// The Reporter interface is what testing.TB offers.
	var _ Reporter = testing.TB(t)
}

// IIS refuses a query string over 2048 bytes before Command sees it; a
// client whose batched reads grow past that is caught as an unknown route.
func TestOverLongQueryStringIsRefusedAsIISDoes(t *testing.T) {
	h := newHarness(t, Options{})
	// A parameter Command does not know pads the query string.
	fits := "Certificates?pad=" + strings.Repeat("a", defaultMaxQueryString-len("pad="))
	if s := h.call("GET", fits, alice, nil).status; s != 200 {
		t.Fatalf("query string of exactly %d bytes: status %d, want 200", defaultMaxQueryString, s)
	}
	if n := len(h.sim.UnknownRoutes()); n != 0 {
		t.Fatalf("a query string within the limit was recorded as unknown (%d)", n)
	}
	res := h.call("GET", fits+"a", alice, nil)
	if res.status != 404 || !strings.Contains(res.header.Get("Content-Type"), "text/html") || !strings.Contains(string(res.body), "404.15") {
		t.Fatalf("query string of %d bytes: %d %s %q, want IIS's 404.15 page", defaultMaxQueryString+1, res.status, res.header.Get("Content-Type"), res.body)
	}
	if got := h.sim.UnknownRoutes(); len(got) != 1 || got[0].Status != 404 {
		t.Fatalf("unknown routes = %+v, want the over-long request", got)
	}
}
