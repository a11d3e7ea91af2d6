package keyfactor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pageServer plays GET /Certificates over ids: it honours pq.pageReturned
// and pq.returnLimit up to its cap, answers the OR-of-Id queries
// CertificatesByID sends, and sets X-Total-Count as total says.
type pageServer struct {
	ids          []int
	cap          int                       // largest page it hands out; 0 for none
	total        func(matched int) int     // X-Total-Count; nil for the true count, -1 for none
	ignorePaging bool                      // always answer page 1
	refuse       func(r *http.Request) int // status to refuse a request with, 0 to answer

	mu   sync.Mutex
	urls []string
}

func (s *pageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.urls = append(s.urls, r.URL.String())
	s.mu.Unlock()
	if s.refuse != nil {
		if code := s.refuse(r); code != 0 {
			writeJSON(w, code, `{"ErrorCode":"0xA0110001","Message":"The query is invalid."}`)
			return
		}
	}
	q := r.URL.Query()
	matched := s.ids
	if qs := q.Get("pq.queryString"); strings.HasPrefix(qs, "Id -eq ") {
		want := map[int]bool{}
		for _, part := range strings.Split(qs, " OR ") {
			n, err := strconv.Atoi(strings.TrimPrefix(part, "Id -eq "))
			if err != nil {
				writeJSON(w, 400, `{"Message":"bad query"}`)
				return
			}
			want[n] = true
		}
		matched = nil
		for _, id := range s.ids {
			if want[id] {
				matched = append(matched, id)
			}
		}
	}
	page, _ := strconv.Atoi(q.Get("pq.pageReturned"))
	limit, _ := strconv.Atoi(q.Get("pq.returnLimit"))
	if page < 1 || s.ignorePaging {
		page = 1
	}
	if limit < 1 {
		limit = 50
	}
	if s.cap > 0 {
		limit = min(limit, s.cap)
	}
	total := len(matched)
	if s.total != nil {
		total = s.total(len(matched))
	}
	if total >= 0 {
		w.Header().Set("X-Total-Count", strconv.Itoa(total))
	}
	from := min((page-1)*limit, len(matched))
	to := min(from+limit, len(matched))
	var items []string
	for _, id := range matched[from:to] {
		items = append(items, minimalCert(id))
	}
	writeJSON(w, 200, "["+strings.Join(items, ",")+"]")
}

func (s *pageServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.urls)
}

