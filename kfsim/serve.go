package kfsim

import (
	"net/http"
	"time"
)

// outage is the state of simulated restarts: a channel closed (and
// replaced) at each restart, so every request in flight learns of it, and
// the wall-clock time until which new requests are refused.
type outage struct {
	restarted chan struct{}
	until     time.Time
	wall      func() time.Time // time.Now; tests drive it
	// waiting, when set (by tests), is called as a request starts a wait:
	// its latency, or a pause of a slow body.
	waiting func()
}

func (o *outage) init() {
	o.restarted = make(chan struct{})
	o.wall = time.Now
}

func (o *outage) down() bool { return o.wall().Before(o.until) }

// Restart simulates Command restarting (an IIS recycle, a pod replaced):
// every request in flight is cut (its connection reset; work it had already
// committed stays committed, its answer is lost) and every new request is
// reset for downFor of wall time. Everything Command keeps in its database
// survives: certificates, stores, staged private keys and their windows,
// pending requests, scheduled jobs, job history, the ledger; OAuth tokens
// stay valid, because the identity provider did not restart. Fault
// counters keep counting. A restarted server refuses connections; the
// simulator, behind a listener it does not own, accepts and resets them,
// which a client sees the same way (a connection error, nothing processed).
func (s *Server) Restart(downFor time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restartLocked(downFor)
}

func (s *Server) restartLocked(downFor time.Duration) {
	close(s.outage.restarted)
	s.outage.restarted = make(chan struct{})
	s.outage.until = s.outage.wall().Add(max(downFor, 0))
	s.logf("kfsim: restarting, down for %s", downFor)
}

// record appends a request to the ledger (and to UnknownRoutes when it went
// to a route the simulator does not serve). Callers hold s.mu.
func (s *Server) record(rec Request, unknown bool) {
	s.ledger.Requests = append(s.ledger.Requests, rec)
	if unknown {
		s.ledger.UnknownRoutes = append(s.ledger.UnknownRoutes, rec)
	}
}

// serve runs one request through outage, authentication, latency, faults and
// its handler. The request is recorded in the ledger before any answer is
// written (or withheld), so a client that has seen the answer always finds
// the request, and what it did, in the ledger.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, ep endpoint) {
	ctx := r.Context()
	body := readBody(r)

	s.mu.Lock()
	now := s.now()
	s.settle(now)
	rec := Request{At: now, Method: r.Method, Path: r.URL.Path, Endpoint: ep.key}
	if s.outage.down() {
		rec.Fault = kindRestart
		s.record(rec, ep.unknown)
		s.mu.Unlock()
		resetConnection(w)
		return
	}
	who, authOK := s.authenticate(r, now)
	rec.Identity = who.identity
	rule, faultDelay := s.pickFault(ep.key)
	if rule.Kind == kindRestart {
		down := rule.Delay
		if down == 0 {
			down = defaultDowntime
		}
		s.restartLocked(down)
		rec.Fault = kindRestart
		s.record(rec, ep.unknown)
		s.mu.Unlock()
		resetConnection(w)
		return
	}
	restarted, waiting := s.outage.restarted, s.outage.waiting
	delay := s.latencyFixed
	if s.latencyJitter > 0 {
		delay += time.Duration(s.latencyRng.Int64N(int64(s.latencyJitter)))
	}
	s.mu.Unlock()

	faultName := rule.Kind
	if faultName == "" && faultDelay > 0 {
		faultName = kindLatency
	}
	if waiting != nil && delay+faultDelay > 0 {
		waiting()
	}
	if err := sleep(ctx, restarted, delay+faultDelay); err != nil {
		// The client gave up while the server was "busy", or the server
		// restarted: nothing was processed.
		s.mu.Lock()
		rec.At, rec.Fault = s.now(), faultName
		if err == errRestarted {
			rec.Fault = kindRestart
		}
		s.record(rec, ep.unknown)
		s.mu.Unlock()
		if err == errRestarted {
			resetConnection(w)
		}
		return
	}
	if rule.Kind != "" && !isAfter(rule.Kind) {
		s.mu.Lock()
		rec.At, rec.Fault, rec.Status = s.now(), rule.Kind, beforeStatus(rule)
		s.record(rec, ep.unknown)
		s.mu.Unlock()
		writeBefore(w, rule)
		return
	}

	s.mu.Lock()
	select {
	case <-restarted:
		rec.At, rec.Fault = s.now(), kindRestart
		s.record(rec, ep.unknown)
		s.mu.Unlock()
		resetConnection(w)
		return
	default:
	}
	now = s.now()
	s.settle(now)
	c := &call{r: r, query: lowerQuery(r.URL.Query()), body: body, param: ep.param, identity: who.identity,
		perms: who.perms, roles: who.roles, now: now, lost: losesAnswer(rule.Kind)}
	renewals := len(s.ledger.Renewals)
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
	switch rule.Kind {
	case kindDropAfter, kindResetAfter:
		rec.Status = 0
	case kindMalformed:
		rec.Status = http.StatusOK
	case kind500After:
		rec.Status = http.StatusInternalServerError
	default:
		rec.Status = resp.status
	}
	s.record(rec, ep.unknown)
	renewal := -1
	if len(s.ledger.Renewals) > renewals {
		renewal = renewals
	}
	s.mu.Unlock()

	switch rule.Kind {
	case kindDropAfter:
		dropConnection(w)
	case kindResetAfter:
		resetConnection(w)
	case kindMalformed:
		writeMalformed(w, resp)
	case kind500After:
		writeResponse(w, errorResponse(http.StatusInternalServerError, codeInternal, "An unexpected error occurred (kfsim injected fault, after the work was done)."))
	case kindSlowBody:
		whole, restart := writeSlowly(ctx, restarted, waiting, w, resp, rule.Delay)
		if !whole && renewal >= 0 {
			// The answer never arrived whole: the renewal's response is
			// lost after all. On a restart this is noted before the
			// connection is reset; a client that gave up is gone already.
			s.mu.Lock()
			rn := &s.ledger.Renewals[renewal]
			rn.ResponseLost, rn.AnsweredAt = true, time.Time{}
			s.mu.Unlock()
		}
		if restart {
			resetConnection(w)
		}
	default:
		writeResponse(w, resp)
	}
}
