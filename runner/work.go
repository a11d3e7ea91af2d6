package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"runner/journal"
	"runner/keyfactor"
	"runner/report"
)

// Renew retries: only what Command surely did not process (429, 503,
// connection refused) is sent again, at most renewAttempts times, waiting
// at most maxRenewWait however long a Retry-After asks for: a worker is not
// held for an hour by one certificate.
const (
	renewAttempts = 4
	maxRenewWait  = time.Minute
)

// renewAndDeploy is one worker's whole job for one certificate: build the
// deploy first (so a renewal only starts when its deploy can follow),
// renew, then deploy at once inside the staging window.
func (s *run) renewAndDeploy(ctx context.Context, t *target) {
	req, err := s.buildDeploy(t)
	if err != nil {
		s.failRows(t.rows, report.StagePreflight, "not renewed: "+err.Error(), nil)
		return
	}
	if ctx.Err() != nil {
		s.failRows(t.rows, report.StageCheck, "not started: run interrupted", nil)
		return
	}
	// Renewals of one subject go one at a time until each is claimed, so a
	// search for a lost answer can only find its own certificate.
	unlock := s.subjects.lock(t.f.current.IssuedDN)
	r, ok := s.renew(ctx, t)
	unlock()
	if ok {
		s.deploy(ctx, t, r, req)
	}
	if t.pair {
		s.pairs.done()
	}
}

// resume deploys an earlier run's renewal whose window is still open.
func (s *run) resume(ctx context.Context, t *target) {
	r := t.act.renewal
	t.rows = t.rowsFor(t.act.stores)
	s.log.Info("deploying the renewal of an earlier run", "certificate", r.OldCertificateID, "new_certificate", r.NewCertificateID, "renewed_at", r.RenewedAt)
	s.note(t.rows, func(row *report.Row) {
		row.NewCertificateID, row.RequestID, row.RenewedAt = r.NewCertificateID, r.RequestID, r.RenewedAt
	})
	req, err := s.buildDeploy(t)
	if err != nil {
		s.failRows(t.rows, report.StageDeploy, fmt.Sprintf("certificate %d was renewed as %d by an earlier run but cannot be deployed: %v; fix it before its window closes at %s",
			r.OldCertificateID, r.NewCertificateID, err, stamp(r.RenewedAt.Add(s.cfg.Window))), nil)
		return
	}
	// A deploy inside the window goes out even after an interrupt: wait for
	// a pair's place whatever ctx says.
	s.pairs.take(context.WithoutCancel(ctx))
	defer s.pairs.done()
	s.deploy(ctx, t, r, req)
}

// The details of a Renew abandoned by an interrupt: nothing was processed.
const (
	notSentInterrupted = "not renewed: run interrupted before Renew was sent"
	retryInterrupted   = "not renewed: run interrupted while waiting to retry Renew (Command had not processed it)"
)

// renew sends POST /Enrollment/Renew for the target's current certificate,
// journaling the attempt first (synced to disk before the request goes
// out). It retries only what Command surely did not process, and settles an
// unknown outcome by searching Command, never by renewing again. It fails
// the rows itself when it reports false.
func (s *run) renew(ctx context.Context, t *target) (journal.Renewal, bool) {
	cur := t.f.current
	if t.root == 0 {
		t.root = cur.Id
	}
	r, err := s.journal.Begin(t.root, journal.Renewal{
		Kind: journal.KindRenewal, State: journal.StateInFlight,
		OldCertificateID: cur.Id, Subject: cur.IssuedDN, StartedAt: s.cfg.Now().UTC(),
	})
	if err != nil {
		s.failRows(t.rows, report.StageRenew, "not renewed: the attempt could not be recorded in the journal first", err)
		return r, false
	}
	// The attempt is on disk; now wait for one of the places of a
	// renew→deploy pair (pairSlots).
	if !s.pairs.take(ctx) {
		return s.abandon(t, r, notSentInterrupted, nil)
	}
	t.pair = true
	req := keyfactor.RenewalRequest{CertificateId: cur.Id, Template: t.job.Template, CertificateAuthority: t.job.CertificateAuthority}
	var bo backoff
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return s.abandon(t, r, notSentInterrupted, nil)
		}
		sent := s.cfg.Now().UTC()
		req.Timestamp = sent
		sendCtx, done := sendGate(ctx)
		resp, err := s.client.Renew(sendCtx, req)
		done()
		if err == nil {
			return s.renewAnswered(ctx, t, r, resp, sent)
		}
		switch keyfactor.Classify(err) {
		case keyfactor.Retryable:
			if ctx.Err() != nil {
				detail := notSentInterrupted
				var apiErr *keyfactor.APIError
				if errors.As(err, &apiErr) {
					detail = retryInterrupted
				}
				return s.abandon(t, r, detail, err)
			}
			if attempt < renewAttempts {
				wait := bo.next(min(keyfactor.RetryAfterOf(err), maxRenewWait))
				s.log.Warn("Command did not process Renew; retrying", "certificate", cur.Id, "attempt", attempt, "wait", wait, "err", err)
				if keyfactor.Sleep(ctx, wait) == nil {
					continue
				}
				return s.abandon(t, r, retryInterrupted, err)
			}
			return s.abandon(t, r, fmt.Sprintf("not renewed: Command did not process Renew after %d attempts: %s", attempt, apiMessage(err)), err)
		case keyfactor.Unknown:
			s.log.Warn("renew outcome unknown; searching Command for the new certificate", "certificate", cur.Id, "err", err)
			return s.settleUnknown(ctx, t, r, err)
		default:
			return s.abandon(t, r, "Command refused Renew: "+apiMessage(err), err)
		}
	}
}

