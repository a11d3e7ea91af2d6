package keyfactor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// afterArrival is a RoundTripper that lets a request's deadline or
// cancellation reach the transport only once arrived is closed (the server
// has read the whole request), so a client timeout however short expires
// after the request was sent, never before, on any machine. It serves
// requests that get no answer.
type afterArrival struct {
	next    http.RoundTripper
	arrived <-chan struct{}
}

func (a afterArrival) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(req.Context())) // keeps the client's trace
	go func() {
		defer cancel()
		<-req.Context().Done()
		<-a.arrived
	}()
	return a.next.RoundTrip(req.WithContext(ctx))
}

func TestErrorClasses(t *testing.T) {
	hijackClose := func(w http.ResponseWriter, r *http.Request) {
		// Read the request in full, then answer nothing.
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close()
	}
	status := func(code int, header, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if header != "" {
				k, v, _ := strings.Cut(header, ": ")
				w.Header().Set(k, v)
			}
			writeJSON(w, code, body)
		}
	}
	arrived := make(chan struct{})
	var arrivedOnce sync.Once
	tests := []struct {
		name       string
		handler    http.HandlerFunc // nil: connection refused
		timeout    time.Duration
		arrived    chan struct{} // set: the timeout takes effect once it is closed (afterArrival)
		wantClass  Class
		wantSent   *bool // for TransportErrors
		wantStatus int   // for APIErrors
		wantRetry  time.Duration
		wantText   []string
	}{
		{name: "connection refused", wantClass: Retryable, wantSent: ptr(false), wantText: []string{"POST /Enrollment/Renew: request not sent", "refused"}},
		{name: "429 with Retry-After", handler: status(429, "Retry-After: 7", ""), wantClass: Retryable, wantStatus: 429, wantRetry: 7 * time.Second,
			wantText: []string{"HTTP 429 Too Many Requests (empty body) (retry after 7s)"}},
		{name: "503", handler: status(503, "", `{"Message":"down for maintenance"}`), wantClass: Retryable, wantStatus: 503, wantText: []string{"HTTP 503: down for maintenance"}},
		{name: "500", handler: status(500, "", `{"ErrorCode":"0xA0000001","Message":"Unexpected error"}`), wantClass: Unknown, wantStatus: 500},
		{name: "502", handler: status(502, "", ""), wantClass: Unknown, wantStatus: 502},
		{name: "504", handler: status(504, "", ""), wantClass: Unknown, wantStatus: 504},
		{name: "hijack and close after reading", handler: hijackClose, wantClass: Unknown, wantSent: ptr(true), wantText: []string{"request sent, no complete answer"}},
		// The server reads the request and never answers; the client's
		// 50ms timeout takes effect only after the server has the request
		// (afterArrival), however long sending it took.
		{name: "timeout after send", timeout: 50 * time.Millisecond, handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			arrivedOnce.Do(func() { close(arrived) })
			<-r.Context().Done() // the client hanging up
		}, arrived: arrived,
			wantClass: Unknown, wantSent: ptr(true), wantText: []string{"no complete answer within 50ms"}},
		{name: "400", handler: status(400, "", string(fixture(t, "error_400.json"))), wantClass: Permanent, wantStatus: 400,
			wantText: []string{"POST /Enrollment/Renew: HTTP 400: 0xA0110008: The format 'STORE' is invalid."}},
		{name: "401 empty body", handler: status(401, "", ""), wantClass: Permanent, wantStatus: 401,
			wantText: []string{"POST /Enrollment/Renew: HTTP 401 Unauthorized (empty body)"}},
		{name: "403", handler: status(403, "", string(fixture(t, "error_403.json"))), wantClass: Permanent, wantStatus: 403},
		{name: "404", handler: status(404, "", `{"Message":"Certificate 1234 not found"}`), wantClass: Permanent, wantStatus: 404},
		{name: "html from a proxy", handler: status(502, "", string(fixture(t, "proxy_502.html"))), wantClass: Unknown, wantStatus: 502,
			wantText: []string{"HTTP 502 Bad Gateway: 502 Bad Gateway"}},
		{name: "redirect to a login page", handler: status(302, "Location: https://sso.example.com/login", "<html><body>Moved</body></html>"), wantClass: Permanent, wantStatus: 302,
			wantText: []string{"HTTP 302 Found: Moved"}},
		{name: "200 malformed JSON", handler: status(200, "", `{"KeyfactorId": 12`), wantClass: Unknown, wantStatus: 200,
			wantText: []string{"POST /Enrollment/Renew: HTTP 200: undecodable JSON body", `{"KeyfactorId": 12`}},
		{name: "200 empty body", handler: status(200, "", ""), wantClass: Unknown, wantStatus: 200, wantText: []string{"empty response body"}},
		{name: "200 null object", handler: status(200, "", "null"), wantClass: Unknown, wantStatus: 200, wantText: []string{"null"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := refusedAddr(t)
			if tt.handler != nil {
				target = serve(t, tt.handler).URL
			}
			c, _ := newTestClient(t, target, func(c *Config) {
				if tt.timeout > 0 {
					c.Timeout = tt.timeout
				}
			})
			if tt.arrived != nil {
				// The dial has a timeout of its own, the client's too: it
				// is not what the case is about.
				tr := c.hc.Transport.(*http.Transport).Clone()
				tr.DialContext = (&net.Dialer{}).DialContext
				c.hc.Transport = afterArrival{next: tr, arrived: tt.arrived}
			}
			_, err := c.Renew(context.Background(), RenewalRequest{CertificateId: 1234})
			if err == nil {
				t.Fatal("want an error")
			}
			if got := Classify(err); got != tt.wantClass {
				t.Errorf("Classify(%v) = %v, want %v", err, got, tt.wantClass)
			}
			if tt.wantSent != nil {
				var te *TransportError
				if !errors.As(err, &te) {
					t.Fatalf("error %T %v, want a TransportError", err, err)
				}
				if te.Sent != *tt.wantSent || te.Endpoint != "/Enrollment/Renew" || te.Method != "POST" {
					t.Errorf("TransportError = %+v, want Sent %v", te, *tt.wantSent)
				}
			}
			if tt.wantStatus != 0 {
				var ae *APIError
				if !errors.As(err, &ae) {
					t.Fatalf("error %T %v, want an APIError", err, err)
				}
				if ae.Status != tt.wantStatus || ae.Endpoint != "/Enrollment/Renew" {
					t.Errorf("APIError = %+v, want status %d", ae, tt.wantStatus)
				}
				if utf8.RuneCountInString(ae.Snippet) > maxSnippet {
					t.Errorf("snippet has %d characters", utf8.RuneCountInString(ae.Snippet))
				}
			}
			if got := RetryAfterOf(err); got != tt.wantRetry {
				t.Errorf("RetryAfterOf = %v, want %v", got, tt.wantRetry)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{name: "nil", err: nil, want: Permanent},
		{name: "plain error", err: errors.New("bad argument"), want: Permanent},
		{name: "wrapped 429", err: fmt.Errorf("renew certificate 1: %w", &APIError{Status: 429}), want: Retryable},
		{name: "408", err: &APIError{Status: 408}, want: Retryable},
		{name: "409", err: &APIError{Status: 409}, want: Permanent},
		{name: "501", err: &APIError{Status: 501}, want: Unknown},
		{name: "sent", err: &TransportError{Sent: true, Err: errors.New("EOF")}, want: Unknown},
		{name: "not sent", err: &TransportError{Err: errors.New("dial")}, want: Retryable},
		{name: "token endpoint refused", err: &TransportError{Err: &APIError{Status: 401}}, want: Permanent},
		{name: "token endpoint down", err: &TransportError{Err: &APIError{Status: 500}}, want: Retryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	for c, want := range map[Class]string{Permanent: "permanent", Retryable: "retryable", Unknown: "unknown", Class(9): "Class(9)"} {
		if c.String() != want {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), c.String(), want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, in string
		want     time.Duration
	}{
		{name: "seconds", in: "120", want: 2 * time.Minute},
		{name: "spaces", in: " 3 ", want: 3 * time.Second},
		{name: "http date", in: "Tue, 24 Nov 2026 12:00:30 GMT", want: 30 * time.Second},
		{name: "past date", in: "Tue, 24 Nov 2026 11:00:00 GMT", want: 0},
		{name: "negative", in: "-5", want: 0},
		{name: "garbage", in: "soon", want: 0},
		{name: "empty", in: "", want: 0},
		{name: "huge", in: "99999999999999999", want: time.Duration(int64(1<<63-1)/int64(time.Second)) * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestSnippet(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{name: "whitespace collapsed", body: "  Service\r\n\tUnavailable  \x00 now ", want: "Service Unavailable now"},
		{name: "html title", body: "<html><head><title>401 - Unauthorized: Access is denied</title><style>body{}</style></head></html>", want: "401 - Unauthorized: Access is denied"},
		{name: "html without title", body: "<html><style>p{color:red}</style><body><h1>Forbidden</h1><p>by policy</p></body></html>", want: "Forbidden by policy"},
		{name: "cut at 120", body: strings.Repeat("x", 500), want: strings.Repeat("x", 119) + "…"},
		{name: "invalid utf-8", body: "bad \xff\xfe byte", want: "bad ? byte"},
		{name: "secret masked", body: "echo " + testPassword, want: "echo [redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := snippet([]byte(tt.body), []string{testPassword})
			if got != tt.want {
				t.Errorf("snippet = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGetRetries(t *testing.T) {
	tests := []struct {
		name      string
		answers   []func(w http.ResponseWriter) // one per request; the last repeats
		retries   int
		wantCalls int
		wantWaits []time.Duration // nil: only count them
		nWaits    int
		wantErr   bool
	}{
		{
			name: "honours Retry-After",
			answers: []func(http.ResponseWriter){
				func(w http.ResponseWriter) { w.Header().Set("Retry-After", "3"); writeJSON(w, 429, "") },
				func(w http.ResponseWriter) { w.Header().Set("Retry-After", "1"); writeJSON(w, 503, "") },
				func(w http.ResponseWriter) { writeJSON(w, 200, `["ok"]`) },
			},
			wantCalls: 3, wantWaits: []time.Duration{3 * time.Second, time.Second},
		},
		{
			name:      "gives up after GetRetries",
			answers:   []func(http.ResponseWriter){func(w http.ResponseWriter) { writeJSON(w, 500, "") }},
			retries:   4,
			wantCalls: 5, nWaits: 4, wantErr: true,
		},
		{
			name:      "no retries when negative",
			answers:   []func(http.ResponseWriter){func(w http.ResponseWriter) { writeJSON(w, 503, "") }},
			retries:   -1,
			wantCalls: 1, nWaits: 0, wantErr: true,
		},
		{
			name:      "permanent not retried",
			answers:   []func(http.ResponseWriter){func(w http.ResponseWriter) { writeJSON(w, 404, `{"Message":"no"}`) }},
			wantCalls: 1, nWaits: 0, wantErr: true,
		},
		{
			name:      "Retry-After too long is not waited for",
			answers:   []func(http.ResponseWriter){func(w http.ResponseWriter) { w.Header().Set("Retry-After", "3600"); writeJSON(w, 429, "") }},
			wantCalls: 1, nWaits: 0, wantErr: true,
		},
		{
			name: "malformed 200 retried",
			answers: []func(http.ResponseWriter){
				func(w http.ResponseWriter) { writeJSON(w, 200, `["trunc`) },
				func(w http.ResponseWriter) { writeJSON(w, 200, `["ok"]`) },
			},
			wantCalls: 2, nWaits: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n := counted(func(w http.ResponseWriter, r *http.Request) {})
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h(w, r)
				i := min(int(n.Load()), len(tt.answers)) - 1
				tt.answers[i](w)
			}))
			c, sl := newTestClient(t, srv.URL, func(c *Config) { c.GetRetries = tt.retries })
			_, err := c.StatusEndpoints(context.Background())
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if int(n.Load()) != tt.wantCalls {
				t.Errorf("server saw %d requests, want %d", n.Load(), tt.wantCalls)
			}
			waits := sl.all()
			if tt.wantWaits != nil {
				if !reflect.DeepEqual(waits, tt.wantWaits) {
					t.Errorf("waits = %v, want %v", waits, tt.wantWaits)
				}
			} else if len(waits) != tt.nWaits {
				t.Errorf("waits = %v, want %d of them", waits, tt.nWaits)
			}
			for _, w := range waits {
				if w <= 0 || w > backoffMax {
					t.Errorf("wait %v out of range", w)
				}
			}
		})
	}
}

func TestGetRetryStopsOnCancel(t *testing.T) {
	h, n := counted(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		writeJSON(w, 503, "")
	})
	srv := serve(t, h)
	c, _ := newTestClient(t, srv.URL, func(c *Config) { c.GetRetries = 5 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var asked time.Duration
	c.sleep = func(ctx context.Context, d time.Duration) error {
		asked = d
		cancel() // the caller gives up while the client waits
		<-ctx.Done()
		return ctx.Err()
	}
	_, err := c.StatusEndpoints(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want it to wrap context.Canceled", err)
	}
	if Classify(err) != Retryable || RetryAfterOf(err) != 30*time.Second {
		t.Errorf("the last answer is lost: class %v, retry after %v", Classify(err), RetryAfterOf(err))
	}
	if asked != 30*time.Second || n.Load() != 1 {
		t.Errorf("waited %v and sent %d requests, want 30s and 1", asked, n.Load())
	}
}

func TestPostsAreNeverRetried(t *testing.T) {
	answers := map[string]http.HandlerFunc{
		"503": func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 503, "") },
		"429": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 429, "")
		},
		"500": func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 500, "") },
		"dropped": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
		},
	}
	calls := map[string]func(c *Client) error{
		"renew": func(c *Client) error {
			_, err := c.Renew(context.Background(), RenewalRequest{Thumbprint: "AB"})
			return err
		},
		"deploy": func(c *Client) error {
			_, err := c.Deploy(context.Background(), DeployRequest{RequestId: 5, Stores: []DeployStore{{StoreId: "s"}}})
			return err
		},
	}
	for an, answer := range answers {
		for cn, call := range calls {
			t.Run(cn+" "+an, func(t *testing.T) {
				h, n := counted(answer)
				srv := serve(t, h)
				c, sl := newTestClient(t, srv.URL, func(c *Config) { c.GetRetries = 5 })
				if err := call(c); err == nil {
					t.Fatal("want an error")
				}
				if n.Load() != 1 || len(sl.all()) != 0 {
					t.Errorf("server saw %d requests and the client waited %v, want 1 and none", n.Load(), sl.all())
				}
			})
		}
	}
}

func TestErrorMessagesRedactSecrets(t *testing.T) {
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 400, `{"ErrorCode":"0x1","Message":"password `+testPassword+` rejected","FailedOperations":[{"Reason":"`+testPassword+`"}]}`)
	}))
	c, _ := newTestClient(t, srv.URL, nil)
	_, err := c.StatusEndpoints(context.Background())
	if err == nil || strings.Contains(err.Error(), testPassword) || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("error = %v, want the password redacted", err)
	}
}
