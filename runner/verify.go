package runner

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/report"
)

// maxVerifyInterval caps the growing wait between two reads of one
// certificate.
const maxVerifyInterval = 30 * time.Second

// verifier follows deployed certificates until inventory shows them in
// their stores (GET /Certificates/{id}?includeLocations=true), so the report
// says what was installed, not only what was scheduled. Each deployed
// certificate is followed on its own, starting as soon as its deploy
// returns, by goroutines that never hold a renew→deploy slot; their reads
// are bounded by the same concurrency and share the client's rate limit.
type verifier struct {
	s     *run
	ctx   context.Context
	slots chan struct{}
	wg    sync.WaitGroup
	// noHistory is set once Command refuses the job history, which is then
	// no longer asked.
	noHistory atomic.Bool
	started   sync.Once
}

func newVerifier(ctx context.Context, s *run) *verifier {
	return &verifier{s: s, ctx: ctx, slots: make(chan struct{}, s.cfg.Concurrency)}
}

// add starts following renewal r's new certificate in the stores of rows.
func (v *verifier) add(root int, r journal.Renewal, rows []*plan.Row, deployedAt time.Time) {
	v.started.Do(func() {
		v.s.log.Info("verifying: waiting for Command's inventory to show each new certificate in its stores; inventory can take minutes after the job runs", "verify_timeout", v.s.cfg.VerifyTimeout)
	})
	v.wg.Go(func() { v.follow(root, r, rows, deployedAt) })
}

// wait returns when every certificate is verified, timed out or the run
// was interrupted.
func (v *verifier) wait() { v.wg.Wait() }

func (v *verifier) follow(root int, r journal.Renewal, rows []*plan.Row, deployedAt time.Time) {
	s := v.s
	deadline := deployedAt.Add(s.cfg.VerifyTimeout)
	interval := s.cfg.VerifyInterval
	pending := rows
	for len(pending) > 0 {
		if keyfactor.Sleep(v.ctx, interval) != nil {
			s.failRows(pending, report.StageVerify, "job created; not verified: run interrupted before inventory showed the certificate in this store", nil)
			return
		}
		interval = min(interval*3/2, max(maxVerifyInterval, s.cfg.VerifyInterval))
		cert, err := v.read(r.NewCertificateID)
		if err != nil {
			s.log.Debug("verify: could not read the certificate; will try again", "certificate", r.NewCertificateID, "err", err)
		} else {
			pending = v.markSeen(root, r, cert, pending)
		}
		if len(pending) > 0 {
			pending = v.failedJobs(r, pending, deployedAt)
		}
		if len(pending) > 0 && !s.cfg.Now().Before(deadline) {
			s.failRows(pending, report.StageVerify, fmt.Sprintf(
				"job created but not seen in store after %s: the management job may have failed on the orchestrator, or inventory has not run yet; check the store's job history in Command",
				s.cfg.VerifyTimeout), nil)
			return
		}
	}
}

// take waits for one of the verifier's request slots and returns its
// release; an error when the run was interrupted first.
func (v *verifier) take() (func(), error) {
	select {
	case v.slots <- struct{}{}:
		return func() { <-v.slots }, nil
	case <-v.ctx.Done():
		return nil, v.ctx.Err()
	}
}

// read takes a slot and reads the certificate with its locations.
func (v *verifier) read(id int) (*keyfactor.Certificate, error) {
	release, err := v.take()
	if err != nil {
		return nil, err
	}
	defer release()
	return v.s.client.GetCertificate(v.ctx, id, true)
}

// markSeen settles the rows whose store lists the certificate and returns
// the others.
func (v *verifier) markSeen(root int, r journal.Renewal, cert *keyfactor.Certificate, rows []*plan.Row) []*plan.Row {
	s := v.s
	now := s.cfg.Now().UTC()
	var left, seen []*plan.Row
	for _, pr := range rows {
		if locatedIn(cert, pr.StoreID) {
			seen = append(seen, pr)
		} else {
			left = append(left, pr)
		}
	}
	if len(seen) == 0 {
		return left
	}
	// Noted before the rows are final: setRows changes no final row.
	if !cert.NotAfter.After(now) {
		s.warn(seen, fmt.Sprintf("Command reports the new certificate %d as expired (NotAfter %s)", cert.Id, stamp(cert.NotAfter)))
	}
	s.note(seen, func(row *report.Row) { row.Expires = cert.NotAfter })
	s.succeedRows(seen, report.StageVerify, "seen in store", now)
	s.record(root, r, func(x *journal.Renewal) {
		if x.Stores == nil {
			x.Stores = map[string]journal.StoreState{}
		}
		for _, pr := range seen {
			x.Stores[pr.StoreID] = journal.StoreState{Status: journal.StoreVerified, At: now}
		}
	})
	return left
}

// failedJobs fails the rows whose store's job history shows a failed
// management job since the deploy, when this run deployed only that one
// certificate to the store (job history names the store, not the
// certificate). It returns the rows still pending.
func (v *verifier) failedJobs(r journal.Renewal, rows []*plan.Row, deployedAt time.Time) []*plan.Row {
	s := v.s
	if v.noHistory.Load() {
		return rows
	}
	var left []*plan.Row
	for i, pr := range rows {
		s.mu.Lock()
		only := s.deploysTo[pr.StoreID] == 1
		s.mu.Unlock()
		st, known := s.stores[pr.StoreID]
		if !only || !known {
			left = append(left, pr)
			continue
		}
		job, err := v.lastFailedJob(st, deployedAt)
		switch {
		case err != nil && (isNotFound(err) || keyfactor.CauseOf(err) == keyfactor.CauseForbidden):
			v.noHistory.Store(true)
			s.log.Info("Command does not show orchestrator job history to this user; --verify relies on inventory alone", "err", err)
			return append(left, rows[i:]...)
		case err != nil || job == nil:
			left = append(left, pr)
		default:
			s.failRows(rowsOf(pr), report.StageVerify, fmt.Sprintf("the management job for certificate %d failed on the orchestrator (job %s at %s): %s",
				r.NewCertificateID, job.JobId, stamp(job.OperationEnd), job.Message), nil)
		}
	}
	return left
}

// lastFailedJob returns the store's first failed job among the first 20
// that started since the deploy (less clockSkew), or nil.
func (v *verifier) lastFailedJob(st keyfactor.CertificateStore, since time.Time) (*keyfactor.JobHistory, error) {
	machine, err := keyfactor.Quote(st.ClientMachine)
	if err != nil {
		return nil, err
	}
	path, err := keyfactor.Quote(st.Storepath)
	if err != nil {
		return nil, err
	}
	release, err := v.take()
	if err != nil {
		return nil, err
	}
	defer release()
	jobs, _, err := v.s.client.JobHistory(v.ctx, keyfactor.JobHistoryQuery{
		QueryString: keyfactor.And(keyfactor.Clause("ClientMachine", "-eq", machine), keyfactor.Clause("StorePath", "-eq", path),
			keyfactor.Clause("OperationStart", "-ge", keyfactor.QueryTime(since.Add(-clockSkew)))),
		ReturnLimit: 20, SortField: "JobHistoryId", SortAscending: 1,
	})
	if err != nil {
		return nil, err
	}
	for i := range jobs {
		if jobs[i].Failed() {
			return &jobs[i], nil
		}
	}
	return nil, nil
}