// sendGate returns a context for a request that must not be sent after ctx
// is cancelled (the first interrupt), but once sent must run to its answer:
// cancelling ctx cancels the request only until it has been written.
func sendGate(ctx context.Context) (context.Context, func()) {
	var written atomic.Bool
	gated, cancel := context.WithCancel(context.WithoutCancel(ctx))
	gated = httptrace.WithClientTrace(gated, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { written.Store(true) },
	})
	stop := context.AfterFunc(ctx, func() {
		if !written.Load() {
			cancel()
		}
	})
	return gated, func() { stop(); cancel() }
}

// renewAnswered handles Command's answer to Renew.
func (s *run) renewAnswered(ctx context.Context, t *target, r journal.Renewal, resp *keyfactor.RenewalResponse, sent time.Time) (journal.Renewal, bool) {
	switch resp.Outcome() {
	case keyfactor.RenewIssued:
		r.State, r.NewCertificateID, r.RequestID, r.RenewedAt = journal.StateRenewed, resp.KeyfactorId, resp.KeyfactorRequestId, sent
	case keyfactor.RenewPending:
		r.State, r.RequestID, r.RenewedAt = journal.StatePending, resp.KeyfactorRequestId, sent
	case keyfactor.RenewDenied:
		msg := dispositionText(resp)
		s.record(t.root, r, func(x *journal.Renewal) { x.State, x.Message = journal.StateDenied, msg })
		s.failRows(t.rows, report.StageRenew, "Command denied the renewal: "+msg+"; nothing was deployed. Fix the cause in Command, then rerun with --force", nil)
		return r, false
	case keyfactor.RenewFailed:
		// Nothing was issued: the next run may try again.
		return s.abandon(t, r, "Command could not renew the certificate: "+dispositionText(resp)+"; nothing was deployed", nil)
	default:
		// 200 without ids: whether something was issued cannot be known
		// from the answer, so look, as for a lost answer.
		s.log.Warn("Command answered Renew without KeyfactorId or KeyfactorRequestId; searching for the new certificate", "certificate", t.f.current.Id)
		return s.settleUnknown(ctx, t, r, errors.New("Command answered Renew with neither KeyfactorId nor KeyfactorRequestId"))
	}
	return s.renewed(t, r), true
}

func dispositionText(resp *keyfactor.RenewalResponse) string {
	parts := []string{}
	if resp.RequestDisposition != "" {
		parts = append(parts, resp.RequestDisposition)
	}
	if resp.DispositionMessage != "" {
		parts = append(parts, resp.DispositionMessage)
	}
	if len(parts) == 0 {
		return "no reason given"
	}
	return strings.Join(parts, ": ")
}

