package runner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/report"
)

// decidePage reads what Command and the journal know about a page of plan
// jobs, decides each certificate and hands those to renew or deploy to
// dispatch as soon as each is decided.
func (s *run) decidePage(ctx context.Context, jobs []*plan.Job, dispatch func(*target)) {
	var ts []*target
	for _, job := range jobs {
		t := &target{job: job}
		for _, pr := range job.Rows {
			if !s.settled(pr) {
				t.rows = append(t.rows, pr)
			}
		}
		if len(t.rows) > 0 {
			ts = append(ts, t)
		}
	}
	ts = s.resolveThumbprints(ctx, ts)

	// The journal says which certificate is current; read that one, and the
	// plan's own only when nothing else tells about it.
	need := map[int]bool{}
	for _, t := range ts {
		id := t.planID()
		if s.journal != nil {
			l, ok, err := s.journal.Lineage(id)
			if err != nil {
				s.failRows(t.rows, report.StageCheck, fmt.Sprintf("read the journal for certificate %d: %v", id, err), err)
				continue
			}
			if ok {
				t.f.lineage, t.root = &l, l.Root
			}
		}
		need[currentID(t.f.lineage, &keyfactor.Certificate{Id: id})] = true
		if t.f.lineage == nil || t.job.Thumbprint != "" {
			need[id] = true
		}
	}
	certs, readErrs := s.readCertificates(ctx, need)

	var live []*target
	for _, t := range ts {
		if s.settledAll(t.rows) {
			continue
		}
		id := t.planID()
		if need[id] {
			c, ok := certs[id]
			if !ok {
				s.failRows(t.rows, report.StageCheck, readErrs.explain(id), nil)
				continue
			}
			t.f.planCert = c
			if t.job.CertificateID != 0 && t.job.Thumbprint != "" && !strings.EqualFold(c.Thumbprint, t.job.Thumbprint) {
				t.f.planMismatch = fmt.Sprintf("certificate_id %d is the certificate with thumbprint %s in Command, but the plan gives thumbprint %s: fix the plan so both name the same certificate",
					t.job.CertificateID, c.Thumbprint, t.job.Thumbprint)
			}
		}
		if c, ok := certs[currentID(t.f.lineage, &keyfactor.Certificate{Id: id})]; ok {
			t.f.current = c
		}
		live = append(live, t)
	}
	live = s.mergeSameCertificate(live)
	s.prefetchHolders(ctx, live)

	g := new(errgroup.Group)
	g.SetLimit(s.cfg.Concurrency)
	for _, t := range live {
		g.Go(func() error {
			if ctx.Err() != nil {
				return nil // ends "not started: run interrupted"
			}
			if s.decideTarget(ctx, t) {
				dispatch(t)
			}
			return nil
		})
	}
	_ = g.Wait()
}

// rootOr is the target's lineage root, or id when it has none yet.
func (t *target) rootOr(id int) int {
	if t.root != 0 {
		return t.root
	}
	return id
}

// planID is the certificate id the plan names (resolved from the thumbprint
// when the plan gives only that).
func (t *target) planID() int { return t.job.CertificateID }

func (s *run) settledAll(rows []*plan.Row) bool {
	for _, r := range rows {
		if !s.settled(r) {
			return false
		}
	}
	return true
}

