package runner

import (
	"context"
	"fmt"
	"maps"
	"time"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/report"
)

// buildDeploy prepares the Deploy body, without the certificate, and
// resolves the entry password: a missing secret or a legacy shape that
// cannot be built stops the job before anything is renewed.
func (s *run) buildDeploy(t *target) (keyfactor.DeployRequest, error) {
	// Resolved here, not at parse time, so `runner validate` needs no
	// secrets; and before Renew, so a missing one stops the renewal.
	password, err := t.job.Password.Resolve()
	if err != nil {
		return keyfactor.DeployRequest{}, err
	}
	req := keyfactor.DeployRequest{Password: password}
	jobTime := t.job.JobTime
	if jobTime.IsZero() {
		jobTime = s.cfg.JobTime
	}
	if !jobTime.IsZero() {
		jt := jobTime.UTC()
		req.JobTime = &jt
	}
	for _, pr := range t.rows {
		req.Stores = append(req.Stores, keyfactor.DeployStore{StoreId: pr.StoreID, Alias: pr.Alias, Overwrite: pr.Overwrite, Properties: pr.Properties})
	}
	if s.cfg.LegacyDeploy {
		types := map[string]int{}
		for _, pr := range t.rows {
			types[pr.StoreID] = s.stores[pr.StoreID].CertStoreType
		}
		if req, err = keyfactor.LegacyDeployRequest(req, types); err != nil {
			return keyfactor.DeployRequest{}, fmt.Errorf("build the pre-9.4 deploy: %w", err)
		}
	}
	return req, nil
}

// deploy sends POST /Enrollment/PFX/Deploy for all of the target's stores at
// once, retrying what may be retried until renewal + window − margin, and
// records the renewal with its stores' outcomes in one journal write that the
// worker does not wait for (see recordAsync). An interrupt does not stop it:
// the certificate is renewed, and a renewal left undeployed is the one thing
// worse than a late report.
func (s *run) deploy(ctx context.Context, t *target, r journal.Renewal, req keyfactor.DeployRequest) {
	if r.NewCertificateID != 0 {
		req.CertificateId = r.NewCertificateID
	} else {
		req.RequestId = r.RequestID
	}
	deadline := r.RenewedAt.Add(s.cfg.Window - s.cfg.WindowMargin)
	// No call may outlive the window itself.
	callCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), time.Now().Add(r.RenewedAt.Add(s.cfg.Window).Sub(s.cfg.Now())))
	defer cancel()
	s.countDeploys(t.rows)
	var bo backoff
	for attempt := 1; ; attempt++ {
		now := s.cfg.Now()
		if !now.Before(deadline) {
			s.deployFailed(t, r, true, fmt.Sprintf("window expired %s before the deploy could be sent (renewed at %s); certificate %d is in Command: deploy it by hand",
				now.Sub(deadline).Round(time.Second), stamp(r.RenewedAt), r.NewCertificateID), nil)
			return
		}
		resp, err := s.client.Deploy(callCtx, req)
		if err == nil {
			s.applyDeploy(t, r, resp)
			return
		}
		if keyfactor.Classify(err) == keyfactor.Permanent {
			detail := "Command refused the deploy: " + apiMessage(err)
			expired := s.cfg.Now().After(r.RenewedAt.Add(s.cfg.Window))
			if expired {
				detail = "window expired: " + detail
			}
			s.deployFailed(t, r, expired, detail, err)
			return
		}
		// Retryable, or unknown: a second deploy of the same certificate to
		// the same stores is harmless, a certificate left undeployed is not.
		wait := bo.next(keyfactor.RetryAfterOf(err))
		if now = s.cfg.Now(); !now.Add(wait).Before(deadline) {
			s.deployFailed(t, r, true, fmt.Sprintf("window expired: the deploy kept failing for %s after renewal (%d attempts); certificate %d is in Command, deploy it by hand; last error: %s",
				now.Sub(r.RenewedAt).Round(time.Second), attempt, r.NewCertificateID, apiMessage(err)), err)
			return
		}
		s.log.Warn("deploy failed; retrying inside the window", "certificate", r.NewCertificateID, "request", r.RequestID, "attempt", attempt, "wait", wait, "err", err)
		if err := keyfactor.Sleep(callCtx, wait); err != nil {
			s.deployFailed(t, r, true, fmt.Sprintf("window expired while waiting to retry the deploy; certificate %d is in Command, deploy it by hand", r.NewCertificateID), err)
			return
		}
	}
}

// deployFailed fails the target's rows and records the renewal with its
// failed stores. When the failure is the window (it passed, or the deploy
// cannot be retried before it does), the renewal can never be deployed: it
// is marked orphaned now, so it is reported once (here) and later runs go
// by what the stores hold.
func (s *run) deployFailed(t *target, r journal.Renewal, orphaned bool, detail string, err error) {
	s.failRows(t.rows, report.StageDeploy, detail, err)
	now := s.cfg.Now().UTC()
	status := journal.StoreFailed
	if orphaned {
		status = journal.StoreOrphaned
	}
	states := make(map[string]journal.StoreState, len(t.rows))
	for _, pr := range t.rows {
		states[pr.StoreID] = journal.StoreState{Status: status, At: now, Detail: detail}
	}
	s.recordStores(t, r, states, orphaned)
}