// settleUnknown searches Command for the certificate a Renew with an
// unknown outcome may have issued. Nothing found leaves the attempt in
// flight for the next run to look for again.
func (s *run) settleUnknown(ctx context.Context, t *target, r journal.Renewal, cause error) (journal.Renewal, bool) {
	res := s.searchRenewal(context.WithoutCancel(ctx), t.root, r)
	switch {
	case res.err != nil:
		s.failRows(t.rows, report.StageRenew, fmt.Sprintf("renew outcome unknown and Command could not be searched (%v); not renewing again: the next run looks for it first", res.err), cause)
	case len(res.candidates) == 0:
		s.failRows(t.rows, report.StageRenew, fmt.Sprintf("renew outcome unknown and no new certificate for %q was found in Command; not renewing again: the next run looks for it first", r.Subject), cause)
	case len(res.candidates) > 1:
		s.failRows(t.rows, report.StageRenew, fmt.Sprintf("renew outcome unknown and Command holds %d certificates that could be the renewal: %s; not guessing: check in Command which one is the renewal of %d", len(res.candidates), certIDs(res.candidates), r.OldCertificateID), cause)
	default:
		found := res.candidates[0]
		s.log.Info("found the renewal whose answer was lost", "certificate", r.OldCertificateID, "new_certificate", found.Id)
		r.State, r.NewCertificateID, r.RequestID, r.RenewedAt = journal.StateRenewed, found.Id, found.CertRequestId, r.StartedAt
		return s.renewed(t, r), true
	}
	return r, false
}

// renewed records Renew's answer without waiting for the disk (the new
// certificate is claimed for the lineage at once, so no search can take it
// for another; a crash before the commit is settled by the next run's
// search) and notes it in the rows.
func (s *run) renewed(t *target, r journal.Renewal) journal.Renewal {
	s.recordAsync(t.root, r, func(x *journal.Renewal) {
		x.State, x.NewCertificateID, x.RequestID, x.RenewedAt = r.State, r.NewCertificateID, r.RequestID, r.RenewedAt
	})
	s.note(t.rows, func(row *report.Row) {
		row.NewCertificateID, row.RequestID, row.RenewedAt = r.NewCertificateID, r.RequestID, r.RenewedAt
		row.Stage, row.Detail = report.StageRenew, "renewed"
		// The old certificate's dates no longer say anything; the new one's
		// are known once it is read (--verify, or the next run).
		row.Expires, row.DueAt = time.Time{}, time.Time{}
	})
	return r
}

// abandon forgets an attempt Command surely did not process and fails the
// target's rows at the renew stage with detail and the error that ended it.
func (s *run) abandon(t *target, r journal.Renewal, detail string, cause error) (journal.Renewal, bool) {
	if err := s.journal.Abandon(t.root, r.Seq); err != nil {
		s.log.Warn("could not clear the journal's in-flight renewal; the next run will search Command for it", "certificate", r.OldCertificateID, "err", err)
	}
	s.failRows(t.rows, report.StageRenew, detail, cause)
	return r, false
}

// record writes the renewal r of lineage root, changed by change, to the
// journal, and waits for the commit.
func (s *run) record(root int, r journal.Renewal, change func(*journal.Renewal)) {
	if err := s.journal.Update(root, r.Seq, change); err != nil {
		s.log.Error("could not record a renewal in the journal", "certificate", r.OldCertificateID, "new_certificate", r.NewCertificateID, "err", err)
	}
}

// recordAsync is record without waiting for the commit: for Renew's answer
// and a deploy's outcome, which the worker need not see on disk before it
// goes on. A commit that fails is reported by every later write and by
// the journal's Close; a crash before it is settled by the next run as for a
// lost Renew answer (the search finds the certificate; a deploy still inside
// the window is sent again, which is harmless; past the window, the
// certificate found in the stores is adopted before anything is renewed).
func (s *run) recordAsync(root int, r journal.Renewal, change func(*journal.Renewal)) {
	if err := s.journal.UpdateAsync(root, r.Seq, change); err != nil {
		s.log.Error("could not record a renewal in the journal", "certificate", r.OldCertificateID, "new_certificate", r.NewCertificateID, "err", err)
	}
}

// pairSlots are the --concurrency places for renew→deploy pairs in flight.
// Twice as many workers as places run, so that while one waits for its
// journal entry to be synced (Begin), another, whose entry is on disk, takes
// the place a finished pair left: Command always has --concurrency pairs
// under way, none of them waiting for the disk.
type pairSlots chan struct{}

// take waits for a place; false when ctx ended first.
func (p pairSlots) take(ctx context.Context) bool {
	select {
	case p <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// done gives a place back.
func (p pairSlots) done() { <-p }

// apiMessage is the most readable form of a Command error.
func apiMessage(err error) string {
	var apiErr *keyfactor.APIError
	if errors.As(err, &apiErr) && apiErr.Message != "" {
		return apiErr.Message
	}
	return err.Error()
}

// backoff yields keyfactor.Backoff's growing waits, or Command's
// Retry-After when it names one.
type backoff struct{ n int }

func (b *backoff) next(retryAfter time.Duration) time.Duration {
	b.n++
	if retryAfter > 0 {
		return retryAfter
	}
	return keyfactor.Backoff(b.n)
}