func seq(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

func TestAllCertificatesPaging(t *testing.T) {
	tests := []struct {
		name      string
		server    *pageServer
		limit     int
		wantIDs   int // how many distinct ids each sees (ids are 1..n)
		wantPages int // requests sent
		wantErr   string
	}{
		{name: "short last page", server: &pageServer{ids: seq(1, 237)}, limit: 100, wantIDs: 237, wantPages: 3},
		{name: "exact multiple with count", server: &pageServer{ids: seq(1, 200)}, limit: 100, wantIDs: 200, wantPages: 3},
		{name: "server caps the page size", server: &pageServer{ids: seq(1, 120), cap: 50}, limit: 100, wantIDs: 120, wantPages: 3},
		{name: "capped, count ends on a full page", server: &pageServer{ids: seq(1, 100), cap: 50}, limit: 100, wantIDs: 100, wantPages: 2},
		{name: "capped without count", server: &pageServer{ids: seq(1, 120), cap: 50, total: func(int) int { return -1 }}, limit: 100, wantIDs: 120, wantPages: 3},
		{name: "one short page without count", server: &pageServer{ids: seq(1, 37), total: func(int) int { return -1 }}, limit: 100, wantIDs: 37, wantPages: 2},
		{name: "empty", server: &pageServer{}, limit: 100, wantIDs: 0, wantPages: 1},
		{name: "count too low does not stop full pages", server: &pageServer{ids: seq(1, 250), total: func(int) int { return 50 }}, limit: 50,
			wantIDs: 250, wantPages: 6},
		{name: "count too high ends at the empty page", server: &pageServer{ids: seq(1, 120), total: func(n int) int { return n + 500 }}, limit: 100,
			wantIDs: 120, wantPages: 3},
		{name: "ignores paging, count says all is in", server: &pageServer{ids: seq(1, 100), ignorePaging: true}, limit: 100, wantIDs: 100, wantPages: 2},
		{name: "ignores paging without count", server: &pageServer{ids: seq(1, 300), ignorePaging: true, total: func(int) int { return -1 }}, limit: 100,
			wantErr: "seems to ignore pageReturned"},
		{name: "ignores paging with a count it never reaches", server: &pageServer{ids: seq(1, 300), cap: 100, ignorePaging: true}, limit: 100,
			wantErr: "seems to ignore pageReturned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, tt.server)
			c, _ := newTestClient(t, srv.URL, nil)
			seen := map[int]int{}
			odd, err := c.AllCertificates(context.Background(), CertificateQuery{ReturnLimit: tt.limit}, func(cert *Certificate) error {
				seen[cert.Id]++
				return nil
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(odd) != 0 {
				t.Fatal(err, odd)
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("certificate %d seen %d times", id, n)
				}
			}
			if len(seen) != tt.wantIDs || len(tt.server.requests()) != tt.wantPages {
				t.Errorf("%d certificates in %d requests, want %d in %d: %v", len(seen), len(tt.server.requests()), tt.wantIDs, tt.wantPages, tt.server.requests())
			}
		})
	}
}

func TestAllCertificatesStopsOnCallbackError(t *testing.T) {
	ps := &pageServer{ids: seq(1, 300)}
	c, _ := newTestClient(t, serve(t, ps).URL, nil)
	stop := errors.New("enough")
	n := 0
	_, err := c.AllCertificates(context.Background(), CertificateQuery{}, func(*Certificate) error {
		if n++; n == 150 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || len(ps.requests()) != 2 {
		t.Errorf("error %v after %d requests, want the callback's error after 2", err, len(ps.requests()))
	}
}

func TestCertificatesByID(t *testing.T) {
	many := seq(100000, 600) // six-digit ids: about 17 characters each in the URL
	tests := []struct {
		name        string
		server      *pageServer
		ask         []int
		wantFound   int
		wantMinReqs int
		wantRefused bool
		wantErr     bool
	}{
		{name: "one batch", server: &pageServer{ids: seq(1, 10)}, ask: []int{3, 1, 2, 3, 99}, wantFound: 3, wantMinReqs: 1},
		{name: "many batches under the URL budget", server: &pageServer{ids: many}, ask: many, wantFound: 600, wantMinReqs: 6},
		{name: "server caps a batch's page", server: &pageServer{ids: many, cap: 25}, ask: many, wantFound: 600, wantMinReqs: 24},
		{name: "nothing to read", server: &pageServer{ids: seq(1, 10)}, ask: []int{0, -4}, wantFound: 0},
		{name: "query refused", server: &pageServer{ids: seq(1, 10), refuse: func(*http.Request) int { return 400 }}, ask: []int{1, 2}, wantRefused: true},
		{name: "query string too long (IIS 404.15)", server: &pageServer{ids: seq(1, 10), refuse: func(*http.Request) int { return 404 }}, ask: []int{1, 2}, wantRefused: true},
		{name: "URI too long", server: &pageServer{ids: seq(1, 10), refuse: func(*http.Request) int { return 414 }}, ask: []int{1, 2}, wantRefused: true},
		{name: "server error is not a refusal", server: &pageServer{ids: seq(1, 10), refuse: func(*http.Request) int { return 500 }}, ask: []int{1, 2}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, tt.server)
			c, _ := newTestClient(t, srv.URL, func(c *Config) { c.GetRetries = -1 })
			got, odd, err := c.CertificatesByID(context.Background(), tt.ask, true)
			switch {
			case tt.wantRefused:
				var ae *APIError
				if !errors.Is(err, ErrQueryRefused) || !errors.As(err, &ae) || ae.Endpoint != "/Certificates" {
					t.Fatalf("error = %v, want ErrQueryRefused wrapping the APIError", err)
				}
				return
			case tt.wantErr:
				if err == nil || errors.Is(err, ErrQueryRefused) {
					t.Fatalf("error = %v, want an error that is not ErrQueryRefused", err)
				}
				return
			case err != nil || len(odd) != 0:
				t.Fatal(err, odd)
			}
			if len(got) != tt.wantFound {
				t.Errorf("found %d certificates, want %d", len(got), tt.wantFound)
			}
			for id, cert := range got {
				if cert.Id != id {
					t.Errorf("map[%d] holds certificate %d", id, cert.Id)
				}
			}
			reqs := tt.server.requests()
			if len(reqs) < tt.wantMinReqs {
				t.Errorf("%d requests, want at least %d", len(reqs), tt.wantMinReqs)
			}
			for _, u := range reqs {
				full := c.BaseURL() + strings.TrimPrefix(u, "/KeyfactorAPI")
				if len(full) > maxURLLength {
					t.Errorf("URL of %d characters exceeds the budget of %d", len(full), maxURLLength)
				}
				q, _ := url.ParseQuery(strings.SplitN(u, "?", 2)[1])
				if q.Get("pq.includeExpired") != "true" || q.Get("pq.includeRevoked") != "true" || q.Get("includeLocations") != "true" {
					t.Errorf("request %s lacks includeExpired, includeRevoked or includeLocations", u)
				}
			}
		})
	}
}

// A batch as large as the budget allows: adding one more id would break it.
func TestBatchSizeFillsTheBudget(t *testing.T) {
	c, _ := newTestClient(t, "http://127.0.0.1:9", nil)
	ids := seq(1000000, 500)
	n := c.batchSize(ids, false)
	urlOf := func(k int) int {
		q := CertificateQuery{QueryString: idQuery(ids[:k]), PageReturned: 1, ReturnLimit: k, IncludeExpired: true, IncludeRevoked: true}
		return len(c.BaseURL() + "/Certificates?" + c.certificateParams(q).Encode())
	}
	if n < 2 || urlOf(n) > maxURLLength || urlOf(n+1) <= maxURLLength {
		t.Errorf("batch of %d: URL %d, next %d, budget %d", n, urlOf(n), urlOf(n+1), maxURLLength)
	}
	if got := fmt.Sprint(c.batchSize(ids[:1], false)); got != "1" {
		t.Errorf("a single id makes a batch of %s", got)
	}
}

// The batches of one CertificatesByID call are read at once: each request
// here is held until a second one arrives (or, read one after another, until
// the bound runs out and the test fails).
func TestCertificatesByIDReadsBatchesAtOnce(t *testing.T) {
	many := seq(100000, 300) // several batches
	ps := &pageServer{ids: many}
	var mu sync.Mutex
	inFlight, most := 0, 0
	second := make(chan struct{})
	var once sync.Once
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		if inFlight == 2 {
			once.Do(func() { close(second) })
		}
		mu.Unlock()
		select {
		case <-second:
		case <-time.After(10 * time.Second):
		}
		ps.ServeHTTP(w, r)
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	c, _ := newTestClient(t, srv.URL, func(c *Config) { c.GetRetries = -1 })
	got, _, err := c.CertificatesByID(context.Background(), many, false)
	if err != nil || len(got) != len(many) {
		t.Fatalf("found %d of %d, error %v", len(got), len(many), err)
	}
	if n := len(ps.requests()); n < 2 {
		t.Fatalf("%d requests, want several batches", n)
	}
	if most < 2 || most > batchesAtOnce {
		t.Errorf("at most %d requests in flight, want 2 to %d", most, batchesAtOnce)
	}
}

// Of several failed batches, the first in id order names the error, so the
// caller's choice (fall back to one read per id, or not) does not depend on
// which answer came first. The first batch's 500 is held until every other
// batch's 400 has been answered, so a client that reports whichever error
// arrives first reports a refusal and fails here. (Read one batch after
// another, the first batch would wait for ever: TestCertificatesByIDReads
// BatchesAtOnce is the test of that.)
func TestCertificatesByIDReportsTheFirstBatchError(t *testing.T) {
	many := seq(100000, 300)
	first := func(r *http.Request) bool {
		return strings.HasPrefix(r.URL.Query().Get("pq.queryString"), "Id -eq 100000 ")
	}
	ps := &pageServer{ids: many, refuse: func(r *http.Request) int {
		if first(r) {
			return 500
		}
		return 400
	}}
	var (
		others     int // batches after the first; set before the call
		mu         sync.Mutex
		answered   int
		othersDone = make(chan struct{})
	)
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first(r) {
			select {
			case <-othersDone:
			case <-r.Context().Done():
				return
			}
			ps.ServeHTTP(w, r)
			return
		}
		ps.ServeHTTP(w, r)
		_ = http.NewResponseController(w).Flush() // the 400 is on its way before the 500 is written
		mu.Lock()
		defer mu.Unlock()
		if answered++; answered == others {
			close(othersDone)
		}
	}))
	c, _ := newTestClient(t, srv.URL, func(c *Config) { c.GetRetries = -1 })
	batches := 0
	for rest := many; len(rest) > 0; batches++ {
		rest = rest[c.batchSize(rest, false):]
	}
	if batches < 3 {
		t.Fatalf("%d batches, want at least 3", batches)
	}
	others = batches - 1
	_, _, err := c.CertificatesByID(context.Background(), many, false)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 500 || errors.Is(err, ErrQueryRefused) {
		t.Errorf("error = %v, want the first batch's HTTP 500, not a refusal", err)
	}
	if n := len(ps.requests()); n != batches {
		t.Errorf("%d requests, want one per batch (%d)", n, batches)
	}
}

// A batch whose every id came back on a full page is done: the page after
// it could only be empty, and reading it would cost a round trip per batch.
func TestCertificatesByIDStopsWhenAllAreIn(t *testing.T) {
	ps := &pageServer{ids: seq(1, 10)}
	srv := serve(t, ps)
	c, _ := newTestClient(t, srv.URL, nil)
	got, _, err := c.CertificatesByID(context.Background(), seq(1, 10), false)
	if err != nil || len(got) != 10 {
		t.Fatalf("found %d of 10, error %v", len(got), err)
	}
	if reqs := ps.requests(); len(reqs) != 1 {
		t.Errorf("%d requests, want 1: %q", len(reqs), reqs)
	}
}
