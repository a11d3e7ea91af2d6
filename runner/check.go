package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/report"
)

func rowsOf(rows ...*plan.Row) []*plan.Row { return rows }

// check reads each target's certificate (bounded, concurrent), merges
// targets that turn out to name the same certificate, consults the journal
// for earlier renewals, and returns the targets to hand to the pipeline.
// Rows of the others end here, skipped or failed.
func (s *run) check(ctx context.Context, targets []*target) []*target {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.Concurrency)
	for _, t := range targets {
		g.Go(func() error {
			cert, err := s.readCertificate(gctx, t.job)
			if err != nil {
				s.failRows(t.rows, report.StageCheck, err.Error(), nil)
				return nil
			}
			t.cert = cert
			t.key = "id:" + strconv.Itoa(cert.Id)
			s.setRows(t.rows, func(row *report.Row) {
				row.CertificateID, row.Thumbprint = cert.Id, cert.Thumbprint
			})
			return nil
		})
	}
	_ = g.Wait()

	// Deciding may read the current certificate of a lineage, so it runs
	// concurrently too: after the first night, every target has one.
	merged := s.mergeSameCertificate(targets)
	due := make([]bool, len(merged))
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.Concurrency)
	for i, t := range merged {
		g.Go(func() error {
			if gctx.Err() == nil {
				due[i] = s.decide(gctx, t)
			}
			return nil
		})
	}
	_ = g.Wait()
	var out []*target
	for i, t := range merged {
		if due[i] {
			out = append(out, t)
		}
	}
	return out
}

func (s *run) readCertificate(ctx context.Context, job *plan.Job) (*keyfactor.Certificate, error) {
	if job.CertificateID != 0 {
		return s.getCertificate(ctx, job.CertificateID)
	}
	certs, err := s.client.ListCertificates(ctx, keyfactor.CertificateQuery{
		QueryString:    fmt.Sprintf("Thumbprint -eq %q", job.Thumbprint),
		ReturnLimit:    2,
		IncludeExpired: true, // an expired certificate is the most due of all
	})
	if err != nil {
		return nil, fmt.Errorf("look up thumbprint %s: %w", job.Thumbprint, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no certificate with thumbprint %s in Command", job.Thumbprint)
	}
	return &certs[0], nil
}

func (s *run) getCertificate(ctx context.Context, id int) (*keyfactor.Certificate, error) {
	cert, err := s.client.GetCertificate(ctx, id, false)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("certificate %d not found in Command", id)
		}
		return nil, fmt.Errorf("read certificate %d: %w", id, err)
	}
	return cert, nil
}

func isNotFound(err error) bool {
	var apiErr *keyfactor.APIError
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound
}

// mergeSameCertificate joins targets that resolve to one certificate (one
// row by id, another by thumbprint), so it is renewed once. A store named
// twice for the same certificate fails the later row.
func (s *run) mergeSameCertificate(targets []*target) []*target {
	byKey := map[string]*target{}
	var out []*target
	for _, t := range targets {
		if t.cert == nil {
			continue
		}
		first, ok := byKey[t.key]
		if !ok {
			byKey[t.key] = t
			out = append(out, t)
			continue
		}
		seen := map[string]int{}
		for _, pr := range first.rows {
			seen[pr.StoreID] = pr.Line
		}
		for _, pr := range t.rows {
			if line, dup := seen[pr.StoreID]; dup {
				s.failRows(rowsOf(pr), report.StageCheck,
					fmt.Sprintf("duplicate target: line %d already deploys certificate %d to store %s", line, t.cert.Id, pr.StoreID), nil)
				continue
			}
			first.rows = append(first.rows, pr)
		}
	}
	return out
}

// renewBefore is the job's own threshold, or the run's.
func (s *run) renewBefore(t *target) plan.RenewBefore {
	if t.job.RenewBefore != (plan.RenewBefore{}) {
		return t.job.RenewBefore
	}
	return s.cfg.RenewBefore
}

func (s *run) dueAt(t *target) time.Time {
	return s.renewBefore(t).DueAt(t.cert.NotBefore, t.cert.NotAfter)
}

// decide settles what to do with t. It reports true for a target to hand
// to the pipeline: a renewal of t.cert, or (t.resume set) the deploy of an
// earlier renewal whose staging window is still open.
//
// Plans keep naming the certificate they were written for, so the journal's
// lineage says which certificate is current: after a renewal the new one is
// checked for due-ness and renewed in turn, and the old one never again.
func (s *run) decide(ctx context.Context, t *target) bool {
	now := s.cfg.Now()
	if s.journal != nil {
		prev, ok, err := s.latestRenewal(ctx, t)
		if err != nil {
			s.failRows(t.rows, report.StageCheck, err.Error(), err)
			return false
		}
		if ok {
			return s.continueLineage(ctx, t, prev, now)
		}
	}
	return s.dueNow(t, now, "")
}

// dueNow reports whether t.cert is due (or --force), skipping the rows
// when it is not.
func (s *run) dueNow(t *target, now time.Time, prefix string) bool {
	if s.cfg.Force {
		return true
	}
	dueAt := s.dueAt(t)
	if now.Before(dueAt) {
		s.skipRows(t.rows, report.StageCheck, prefix+"not due until "+dueAt.UTC().Format("2006-01-02"))
		return false
	}
	return true
}

