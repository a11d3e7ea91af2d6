package runner

import (
	"context"
	"fmt"
	"strings"

	"runner/keyfactor"
	"runner/plan"
	"runner/report"
)

// verify waits until inventory shows each new certificate in the stores
// whose job was created (GET /Certificates/{id}?includeLocations=true), so
// the report says what was installed, not only what was scheduled.
func (s *run) verify(ctx context.Context, ds []*deployed) {
	deadline := s.cfg.Now().Add(s.cfg.VerifyTimeout)
	pending := ds
	for len(pending) > 0 {
		var still []*deployed
		for _, d := range pending {
			if ctx.Err() != nil {
				break
			}
			cert, err := s.client.GetCertificate(ctx, d.certificateID, true)
			if err != nil {
				s.log.Warn("verify: could not read certificate; will try again", "certificate", d.certificateID, "err", err)
				still = append(still, d)
				continue
			}
			if left := s.markSeen(d, cert); len(left) > 0 {
				d.rows = left
				still = append(still, d)
			}
		}
		pending = still
		if len(pending) == 0 {
			return
		}
		if ctx.Err() != nil || !s.cfg.Now().Before(deadline) {
			break
		}
		if keyfactor.Sleep(ctx, s.cfg.VerifyInterval) != nil {
			break
		}
	}
	reason := fmt.Sprintf("job created, but the certificate was not seen in the store within %s: the management job may have failed on the orchestrator or inventory has not run yet; check the job history in Command", s.cfg.VerifyTimeout)
	if ctx.Err() != nil {
		reason = "job created; not verified: run interrupted"
	}
	for _, d := range pending {
		s.failRows(d.rows, report.StageVerify, reason, nil)
	}
}

// markSeen marks the rows whose store lists the certificate and returns the
// others.
func (s *run) markSeen(d *deployed, cert *keyfactor.Certificate) []*plan.Row {
	in := map[string]bool{}
	for _, loc := range cert.Locations {
		in[strings.ToLower(loc.CertStoreId)] = true
	}
	now := s.cfg.Now().UTC()
	var left []*plan.Row
	for _, pr := range d.rows {
		if !in[pr.StoreID] {
			left = append(left, pr)
			continue
		}
		s.setRows(rowsOf(pr), func(row *report.Row) {
			row.Status, row.Stage, row.Detail, row.VerifiedAt = report.Succeeded, report.StageVerify, "seen in store", now
		})
	}
	return left
}
