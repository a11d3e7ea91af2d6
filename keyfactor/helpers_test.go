package keyfactor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Test credentials; tests assert that none of them leak into errors or logs.
const (
	testUser     = "alice"
	testDomain   = "KEYFACTOR"
	testPassword = "s3cret-Pa55word"
	testSecret   = "client-secret-XYZ"
	testToken    = "eyJ.static-token.sig"
)

// sleepLog records the waits a client asked for instead of sleeping.
type sleepLog struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleepLog) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepLog) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// newTestClient builds a Basic-auth client for baseURL (an httptest URL)
// whose waits are recorded, not slept. edit may change the config.
func newTestClient(tb testing.TB, baseURL string, edit func(*Config)) (*Client, *sleepLog) {
	tb.Helper()
	cfg := Config{
		Hostname: baseURL,
		Username: testUser,
		Domain:   testDomain,
		Password: testPassword,
		Timeout:  10 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	sl := &sleepLog{}
	c.sleep = sl.sleep
	return c, sl
}

// counted wraps h and counts the requests it receives.
func counted(h http.HandlerFunc) (http.HandlerFunc, *atomic.Int32) {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}, &n
}

// serve starts an httptest server for h, closed at the end of the test.
func serve(tb testing.TB, h http.Handler) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}

// writeJSON answers with status and a raw JSON body.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// fixture reads testdata/name.
func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func itoa(n int) string { return strconv.Itoa(n) }
