package kfsim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Fault kinds, as written in fault specs. "Before" kinds answer instead of
// processing: nothing happened. "After" kinds process the request (a Renew
// is committed, a Deploy creates its jobs) and then spoil the answer.
const (
	kind500          = "500"                // before: 500 with a Command error body
	kind500After     = "500-after"          // after: the work is done, the answer is a 500
	kind503          = "503"                // before: 503 HTML from a load balancer, Retry-After if set
	kind429          = "429"                // before: 429 with Retry-After (default 1s)
	kindHTMLError    = "html-error"         // before: an IIS/proxy HTML error page (status, default 502)
	kindWrongType    = "wrong-content-type" // before: 200 text/html, a proxy's login page
	kindResetBefore  = "reset-before"       // before: TCP RST, no answer
	kindResetAfter   = "reset-after"        // after: TCP RST instead of the answer
	kindDropBefore   = "drop-before"        // before: connection closed, no answer
	kindDropAfter    = "drop-after"         // after: connection closed instead of the answer
	kindMalformed    = "malformed-json"     // after: 200 with JSON cut in half
	kindSlowBody     = "slow-body"          // after: the answer trickles over delay (default 1s)
	kindLatency      = "latency"            // before: delay (default 500ms), then the next rule or the request
	kindRestart      = "restart"            // before: the simulator restarts, down for delay (default 2s)
	defaultHTMLError = http.StatusBadGateway
)

var faultKinds = []string{kind500, kind500After, kind503, kind429, kindHTMLError, kindWrongType,
	kindResetBefore, kindResetAfter, kindDropBefore, kindDropAfter, kindMalformed, kindSlowBody,
	kindLatency, kindRestart}

// endpointKeys are the keys faults and the ledger use for routes.
var endpointKeys = []string{"status", "permissions", "certificate", "certificates", "stores", "store",
	"storetypes", "renew", "deploy", "token", "workflow", "jobhistory", "*"}

// Defaults for fault parameters.
const (
	defaultRetryAfter   = time.Second
	defaultLatency      = 500 * time.Millisecond
	defaultSlowBodyTime = time.Second
	defaultDowntime     = 2 * time.Second
)

// FaultRule injects one kind of failure into requests of one endpoint.
// Without Times or Probability it hits every matching request after the
// first Skip; with Times it hits the first Times of them; with Probability
// each one is hit with that chance, drawn from a source seeded by
// Options.Seed, so the same requests in the same order fail the same way.
// Rules apply in order; a latency rule adds its delay and lets later rules
// look at the request too, any other kind ends the search.
type FaultRule struct {
	Endpoint    string // an endpoint key ("renew", "deploy", …) or "*"
	Kind        string // one of the kinds above
	Times, Skip int
	Probability float64
	RetryAfter  time.Duration // 429 (default 1s) and 503 (none by default): the Retry-After header
	Delay       time.Duration // latency (500ms), slow-body (1s), restart downtime (2s)
	Status      int           // html-error: the status of the page (default 502)
}

// String renders the rule in the spec syntax ParseFault reads.
func (r FaultRule) String() string {
	var opts []string
	if r.Times > 0 {
		opts = append(opts, "times="+strconv.Itoa(r.Times))
	}
	if r.Skip > 0 {
		opts = append(opts, "skip="+strconv.Itoa(r.Skip))
	}
	if r.Probability > 0 {
		opts = append(opts, "p="+strconv.FormatFloat(r.Probability, 'g', -1, 64))
	}
	if r.RetryAfter > 0 {
		opts = append(opts, "retry-after="+r.RetryAfter.String())
	}
	if r.Delay > 0 {
		opts = append(opts, "delay="+r.Delay.String())
	}
	if r.Status > 0 {
		opts = append(opts, "status="+strconv.Itoa(r.Status))
	}
	s := r.Endpoint + ":" + r.Kind
	if len(opts) > 0 {
		s += ":" + strings.Join(opts, ",")
	}
	return s
}