// latestRenewal returns the newest renewal the journal knows for t whose
// outcome is known. A renewal whose outcome an earlier run never learned is
// settled first: found in Command (then recorded), or abandoned when Command
// issued nothing. It never renews to find out.
func (s *run) latestRenewal(ctx context.Context, t *target) (journal.Renewal, bool, error) {
	prev, ok, err := s.journal.Renewal(t.key)
	if err != nil || !ok {
		return prev, ok, wrapJournal(err)
	}
	if !prev.RenewedAt.IsZero() {
		return prev, true, nil
	}
	old := t.cert
	if prev.OldCertificateID != 0 && prev.OldCertificateID != t.cert.Id {
		if old, err = s.getCertificate(ctx, prev.OldCertificateID); err != nil {
			return prev, false, fmt.Errorf("an earlier run's renewal of certificate %d has an unknown outcome, and %w; not renewing again", prev.OldCertificateID, err)
		}
	}
	found, err := s.findRenewal(ctx, old, prev.StartedAt)
	if err != nil {
		return prev, false, fmt.Errorf("an earlier run's renewal of certificate %d has an unknown outcome and Command could not be searched for it; not renewing again: %w", old.Id, err)
	}
	if found == nil {
		s.log.Info("an earlier renewal attempt left no certificate in Command; it never took effect", "certificate", old.Id)
		if s.cfg.DryRun {
			return prev, false, nil // a dry run leaves the journal as it found it
		}
		if err := s.journal.AbandonRenewal(t.key); err != nil {
			return prev, false, wrapJournal(err)
		}
		prev, ok, err = s.journal.Renewal(t.key)
		return prev, ok && !prev.RenewedAt.IsZero(), wrapJournal(err)
	}
	s.log.Info("found the renewal of an earlier run whose answer was lost", "certificate", old.Id, "new_certificate", found.Id)
	if !s.cfg.DryRun {
		if err := s.journal.CompleteRenewal(t.key, found.Id, requestIDOf(found), prev.StartedAt); err != nil {
			return prev, false, wrapJournal(err)
		}
	}
	prev.NewCertificateID, prev.RequestID, prev.RenewedAt = found.Id, requestIDOf(found), prev.StartedAt
	return prev, true, nil
}

func wrapJournal(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("journal: %w", err)
}

// continueLineage goes on from a renewal an earlier run made.
func (s *run) continueLineage(ctx context.Context, t *target, prev journal.Renewal, now time.Time) bool {
	var pending []*plan.Row
	for _, pr := range t.rows {
		if st, done := prev.Stores[pr.StoreID]; done && st.Status != "failed" {
			continue
		}
		pending = append(pending, pr)
	}
	deadline := prev.RenewedAt.Add(s.cfg.Window - s.cfg.WindowMargin)
	if len(pending) > 0 && now.Before(deadline) && !s.cfg.Force {
		// The earlier run stopped between renew and deploy: deploy now.
		t.rows = pending
		t.resume = &prev
		return true
	}
	if len(pending) > 0 && !s.cfg.Force {
		s.setRows(pending, func(row *report.Row) {
			row.Status, row.Stage = report.Failed, report.StageDeploy
			row.Detail = fmt.Sprintf("window expired: certificate %d was renewed as %d at %s but never deployed to this store, and its staging window has passed; deploy %d by hand, or rerun with --force to renew again",
				prev.OldCertificateID, prev.NewCertificateID, prev.RenewedAt.UTC().Format(time.RFC3339), prev.NewCertificateID)
			row.NewCertificateID, row.RequestID, row.RenewedAt = prev.NewCertificateID, prev.RequestID, prev.RenewedAt
		})
		t.rows = subtract(t.rows, pending)
		if len(t.rows) == 0 {
			return false
		}
	}
	if prev.NewCertificateID == 0 {
		s.skipRows(t.rows, report.StageCheck, fmt.Sprintf("renewal request %d (from certificate %d) still awaits approval in Command", prev.RequestID, prev.OldCertificateID))
		return false
	}
	latest, err := s.getCertificate(ctx, prev.NewCertificateID)
	if err != nil {
		s.failRows(t.rows, report.StageCheck, fmt.Sprintf("read certificate %d, the renewal of %d: %v", prev.NewCertificateID, prev.OldCertificateID, err), err)
		return false
	}
	t.cert = latest
	return s.dueNow(t, now, fmt.Sprintf("renewed as %d on %s; ", latest.Id, prev.RenewedAt.UTC().Format("2006-01-02")))
}

func subtract(all, remove []*plan.Row) []*plan.Row {
	gone := map[*plan.Row]bool{}
	for _, r := range remove {
		gone[r] = true
	}
	var out []*plan.Row
	for _, r := range all {
		if !gone[r] {
			out = append(out, r)
		}
	}
	return out
}

func requestIDOf(c *keyfactor.Certificate) int {
	if c.CertRequestId != nil {
		return *c.CertRequestId
	}
	return 0
}

// clockSkew widens the search for a renewal whose response was lost, so a
// Command clock somewhat behind ours does not hide it.
const clockSkew = 5 * time.Minute

// findRenewal looks in Command for a certificate issued from old since the
// attempt: same subject, imported after since (less clockSkew), not old
// itself. It returns nil when there is none.
func (s *run) findRenewal(ctx context.Context, old *keyfactor.Certificate, since time.Time) (*keyfactor.Certificate, error) {
	certs, err := s.client.ListCertificates(ctx, keyfactor.CertificateQuery{
		QueryString: fmt.Sprintf("IssuedDN -eq %q AND ImportDate -ge %q", old.IssuedDN, since.Add(-clockSkew).UTC().Format(time.RFC3339)),
		ReturnLimit: 20,
	})
	if err != nil {
		return nil, fmt.Errorf("search Command for the renewal of certificate %d: %w", old.Id, err)
	}
	var best *keyfactor.Certificate
	for i := range certs {
		c := &certs[i]
		if c.Id == old.Id || c.Id <= 0 || !c.NotAfter.After(old.NotAfter) {
			continue
		}
		if best == nil || c.ImportDate.Before(best.ImportDate) {
			best = c
		}
	}
	return best, nil
}
