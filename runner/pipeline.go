package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/report"
)

// deployed is a certificate whose deploy created management jobs, for the
// verification phase.
type deployed struct {
	certificateID int
	rows          []*plan.Row // rows with a job created
}

// renewAndDeploy is one worker's whole job for one certificate: build the
// deploy first (so a renewal is only started when its deploy can follow),
// renew, then deploy at once inside the staging window.
func (s *run) renewAndDeploy(ctx context.Context, t *target) *deployed {
	req, err := s.buildDeploy(t)
	if err != nil {
		s.failRows(t.rows, report.StagePreflight, "not renewed: "+err.Error(), nil)
		return nil
	}
	var ren journal.Renewal
	if t.resume != nil {
		ren = *t.resume
		s.log.Info("deploying the renewal of an earlier run", "certificate", ren.OldCertificateID, "new_certificate", ren.NewCertificateID)
		s.setRows(t.rows, func(row *report.Row) {
			row.NewCertificateID, row.RequestID, row.RenewedAt = ren.NewCertificateID, ren.RequestID, ren.RenewedAt
		})
	} else {
		var ok bool
		if ren, ok = s.renew(ctx, t); !ok {
			return nil
		}
	}
	return s.deploy(ctx, t, ren, req)
}

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

// renewAttempts bounds the tries of a Renew that Command surely did not
// process (429, 503, connection refused).
const renewAttempts = 4

// renew sends POST /Enrollment/Renew for t.cert, journaling the attempt
// first. It retries only what Command surely did not process; when the
// outcome is unknown it searches Command for the new certificate instead of
// renewing again.
func (s *run) renew(ctx context.Context, t *target) (journal.Renewal, bool) {
	ren := journal.Renewal{Key: t.key, OldCertificateID: t.cert.Id, Subject: t.cert.IssuedDN, StartedAt: s.cfg.Now().UTC()}
	if err := s.journal.BeginRenewal(ren); err != nil {
		s.failRows(t.rows, report.StageRenew, "not renewed: the attempt could not be recorded in the journal first", err)
		return ren, false
	}
	req := keyfactor.RenewalRequest{CertificateId: t.cert.Id, Template: t.job.Template, CertificateAuthority: t.job.CertificateAuthority}
	var bo backoff
	for attempt := 1; ; attempt++ {
		sent := s.cfg.Now().UTC()
		req.Timestamp = sent
		resp, err := s.client.Renew(ctx, req)
		if err == nil {
			if resp.KeyfactorId == 0 && resp.KeyfactorRequestId == 0 {
				s.failRows(t.rows, report.StageRenew, "Command answered Renew with neither KeyfactorId nor KeyfactorRequestId; check the certificate in Command before rerunning", nil)
				return ren, false
			}
			return s.renewed(t, ren, resp.KeyfactorId, resp.KeyfactorRequestId, sent)
		}
		switch keyfactor.Classify(err) {
		case keyfactor.Retryable:
			if attempt < renewAttempts {
				wait := bo.next(keyfactor.RetryAfterOf(err))
				s.log.Warn("renew not processed by Command; retrying", "certificate", t.cert.Id, "attempt", attempt, "wait", wait, "err", err)
				if keyfactor.Sleep(ctx, wait) == nil {
					continue
				}
			}
			s.abandon(t)
			s.failRows(t.rows, report.StageRenew, fmt.Sprintf("not renewed: Command did not process Renew after %d attempt(s)", attempt), err)
			return ren, false
		case keyfactor.Unknown:
			s.log.Warn("renew outcome unknown; searching Command for the new certificate", "certificate", t.cert.Id, "err", err)
			found, ferr := s.findRenewal(ctx, t.cert, sent)
			if ferr == nil && found != nil {
				s.log.Info("found the renewal whose answer was lost", "certificate", t.cert.Id, "new_certificate", found.Id)
				return s.renewed(t, ren, found.Id, requestIDOf(found), sent)
			}
			detail := fmt.Sprintf("renew outcome unknown and no new certificate for %q was found in Command; not renewing again: the next run looks for it first", t.cert.IssuedDN)
			if ferr != nil {
				detail = fmt.Sprintf("renew outcome unknown and Command could not be searched (%v); not renewing again: the next run looks for it first", ferr)
			}
			s.failRows(t.rows, report.StageRenew, detail, err)
			return ren, false
		default:
			s.abandon(t)
			s.failRows(t.rows, report.StageRenew, "Command refused Renew: "+apiMessage(err), err)
			return ren, false
		}
	}
}

// abandon drops the journal's in-flight marker of a renewal that Command
// surely did not process.
func (s *run) abandon(t *target) {
	if err := s.journal.AbandonRenewal(t.key); err != nil {
		s.log.Warn("could not clear the journal's in-flight renewal; the next run will search Command for it", "certificate", t.cert.Id, "err", err)
	}
}

func (s *run) renewed(t *target, ren journal.Renewal, newID, requestID int, at time.Time) (journal.Renewal, bool) {
	ren.NewCertificateID, ren.RequestID, ren.RenewedAt = newID, requestID, at
	if err := s.journal.CompleteRenewal(t.key, newID, requestID, at); err != nil {
		// The renewal exists; go on and deploy it, the report carries its id.
		s.log.Error("could not record the renewal in the journal", "certificate", t.cert.Id, "new_certificate", newID, "err", err)
	}
	s.log.Info("renewed", "certificate", t.cert.Id, "new_certificate", newID, "request", requestID)
	s.setRows(t.rows, func(row *report.Row) {
		row.NewCertificateID, row.RequestID, row.RenewedAt = newID, requestID, at
		row.Stage, row.Detail = report.StageRenew, "renewed"
	})
	return ren, true
}