// resolveThumbprints finds the certificate id of jobs that name their
// certificate by thumbprint only. Jobs are shallow-copied so the plan is
// never changed.
func (s *run) resolveThumbprints(ctx context.Context, ts []*target) []*target {
	g := new(errgroup.Group)
	g.SetLimit(s.cfg.Concurrency)
	for _, t := range ts {
		if t.job.CertificateID != 0 {
			continue
		}
		g.Go(func() error {
			q, err := keyfactor.Quote(t.job.Thumbprint)
			if err != nil {
				s.failRows(t.rows, report.StageCheck, fmt.Sprintf("thumbprint %s cannot be searched for: %v", t.job.Thumbprint, err), nil)
				return nil
			}
			page, err := s.client.ListCertificates(ctx, keyfactor.CertificateQuery{
				QueryString: keyfactor.Clause("Thumbprint", "-eq", q), ReturnLimit: 2,
				IncludeExpired: true, // an expired certificate is the most due of all
			})
			switch {
			case err != nil:
				s.failRows(t.rows, report.StageCheck, fmt.Sprintf("look up thumbprint %s in Command: %v", t.job.Thumbprint, err), err)
			case len(page.Certificates) == 0:
				s.failRows(t.rows, report.StageCheck, fmt.Sprintf("no certificate with thumbprint %s in Command", t.job.Thumbprint), nil)
			default:
				job := *t.job
				job.CertificateID = page.Certificates[0].Id
				t.job = &job
				s.note(t.rows, func(r *report.Row) { r.CertificateID = job.CertificateID })
			}
			return nil
		})
	}
	_ = g.Wait()
	return slices.DeleteFunc(ts, func(t *target) bool { return t.job.CertificateID == 0 })
}

// readErrors remembers why certificates could not be read.
type readErrors map[int]error

func (e readErrors) explain(id int) string {
	if err := e[id]; err != nil && !isNotFound(err) {
		return fmt.Sprintf("read certificate %d: %v", id, err)
	}
	return fmt.Sprintf("certificate %d not found in Command", id)
}

// readCertificates reads the ids with their locations, many per request,
// or one per request once Command refused the batched query. Ids a batch did
// not return are read on their own, which tells "not found" from "revoked
// and hidden".
func (s *run) readCertificates(ctx context.Context, ids map[int]bool) (map[int]*keyfactor.Certificate, readErrors) {
	out := make(map[int]*keyfactor.Certificate, len(ids))
	errs := readErrors{}
	list := make([]int, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	slices.Sort(list)
	missing := list
	if !s.batchRefused.Load() && len(list) > 1 {
		found, odd, err := s.client.CertificatesByID(ctx, list, true)
		switch {
		case errors.Is(err, keyfactor.ErrQueryRefused):
			s.batchRefused.Store(true)
			s.log.Info("Command refused a batched certificate read; reading one certificate per request", "err", err)
		case err != nil:
			s.log.Warn("batched certificate read failed; reading one certificate per request", "err", err)
		default:
			for _, o := range odd {
				s.log.Warn("Command sent a certificate record that could not be read; reading it on its own", "certificate", o.Id, "err", o.Err)
			}
			missing = nil
			for _, id := range list {
				if c, ok := found[id]; ok {
					out[id] = c
				} else {
					missing = append(missing, id)
				}
			}
		}
	}
	var mu sync.Mutex // guards out and errs
	g := new(errgroup.Group)
	g.SetLimit(s.cfg.Concurrency)
	for _, id := range missing {
		g.Go(func() error {
			c, err := s.client.GetCertificate(ctx, id, true)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[id] = err
			} else {
				out[id] = c
			}
			return nil
		})
	}
	_ = g.Wait()
	return out, errs
}

// isNotFound reports whether Command answered 404.
func isNotFound(err error) bool { return keyfactor.CauseOf(err) == keyfactor.CauseNotFound }

// mergeSameCertificate joins targets that turn out to be one certificate
// (one job by id and another by thumbprint, or a plan that names both a
// certificate and its renewal), so it is renewed once. A store named twice
// fails the later row.
func (s *run) mergeSameCertificate(ts []*target) []*target {
	byKey := map[int]*target{}
	var out []*target
	for _, t := range ts {
		key := t.root
		if key == 0 {
			key = t.planID()
		}
		first, ok := byKey[key]
		if !ok {
			byKey[key] = t
			out = append(out, t)
			continue
		}
		for _, pr := range t.rows {
			if i := slices.IndexFunc(first.rows, func(r *plan.Row) bool { return r.StoreID == pr.StoreID }); i >= 0 {
				s.failRows(rowsOf(pr), report.StageCheck, fmt.Sprintf("duplicate target: line %d already deploys certificate %d to store %s", first.rows[i].Line, key, pr.StoreID), nil)
				continue
			}
			first.rows = append(first.rows, pr)
		}
	}
	return out
}