// ParseFault reads "ENDPOINT:KIND[:key=val,...]", e.g. "renew:drop-after:times=1",
// "deploy:429:times=3,retry-after=1s", "*:503:p=0.1", "certificates:html-error:status=504",
// "*:restart:times=1,delay=3s". Keys: times, skip, p (or probability),
// retry-after, delay, status.
func ParseFault(spec string) (FaultRule, error) {
	parts := strings.SplitN(strings.TrimSpace(spec), ":", 3)
	if len(parts) < 2 {
		return FaultRule{}, fmt.Errorf("parse fault %q: want ENDPOINT:KIND[:key=val,...]", spec)
	}
	r := FaultRule{Endpoint: strings.ToLower(strings.TrimSpace(parts[0])), Kind: strings.ToLower(strings.TrimSpace(parts[1]))}
	if !slices.Contains(endpointKeys, r.Endpoint) {
		return FaultRule{}, fmt.Errorf("parse fault %q: unknown endpoint %q (want one of %s)", spec, parts[0], strings.Join(endpointKeys, ", "))
	}
	if !slices.Contains(faultKinds, r.Kind) {
		return FaultRule{}, fmt.Errorf("parse fault %q: unknown kind %q (want one of %s)", spec, parts[1], strings.Join(faultKinds, ", "))
	}
	if len(parts) == 3 && strings.TrimSpace(parts[2]) != "" {
		for _, kv := range strings.Split(parts[2], ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok {
				return FaultRule{}, fmt.Errorf("parse fault %q: option %q is not key=value", spec, kv)
			}
			k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
			var err error
			switch k {
			case "times":
				r.Times, err = nonNegative(v)
			case "skip":
				r.Skip, err = nonNegative(v)
			case "p", "probability":
				r.Probability, err = strconv.ParseFloat(v, 64)
				if err == nil && (r.Probability <= 0 || r.Probability > 1) {
					err = fmt.Errorf("want 0 < p <= 1")
				}
			case "retry-after":
				r.RetryAfter, err = positiveDuration(v)
			case "delay":
				r.Delay, err = positiveDuration(v)
			case "status":
				r.Status, err = strconv.Atoi(v)
				if err == nil && (r.Status < 400 || r.Status > 599) {
					err = fmt.Errorf("want an error status 400–599")
				}
			default:
				return FaultRule{}, fmt.Errorf("parse fault %q: unknown option %q (want times, skip, p, retry-after, delay, status)", spec, k)
			}
			if err != nil {
				return FaultRule{}, fmt.Errorf("parse fault %q: %s=%q: %w", spec, k, v, err)
			}
		}
	}
	return r, nil
}

func nonNegative(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a non-negative integer")
	}
	return n, nil
}

func positiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want a duration like 1s or 250ms")
	}
	return d, nil
}

// faultState is a rule with its counters.
type faultState struct {
	rule        FaultRule
	seen, fired int
}

func newFaultRng(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x6661756c74))
}

// SetFaults replaces the fault rules and restarts their counters and
// random source, so a rule set behaves the same from the same seed. Rules
// with an unknown kind are skipped (and logged).
func (s *Server) SetFaults(rules ...FaultRule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
	for _, r := range rules {
		r.Endpoint, r.Kind = strings.ToLower(r.Endpoint), strings.ToLower(r.Kind)
		if !slices.Contains(faultKinds, r.Kind) {
			s.logf("kfsim: ignoring fault %s: unknown kind", r)
			continue
		}
		s.faults = append(s.faults, &faultState{rule: r})
	}
	s.faultRng = newFaultRng(s.opts.Seed)
}

// SetLatency delays every request by fixed plus a uniform random share of
// jitter, before it is processed; a client that gives up meanwhile leaves
// nothing processed.
func (s *Server) SetLatency(fixed, jitter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latencyFixed, s.latencyJitter = max(fixed, 0), max(jitter, 0)
}

// pickFault decides which fault hits a request to endpoint key: at most one
// non-latency rule, plus the summed delay of latency rules that fire.
// Callers hold s.mu.
func (s *Server) pickFault(key string) (FaultRule, time.Duration) {
	var delay time.Duration
	for _, f := range s.faults {
		if f.rule.Endpoint != "*" && f.rule.Endpoint != key {
			continue
		}
		f.seen++
		if f.seen <= f.rule.Skip || (f.rule.Times > 0 && f.fired >= f.rule.Times) {
			continue
		}
		if f.rule.Probability > 0 && s.faultRng.Float64() >= f.rule.Probability {
			continue
		}
		f.fired++
		if f.rule.Kind == kindLatency {
			d := f.rule.Delay
			if d == 0 {
				d = defaultLatency
			}
			delay += d
			continue
		}
		return f.rule, delay
	}
	return FaultRule{}, delay
}

// isAfter reports whether a fault kind lets the request be processed and
// then spoils the answer.
func isAfter(kind string) bool {
	switch kind {
	case kind500After, kindResetAfter, kindDropAfter, kindMalformed, kindSlowBody:
		return true
	}
	return false
}

