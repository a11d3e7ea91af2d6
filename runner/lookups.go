package runner

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/report"
)

// searchLimit bounds the certificates one search asks for: a renewal's
// subject is shared by few certificates issued since the attempt.
const searchLimit = 50

// subjectClause is the query clause that selects certificates with the
// subject dn (common name cn): IssuedDN -eq, or, when the DN cannot be
// written in Command's query language (see keyfactor.Quote), IssuedCN -eq,
// which callers narrow down to the DN themselves.
func subjectClause(dn, cn string) (string, error) {
	if q, err := keyfactor.Quote(dn); err == nil {
		return keyfactor.Clause("IssuedDN", "-eq", q), nil
	}
	q, err := keyfactor.Quote(cn)
	if err != nil || cn == "" {
		return "", fmt.Errorf("its subject %q cannot be written in Command's query language", dn)
	}
	return keyfactor.Clause("IssuedCN", "-eq", q), nil
}

// searchRenewal looks in Command for the certificate an in-flight renewal
// may have issued: same subject, imported since the attempt. Only
// candidates that can be this lineage's own renewal are kept (see
// renewalCandidates).
func (s *run) searchRenewal(ctx context.Context, root int, r journal.Renewal) *searchResult {
	subject, err := subjectClause(r.Subject, cnOf(r.Subject))
	if err != nil {
		return &searchResult{err: err}
	}
	page, err := s.client.ListCertificates(ctx, keyfactor.CertificateQuery{
		QueryString: keyfactor.And(subject, keyfactor.Clause("ImportDate", "-ge", keyfactor.QueryTime(r.StartedAt.Add(-clockSkew)))),
		ReturnLimit: searchLimit,
	})
	if err != nil {
		return &searchResult{err: err}
	}
	return &searchResult{candidates: renewalCandidates(r, root, s.cfg.Identity, s.cfg.Now(), s.claimedBy, page.Certificates)}
}

// cnOf returns the first CN of a distinguished name, "" if it has none.
func cnOf(dn string) string {
	for _, rdn := range strings.Split(dn, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(rdn), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "CN") {
			return strings.TrimSpace(v)
		}
	}
	return ""
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
		QueryString: keyfactor.Clause("CertRequestId", "-eq", strconv.Itoa(requestID)), ReturnLimit: 2, IncludeLocations: true,
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
	case keyfactor.CauseOf(err) == keyfactor.CauseForbidden:
		// Nothing was issued, and Command will not say whether the request
		// is still pending or was denied: take it for pending, and say why.
		return &requestResult{status: keyfactor.RequestPending, hidden: apiMessage(err)}
	case err != nil:
		return &requestResult{err: err}
	}
	return &requestResult{status: req.Status(), message: req.DenialComment}
}

// prefetchHolders searches Command, for every target of a page whose current
// certificate would be renewed, for a newer certificate with the same
// subject already in one of its stores (see beforeRenewing). Subjects go many to a request
// (`IssuedCN -eq a OR IssuedCN -eq b …`), so a first night costs a few
// requests per hundred certificates; a target left without an answer is
// searched on its own when decide asks.
func (s *run) prefetchHolders(ctx context.Context, ts []*target) {
	if s.batchRefused.Load() {
		return
	}
	type batch struct {
		targets []*target
		clauses []string
	}
	var batches []batch
	var cur batch
	seen := map[string]bool{}
	for _, t := range ts {
		c := t.f.current
		if c == nil || t.f.planMismatch != "" {
			continue
		}
		if !wouldRenew(c, s.cfg.Force, s.cfg.Now(), s.renewBefore(t.job)) {
			continue
		}
		q, err := keyfactor.Quote(c.IssuedCN)
		if err != nil || c.IssuedCN == "" {
			continue // searched on its own, by the DN
		}
		clause := keyfactor.Clause("IssuedCN", "-eq", q)
		if !seen[clause] {
			// The client owns the URL budget; the date's length does not
			// depend on its value, so any date sizes the batch.
			if next := holderQuery(append(slices.Clone(cur.clauses), clause), c.ImportDate); len(cur.clauses) > 0 && !s.client.CertificateQueryFits(next) {
				batches = append(batches, cur)
				cur, seen = batch{}, map[string]bool{}
			}
			seen[clause] = true
			cur.clauses = append(cur.clauses, clause)
		}
		cur.targets = append(cur.targets, t)
	}
	if len(cur.targets) > 0 {
		batches = append(batches, cur)
	}
	g := new(errgroup.Group)
	g.SetLimit(s.cfg.Concurrency)
	for _, b := range batches {
		g.Go(func() error {
			s.searchHolders(ctx, b.targets, b.clauses)
			return nil
		})
	}
	_ = g.Wait()
}