// decideTarget asks decide until it gives a final answer, gathering the
// facts it asks for and recording what it says in the journal (in memory
// only in a dry run). It settles skipped and failed rows and reports true
// for a target to renew or deploy.
func (s *run) decideTarget(ctx context.Context, t *target) bool {
	t.f.now, t.f.force, t.f.window, t.f.margin = s.cfg.Now(), s.cfg.Force, s.cfg.Window, s.cfg.WindowMargin
	t.f.renewBefore = s.renewBefore(t.job)
	t.f.stores = storesOf(t.rows)
	for steps := 0; ; steps++ {
		if steps > 20 {
			// decide converges in a handful of steps; this guards the loop.
			s.failRows(t.rows, report.StageCheck, "internal error: no decision after 20 steps; please report this", nil)
			return false
		}
		a := decide(t.f)
		if !a.kind.final() {
			if err := s.gather(ctx, t, a); err != nil {
				s.failRows(t.rows, report.StageCheck, err.Error(), err)
				return false
			}
		}
		s.settle(t, a)
		if len(t.rows) == 0 {
			return false
		}
		if a.kind.final() {
			t.act = a
			return s.finish(t)
		}
	}
}

// settle ends the rows decide settled alongside its action (stores an
// earlier run deployed to, orphaned stores), carrying the renewal's ids.
func (s *run) settle(t *target, a action) {
	for _, st := range a.settle {
		s.setRows(t.rowsFor([]string{st.store}), true, func(r *report.Row) {
			r.Status, r.Stage, r.Detail = st.status, st.stage, st.detail
			if a.renewal.NewCertificateID != 0 || a.renewal.RequestID != 0 {
				r.NewCertificateID, r.RequestID, r.RenewedAt = a.renewal.NewCertificateID, a.renewal.RequestID, a.renewal.RenewedAt
			}
		})
		t.drop([]string{st.store})
	}
}

// finish settles skip and fail answers and marks the rows of a target that
// goes on to renew or deploy.
func (s *run) finish(t *target) bool {
	c := t.f.current
	s.note(t.rows, func(r *report.Row) {
		if c != nil {
			r.Expires, r.DueAt = c.NotAfter, dueAt(c, t.f.renewBefore)
		}
	})
	if c != nil {
		s.checkDrift(t, c)
	}
	switch t.act.kind {
	case actSkip:
		s.skipRows(t.rows, t.act.stage, t.act.detail)
		return false
	case actFail:
		s.failRows(t.rows, t.act.stage, t.act.detail, nil)
		return false
	}
	return len(t.rows) > 0
}

func (s *run) renewBefore(job *plan.Job) plan.RenewBefore {
	if !job.RenewBefore.IsZero() {
		return job.RenewBefore
	}
	return s.cfg.RenewBefore
}

