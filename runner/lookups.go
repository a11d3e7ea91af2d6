package runner

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/report"
)

// searchLimit bounds the certificates one search asks for: a renewal's
// subject is shared by few certificates issued since the attempt.
const searchLimit = 50

// searchRenewal looks in Command for the certificate an in-flight renewal
// may have issued: same subject, imported since the attempt. Only
// candidates that can be this lineage's own renewal are kept (see
// renewalCandidates).
func (s *run) searchRenewal(ctx context.Context, root int, r journal.Renewal) *searchResult {
	subject, err := keyfactor.Quote(r.Subject)
	if err != nil {
		return &searchResult{err: fmt.Errorf("its subject %q cannot be written in Command's query language: %w", r.Subject, err)}
	}
	page, err := s.client.ListCertificates(ctx, keyfactor.CertificateQuery{
		QueryString: fmt.Sprintf("IssuedDN -eq %s AND ImportDate -ge %s", subject, keyfactor.QueryTime(r.StartedAt.Add(-clockSkew))),
		ReturnLimit: searchLimit,
	})
	if err != nil {
		return &searchResult{err: err}
	}
	return &searchResult{candidates: renewalCandidates(r, root, s.cfg.Identity, s.cfg.Now(), s.claimedBy, page.Certificates)}
}

// claimedBy is the journal's claim check; nothing is claimed without one.
func (s *run) claimedBy(id int) (int, bool) {
	if s.journal == nil {
		return 0, false
	}
	return s.journal.ClaimedBy(id)
}

// lookupRequest asks Command about a renewal request that awaited
// approval: the certificate issued for it (GET /Certificates with
// `CertRequestId -eq N`, which every version answers), else the request's
// state (GET /Workflow/Certificates/{id}).
func (s *run) lookupRequest(ctx context.Context, requestID int) *requestResult {
	page, err := s.client.ListCertificates(ctx, keyfactor.CertificateQuery{
		QueryString: fmt.Sprintf("CertRequestId -eq %d", requestID), ReturnLimit: 2, IncludeLocations: true,
	})
	if err != nil {
		return &requestResult{err: err}
	}
	if len(page.Certificates) > 0 {
		c := page.Certificates[0]
		return &requestResult{status: keyfactor.RequestIssued, issued: &c}
	}
	req, err := s.client.CertificateRequest(ctx, requestID)
	switch {
	case isNotFound(err):
		return &requestResult{notFound: true}
	case err != nil:
		return &requestResult{err: err}
	}
	return &requestResult{status: req.Status(), message: req.DenialComment}
}

// findHolders looks for a newer certificate with the plan certificate's
// subject that Command shows in one of the target's stores.
func (s *run) findHolders(ctx context.Context, t *target) *holderResult {
	old := t.f.planCert
	subject, err := keyfactor.Quote(old.IssuedDN)
	if err != nil {
		return &holderResult{err: fmt.Errorf("its subject %q cannot be written in Command's query language: %w", old.IssuedDN, err)}
	}
	page, err := s.client.ListCertificates(ctx, keyfactor.CertificateQuery{
		QueryString:      fmt.Sprintf("IssuedDN -eq %s AND ImportDate -ge %s", subject, keyfactor.QueryTime(old.ImportDate)),
		ReturnLimit:      searchLimit,
		IncludeLocations: true,
	})
	if err != nil {
		return &holderResult{err: err}
	}
	return &holderResult{holder: storeHolder(old, t.f.stores, s.cfg.Now(), s.claimedBy, page.Certificates)}
}

// DriftMode says what a difference between the plan and Command's
// inventory does.
type DriftMode int

const (
	DriftWarn DriftMode = iota // warnings in the rows and the summary
	DriftFail                  // the rows fail
)

// checkDrift compares the stores Command shows holding c with the plan's
// rows for it: a store that holds it but is not in the plan, and a row
// whose store does not hold it.
func (s *run) checkDrift(t *target, c *keyfactor.Certificate) {
	extra, stale := drift(c, t.job.Rows)
	for _, msg := range extra {
		if s.cfg.Drift == DriftFail {
			s.failRows(t.rows, report.StageCheck, msg+" (--drift fail)", nil)
		} else {
			s.warn(t.rows, msg)
		}
	}
	for pr, msg := range stale {
		if s.cfg.Drift == DriftFail {
			s.failRows(rowsOf(pr), report.StageCheck, msg+" (--drift fail)", nil)
		} else {
			s.warn(rowsOf(pr), msg)
		}
	}
	if s.cfg.Drift == DriftFail {
		var keep []*plan.Row
		for _, pr := range t.rows {
			if !s.settled(pr) {
				keep = append(keep, pr)
			}
		}
		t.rows = keep
	}
}

// drift returns the warnings for stores that hold c but have no row, and
// for rows whose store does not hold c.
func drift(c *keyfactor.Certificate, rows []*plan.Row) (extra []string, stale map[*plan.Row]string) {
	inPlan := map[string]bool{}
	for _, r := range rows {
		inPlan[r.StoreID] = true
	}
	held := map[string]bool{}
	for _, l := range c.Locations {
		held[l.CertStoreId] = true
		if !inPlan[l.CertStoreId] {
			alias := ""
			if l.Alias != "" {
				alias = fmt.Sprintf(" (alias %s)", l.Alias)
			}
			extra = append(extra, fmt.Sprintf("drift: certificate %d is also in store %s%s, not in the plan", c.Id, l.CertStoreId, alias))
		}
	}
	for _, r := range rows {
		if !held[r.StoreID] {
			if stale == nil {
				stale = map[*plan.Row]string{}
			}
			stale[r] = fmt.Sprintf("stale: store %s does not hold certificate %d", r.StoreID, c.Id)
		}
	}
	return extra, stale
}

// subjectLocks serialise the renewals of certificates with one subject
// within a run, so the search for a renewal whose answer was lost never
// sees another same-subject renewal of this run that is not claimed yet.
// The zero value is ready to use.
type subjectLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// lock takes the subject's lock and returns its unlock.
func (m *subjectLocks) lock(subject string) func() {
	key := strings.ToLower(subject)
	m.mu.Lock()
	if m.locks == nil {
		m.locks = map[string]*sync.Mutex{}
	}
	l := m.locks[key]
	if l == nil {
		l = new(sync.Mutex)
		m.locks[key] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}