// searchHolders runs one batched search and gives each target its answer.
func (s *run) searchHolders(ctx context.Context, batch []*target, clauses []string) {
	since := batch[0].f.current.ImportDate
	for _, t := range batch {
		if t.f.current.ImportDate.Before(since) {
			since = t.f.current.ImportDate
		}
	}
	byDN := map[string][]keyfactor.Certificate{}
	_, err := s.client.AllCertificates(ctx, holderQuery(clauses, since), func(c *keyfactor.Certificate) error {
		k := strings.ToLower(c.IssuedDN)
		byDN[k] = append(byDN[k], *c)
		return nil
	})
	if err != nil {
		if keyfactor.IsQueryRefused(err) {
			s.log.Debug("Command refused the batched search for newer certificates in the stores; searching one certificate at a time", "err", err)
			return
		}
		for _, t := range batch {
			t.f.holders = &holderResult{err: err}
		}
		return
	}
	now := s.cfg.Now()
	for _, t := range batch {
		c := t.f.current
		t.f.holders = &holderResult{holder: storeHolder(c, t.rootOr(c.Id), storesOf(t.rows), now, s.claimedBy, byDN[strings.ToLower(c.IssuedDN)])}
	}
}

// holderQuery is the batched search for certificates with one of the
// subjects that were imported since the oldest of the batch's certificates.
func holderQuery(subjects []string, since time.Time) keyfactor.CertificateQuery {
	return keyfactor.CertificateQuery{
		QueryString:      keyfactor.And(keyfactor.Or(subjects...), keyfactor.Clause("ImportDate", "-ge", keyfactor.QueryTime(since))),
		ReturnLimit:      100,
		IncludeLocations: true,
	}
}

// findHolders looks, for one target, for a newer certificate with the
// current certificate's subject that Command shows in one of the target's
// stores.
func (s *run) findHolders(ctx context.Context, t *target) *holderResult {
	old := t.f.current
	subject, err := subjectClause(old.IssuedDN, old.IssuedCN)
	if err != nil {
		return &holderResult{err: err}
	}
	page, err := s.client.ListCertificates(ctx, keyfactor.CertificateQuery{
		QueryString:      keyfactor.And(subject, keyfactor.Clause("ImportDate", "-ge", keyfactor.QueryTime(old.ImportDate))),
		ReturnLimit:      searchLimit,
		IncludeLocations: true,
	})
	if err != nil {
		return &holderResult{err: err}
	}
	return &holderResult{holder: storeHolder(old, t.rootOr(old.Id), t.f.stores, s.cfg.Now(), s.claimedBy, page.Certificates)}
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
	extra, stale := drift(c, t.job.Rows, s.schedulable)
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

// schedulable reports whether this user could deploy to the store: it is
// visible and its container may be scheduled. A store that is not is left
// out of the plan on purpose (runner discover does so), so it is no drift.
func (s *run) schedulable(storeID string) bool {
	st, ok := s.stores[storeID]
	return ok && s.perms.Has(keyfactor.PermStoresSchedule, st.ContainerId)
}

// drift returns the warnings for stores that hold c but have no row (among
// those the user could deploy to), and for rows whose store does not hold c.
func drift(c *keyfactor.Certificate, rows []*plan.Row, deployable func(string) bool) (extra []string, stale map[*plan.Row]string) {
	inPlan := map[string]bool{}
	for _, r := range rows {
		inPlan[r.StoreID] = true
	}
	held := map[string]bool{}
	for _, l := range c.Locations {
		held[l.CertStoreId] = true
		if !inPlan[l.CertStoreId] && deployable(l.CertStoreId) {
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