// recordStores records the renewal r with the outcome of some of its
// stores, keeping what the journal holds of its other stores (another
// plan's rows of the same certificate).
func (s *run) recordStores(t *target, r journal.Renewal, states map[string]journal.StoreState, orphaned bool) {
	s.recordAsync(t.root, r, func(x *journal.Renewal) {
		keepStores := x.Stores
		*x = r
		x.Stores = maps.Clone(keepStores)
		if x.Stores == nil {
			x.Stores = map[string]journal.StoreState{}
		}
		for id, st := range states {
			x.Stores[id] = st
		}
		x.Orphaned = x.Orphaned || orphaned
	})
}

// applyDeploy maps Command's answer onto the rows, trusting it only as far
// as it makes sense: a store named in both lists is not deployed, a store
// that was not asked for is logged and ignored.
func (s *run) applyDeploy(t *target, r journal.Renewal, resp *keyfactor.DeployResponse) {
	ok, bad := set(resp.SuccessfulStores), set(resp.FailedStores)
	asked := set(storesOf(t.rows))
	warned := map[string]bool{}
	for _, named := range []map[string]bool{ok, bad} {
		for id := range named {
			if !asked[id] && !warned[id] {
				warned[id] = true
				msg := fmt.Sprintf("Command's deploy answer named store %s, which was not asked for; ignored", id)
				s.log.Warn(msg, "certificate", r.NewCertificateID)
				s.warn(t.rows, msg)
			}
		}
	}
	now := s.cfg.Now().UTC()
	states := map[string]journal.StoreState{}
	var deployed []*plan.Row
	for _, pr := range t.rows {
		var detail string
		switch {
		case ok[pr.StoreID] && bad[pr.StoreID]:
			detail = "Command named this store in both SuccessfulStores and FailedStores; not counted as deployed: check the store's management jobs in Command"
		case ok[pr.StoreID]:
			detail = "job created"
			if r.NewCertificateID == 0 {
				detail = fmt.Sprintf("job created; deployed by request id %d, which awaits approval in Command", r.RequestID)
			}
			if s.verifier != nil && r.NewCertificateID != 0 {
				// Not final yet: verification says whether it was installed.
				s.note(rowsOf(pr), func(row *report.Row) {
					row.Status, row.Stage, row.Detail, row.DeployedAt = report.Succeeded, report.StageDeploy, detail, now
				})
			} else {
				s.succeedRows(rowsOf(pr), report.StageDeploy, detail, now)
			}
			states[pr.StoreID] = journal.StoreState{Status: journal.StoreJobCreated, At: now}
			deployed = append(deployed, pr)
			continue
		case bad[pr.StoreID] && len(resp.SuccessfulStores) == 0:
			detail = "Command created no job for any store of this certificate (all in FailedStores): check the stores' approval, the schedule permission on their containers, the entry password their type needs, and that the staging window had not passed"
		case bad[pr.StoreID]:
			detail = "Command created no management job for this store (FailedStores): check the store's approval, the schedule permission on its container and the entry password its type needs"
		default:
			detail = "Command's answer named this store in neither SuccessfulStores nor FailedStores"
		}
		s.failRows(rowsOf(pr), report.StageDeploy, detail, nil)
		states[pr.StoreID] = journal.StoreState{Status: journal.StoreFailed, At: now, Detail: detail}
	}
	s.recordStores(t, r, states, false)
	s.logDeployed(t, r, len(deployed))
	if s.verifier != nil && r.NewCertificateID != 0 && len(deployed) > 0 {
		s.verifier.add(t.root, r, deployed, now)
	}
}

func (s *run) logDeployed(t *target, r journal.Renewal, ok int) {
	args := []any{"certificate", r.OldCertificateID}
	if r.NewCertificateID != 0 {
		args = append(args, "new_certificate", r.NewCertificateID)
	} else {
		args = append(args, "request", r.RequestID, "awaits_approval", true)
	}
	args = append(args, "stores_ok", ok, "stores_failed", len(t.rows)-ok)
	if ok == len(t.rows) {
		s.log.Info("renewed and deployed", args...)
	} else {
		s.log.Warn("renewed, but not deployed to every store", args...)
	}
}

// countDeploys counts the deploys this run sends to each store, so a
// failed job in a store's history is only blamed on a row when it can be
// nobody else's.
func (s *run) countDeploys(rows []*plan.Row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deploysTo == nil {
		s.deploysTo = map[string]int{}
	}
	for _, pr := range rows {
		s.deploysTo[pr.StoreID]++
	}
}

// set makes a set of store ids, which keyfactor and plan both give in one
// form (lower case, without braces).
func set(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}