// deploy sends POST /Enrollment/PFX/Deploy for all the target's stores at
// once, retrying what may be retried until renewal + window − margin.
func (s *run) deploy(ctx context.Context, t *target, ren journal.Renewal, req keyfactor.DeployRequest) *deployed {
	if ren.NewCertificateID != 0 {
		req.CertificateId = ren.NewCertificateID
	} else {
		req.RequestId = ren.RequestID
	}
	deadline := ren.RenewedAt.Add(s.cfg.Window - s.cfg.WindowMargin)
	// No call may outlive the window itself.
	callCtx, cancel := context.WithDeadline(ctx, time.Now().Add(ren.RenewedAt.Add(s.cfg.Window).Sub(s.cfg.Now())))
	defer cancel()
	var bo backoff
	for attempt := 1; ; attempt++ {
		now := s.cfg.Now()
		if !now.Before(deadline) {
			s.deployFailed(t, ren, report.StageDeploy, fmt.Sprintf("window expired %s before deploy could be sent (renewed at %s)", now.Sub(deadline).Round(time.Second), ren.RenewedAt.UTC().Format(time.RFC3339)), nil)
			return nil
		}
		resp, err := s.client.Deploy(callCtx, req)
		if err == nil {
			return s.applyDeploy(t, ren, resp)
		}
		class := keyfactor.Classify(err)
		if class == keyfactor.Permanent {
			detail := "Command refused the deploy: " + apiMessage(err)
			if s.cfg.Now().After(ren.RenewedAt.Add(s.cfg.Window)) {
				detail = "window expired: " + detail
			}
			s.deployFailed(t, ren, report.StageDeploy, detail, err)
			return nil
		}
		// Retryable, or unknown: a second deploy of the same certificate to
		// the same stores is harmless, a certificate left undeployed is not.
		wait := bo.next(keyfactor.RetryAfterOf(err))
		now = s.cfg.Now()
		if !now.Add(wait).Before(deadline) {
			s.deployFailed(t, ren, report.StageDeploy,
				fmt.Sprintf("window expired: deploy kept failing for %s after renewal (%d attempt(s)); last error: %s", now.Sub(ren.RenewedAt).Round(time.Second), attempt, apiMessage(err)), err)
			return nil
		}
		s.log.Warn("deploy failed; retrying inside the window", "certificate", ren.NewCertificateID, "attempt", attempt, "wait", wait, "err", err)
		if err := keyfactor.Sleep(ctx, wait); err != nil {
			s.deployFailed(t, ren, report.StageDeploy, "interrupted while waiting to retry the deploy", err)
			return nil
		}
	}
}

func (s *run) deployFailed(t *target, ren journal.Renewal, stage report.Stage, detail string, err error) {
	s.failRows(t.rows, stage, detail, err)
	states := map[string]journal.StoreState{}
	for _, pr := range t.rows {
		states[pr.StoreID] = journal.StoreState{Status: "failed", At: s.cfg.Now().UTC(), Detail: detail}
	}
	s.recordStores(t, states)
}

func (s *run) recordStores(t *target, states map[string]journal.StoreState) {
	if err := s.journal.RecordStores(t.key, states); err != nil {
		s.log.Error("could not record a deploy in the journal", "certificate", t.cert.Id, "err", err)
	}
}

// applyDeploy maps SuccessfulStores and FailedStores onto the rows.
func (s *run) applyDeploy(t *target, ren journal.Renewal, resp *keyfactor.DeployResponse) *deployed {
	ok := lowerSet(resp.SuccessfulStores)
	bad := lowerSet(resp.FailedStores)
	now := s.cfg.Now().UTC()
	allFailed := len(resp.SuccessfulStores) == 0
	d := &deployed{certificateID: ren.NewCertificateID}
	states := map[string]journal.StoreState{}
	for _, pr := range t.rows {
		switch {
		case ok[pr.StoreID]:
			detail := "job created"
			if ren.NewCertificateID == 0 {
				detail = fmt.Sprintf("job created; deployed by request id %d, which awaits approval in Command", ren.RequestID)
			}
			s.setRows(rowsOf(pr), func(row *report.Row) {
				row.Status, row.Stage, row.Detail, row.DeployedAt = report.Succeeded, report.StageDeploy, detail, now
			})
			states[pr.StoreID] = journal.StoreState{Status: "job-created", At: now}
			d.rows = append(d.rows, pr)
		default:
			detail := "Command created no management job for this store (FailedStores): check the store's approval, the schedule permission on its container and the entry password its type needs"
			if !bad[pr.StoreID] {
				detail = "Command's answer named this store in neither SuccessfulStores nor FailedStores"
			} else if allFailed {
				detail = "Command created no job for any store of this certificate (all in FailedStores); if the staging window had passed, renew again with --force"
			}
			s.failRows(rowsOf(pr), report.StageDeploy, detail, nil)
			states[pr.StoreID] = journal.StoreState{Status: "failed", At: now, Detail: detail}
		}
	}
	s.recordStores(t, states)
	s.log.Info("deployed", "new_certificate", ren.NewCertificateID, "stores_ok", len(d.rows), "stores_failed", len(t.rows)-len(d.rows))
	if len(d.rows) == 0 || d.certificateID == 0 {
		return nil
	}
	return d
}

func lowerSet(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[strings.ToLower(strings.Trim(id, "{}"))] = true
	}
	return m
}

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