// gather carries out a look-up or journal step decide asked for.
func (s *run) gather(ctx context.Context, t *target, a action) error {
	switch a.kind {
	case actReadCurrent:
		c, err := s.client.GetCertificate(ctx, a.certID, true)
		if err != nil {
			return errors.New(readErrors{a.certID: err}.explain(a.certID) + " (the journal names it as the current certificate)")
		}
		t.f.current = c
	case actSearch:
		t.f.search = s.searchRenewal(ctx, t.root, a.renewal)
	case actLookupRequest:
		t.f.request = s.lookupRequest(ctx, a.renewal.RequestID)
	case actFindHolders:
		t.f.holders = s.findHolders(ctx, t)
	case actAbandon:
		s.log.Info("an earlier renewal attempt left no certificate in Command; it never took effect", "certificate", a.renewal.OldCertificateID, "started", a.renewal.StartedAt)
		if !s.cfg.DryRun {
			if err := s.journal.Abandon(t.root, a.renewal.Seq); err != nil {
				return fmt.Errorf("journal: %w", err)
			}
		}
		t.f.lineage = withRenewal(t.f.lineage, a.renewal.Seq, func(r *journal.Renewal) { r.State = journal.StateAbandoned })
		t.f.search, t.f.request = nil, nil
	case actComplete:
		found := a.found
		s.log.Info("found the certificate of an earlier renewal", "certificate", a.renewal.OldCertificateID, "new_certificate", found.Id)
		return s.changeLatest(t, a.renewal, func(r *journal.Renewal) {
			r.State, r.NewCertificateID = journal.StateRenewed, found.Id
			if found.CertRequestId != 0 {
				r.RequestID = found.CertRequestId
			}
			// Staging starts when Command issues the certificate: at the
			// attempt for a lost answer, at approval for a pending request.
			r.RenewedAt = r.StartedAt
			if r.RequestID != 0 && a.renewal.State == journal.StatePending {
				r.RenewedAt = found.ImportDate
			}
		})
	case actRefused:
		return s.changeLatest(t, a.renewal, func(r *journal.Renewal) { r.State, r.Message = a.refusal, a.detail })
	case actOrphan:
		s.log.Warn("a renewal's staging window passed before it reached all its stores", "certificate", a.renewal.OldCertificateID, "new_certificate", a.renewal.NewCertificateID)
		return s.changeLatest(t, a.renewal, func(r *journal.Renewal) {
			r.Orphaned = true
			if r.Stores == nil {
				r.Stores = map[string]journal.StoreState{}
			}
			for _, st := range a.stores {
				r.Stores[st] = journal.StoreState{Status: journal.StoreOrphaned, At: t.f.now.UTC()}
			}
		})
	case actAdopt:
		found, old := a.found, t.f.current
		s.log.Info("a newer certificate with the same subject is already in the stores; it is the certificate now", "certificate", old.Id, "in_store", found.Id)
		r := journal.Renewal{Kind: journal.KindAdoption, State: journal.StateRenewed, OldCertificateID: old.Id,
			Subject: old.IssuedDN, StartedAt: t.f.now.UTC(), NewCertificateID: found.Id, RequestID: found.CertRequestId, RenewedAt: found.ImportDate}
		root := t.rootOr(old.Id)
		if !s.cfg.DryRun {
			var err error
			if r, err = s.journal.Adopt(root, r); err != nil {
				return fmt.Errorf("journal: %w", err)
			}
		}
		l := journal.Lineage{Root: root}
		if t.f.lineage != nil {
			l = *t.f.lineage
			l.Renewals = slices.Clone(l.Renewals)
		}
		l.Renewals = append(l.Renewals, r)
		t.root, t.f.lineage, t.f.current = root, &l, found
		t.f.holders = &holderResult{} // nothing newer than what was just adopted
	default:
		return fmt.Errorf("internal error: decide asked for step %d", a.kind)
	}
	return nil
}

// changeLatest applies change to the lineage's renewal r, in the journal
// and in the facts.
func (s *run) changeLatest(t *target, r journal.Renewal, change func(*journal.Renewal)) error {
	if !s.cfg.DryRun {
		if err := s.journal.Update(t.root, r.Seq, change); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	t.f.lineage = withRenewal(t.f.lineage, r.Seq, change)
	t.f.search, t.f.request = nil, nil
	return nil
}

// withRenewal is a copy of l with change applied to its renewal seq.
func withRenewal(l *journal.Lineage, seq uint64, change func(*journal.Renewal)) *journal.Lineage {
	c := *l
	c.Renewals = slices.Clone(l.Renewals)
	for i := range c.Renewals {
		if c.Renewals[i].Seq == seq {
			r := c.Renewals[i]
			r.Stores = maps.Clone(r.Stores)
			change(&r)
			c.Renewals[i] = r
		}
	}
	return &c
}