// losesAnswer reports whether the client of a processed request gets no
// usable answer.
func losesAnswer(kind string) bool {
	return isAfter(kind) && kind != kindSlowBody
}

// beforeStatus is the status a before-fault sends, 0 for none.
func beforeStatus(r FaultRule) int {
	switch r.Kind {
	case kind500:
		return http.StatusInternalServerError
	case kind503:
		return http.StatusServiceUnavailable
	case kind429:
		return http.StatusTooManyRequests
	case kindHTMLError:
		if r.Status > 0 {
			return r.Status
		}
		return defaultHTMLError
	case kindWrongType:
		return http.StatusOK
	}
	return 0
}

// writeBefore answers for a before-fault.
func writeBefore(w http.ResponseWriter, r FaultRule) {
	switch r.Kind {
	case kind500:
		writeResponse(w, errorResponse(http.StatusInternalServerError, codeInternal, "An unexpected error occurred (kfsim injected fault)."))
	case kind503:
		// What a load balancer in front of IIS sends: HTML, not a Command
		// error.
		resp := htmlResponse(http.StatusServiceUnavailable, "<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>")
		if r.RetryAfter > 0 {
			resp.header.Set("Retry-After", retryAfterSeconds(r.RetryAfter))
		}
		writeResponse(w, resp)
	case kind429:
		ra := r.RetryAfter
		if ra == 0 {
			ra = defaultRetryAfter
		}
		resp := errorResponse(http.StatusTooManyRequests, codeInternal, "Too many requests (kfsim injected fault).")
		resp.header.Set("Retry-After", retryAfterSeconds(ra))
		writeResponse(w, resp)
	case kindHTMLError:
		status := beforeStatus(r)
		text := strconv.Itoa(status) + " - " + http.StatusText(status)
		writeResponse(w, htmlResponse(status, `<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN">`+
			"<html><head><title>"+text+"</title></head><body><div id=\"header\"><h1>Server Error</h1></div>"+
			"<div id=\"content\"><h2>"+text+"</h2><h3>The web server reported an error while acting as a gateway or proxy.</h3></div></body></html>"))
	case kindWrongType:
		writeResponse(w, htmlResponse(http.StatusOK, "<html><head><title>Sign in</title></head><body>"+
			"<form method=\"post\" action=\"/login\"><input name=\"username\"><input name=\"password\" type=\"password\"></form></body></html>"))
	case kindResetBefore:
		resetConnection(w)
	default:
		dropConnection(w)
	}
}

func htmlResponse(status int, body string) response {
	h := http.Header{}
	h.Set("Content-Type", "text/html; charset=utf-8")
	return response{status: status, header: h, body: []byte(body)}
}

// retryAfterSeconds renders d as whole seconds, rounded up, since
// Retry-After has no finer unit.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// dropConnection closes the client's connection without an answer (an
// orderly FIN).
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// HTTP/2 or a wrapped writer: abort the response instead.
	panic(http.ErrAbortHandler)
}

// resetConnection aborts the client's connection with a TCP RST: SO_LINGER
// zero makes Close discard the socket instead of shutting it down.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		raw = nc.NetConn() // a *tls.Conn
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
		_ = tcp.Close()
		return
	}
	_ = conn.Close()
}

// writeMalformed sends 200 with the first half of the body: JSON that ends
// too early, as from a proxy that cut the stream.
func writeMalformed(w http.ResponseWriter, resp response) {
	body := resp.body
	if len(body) >= 2 {
		body = body[:len(body)/2]
	} else {
		body = []byte(`{"`)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	writeResponse(w, response{status: http.StatusOK, header: h, body: body})
}

// writeSlowly sends the answer in pieces spread over d. It reports whether
// the whole answer went out, and whether the simulator restarted meanwhile
// (the caller then resets the connection, after noting the loss).
func writeSlowly(ctx context.Context, restarted <-chan struct{}, waiting func(), w http.ResponseWriter, resp response, d time.Duration) (whole, restart bool) {
	if d <= 0 {
		d = defaultSlowBodyTime
	}
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
	flusher, _ := w.(http.Flusher)
	const pieces = 10
	step := max((len(resp.body)+pieces-1)/pieces, 1)
	for off := 0; off < len(resp.body); off += step {
		if off > 0 {
			if waiting != nil {
				waiting()
			}
			switch err := sleep(ctx, restarted, d/pieces); err {
			case nil:
			case errRestarted:
				return false, true
			default:
				return false, false
			}
		}
		end := min(off+step, len(resp.body))
		if _, err := w.Write(resp.body[off:end]); err != nil {
			return false, false
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
	return true, false
}
