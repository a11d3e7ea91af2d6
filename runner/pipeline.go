package runner

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"runner/plan"
	"runner/report"
)

// pageSize is how many certificates the due check reads and decides at a
// time. Workers start on the first page while later ones are read.
const pageSize = 100

// pagesAhead bounds how many pages are being read and decided at once.
const pagesAhead = 2

// pipeline runs the whole plan: pages of certificates are read and decided
// while workers renew and deploy what earlier pages decided, and verifiers
// poll inventory for what workers deployed. No phase waits for another,
// except that --max-renewals needs every due certificate known to pick the
// oldest.
func (s *run) pipeline(ctx context.Context) {
	if s.cfg.Verify && !s.cfg.DryRun {
		s.verifier = newVerifier(ctx, s)
		defer s.verifier.wait()
	}
	work := make(chan *target, s.cfg.Concurrency)
	var workers sync.WaitGroup
	if !s.cfg.DryRun {
		s.pairs = make(pairSlots, s.cfg.Concurrency)
		for range 2 * s.cfg.Concurrency { // half of them writing their journal entry ahead (pairSlots)
			workers.Go(func() {
				for t := range work {
					s.work(ctx, t)
				}
			})
		}
	}

	var capped []*target // with --max-renewals: renewals held back until all are known
	var cappedMu sync.Mutex
	dispatch := func(t *target) {
		switch {
		case s.cfg.DryRun:
			s.settleDryRun(t)
		case t.act.kind == actRenew && s.cfg.MaxRenewals > 0:
			cappedMu.Lock()
			capped = append(capped, t)
			cappedMu.Unlock()
		default:
			work <- t
		}
	}

	g := new(errgroup.Group)
	g.SetLimit(pagesAhead)
	for start := 0; start < len(s.jobs); start += pageSize {
		if ctx.Err() != nil {
			break // the rest ends "not started: run interrupted"
		}
		page := s.jobs[start:min(start+pageSize, len(s.jobs))]
		g.Go(func() error {
			s.decidePage(ctx, page, dispatch)
			return nil
		})
	}
	_ = g.Wait() // pages report failures in rows and never return errors

	if len(capped) > 0 {
		// The oldest due first, so what is deferred now is renewed first next run.
		slices.SortStableFunc(capped, func(a, b *target) int { return cmp.Compare(a.act.dueAt.UnixNano(), b.act.dueAt.UnixNano()) })
		for i, t := range capped {
			if i < s.cfg.MaxRenewals {
				work <- t
				continue
			}
			s.skipRows(t.rows, report.StageCheck, fmt.Sprintf("deferred: due since %s, but --max-renewals %d was reached; the next run takes it first", day(t.act.dueAt), s.cfg.MaxRenewals))
		}
	}
	close(work)
	workers.Wait()
}

// settleDryRun reports what a real run would do with a decided target.
func (s *run) settleDryRun(t *target) {
	var detail string
	switch t.act.kind {
	case actRenew:
		detail = fmt.Sprintf("would renew certificate %d and deploy it to %d store(s) (%s)", t.f.current.Id, len(t.rows), t.act.detail)
	case actDeploy:
		detail = fmt.Sprintf("would deploy %d, the earlier renewal of certificate %d, to %d store(s) inside its window", t.act.renewal.NewCertificateID, t.act.renewal.OldCertificateID, len(t.act.stores))
	default:
		return
	}
	s.skipRows(t.rows, report.StageCheck, detail)
}

// work carries out a target's final action in one worker: a renewal and
// its deploy back to back, or the deploy of an earlier renewal.
func (s *run) work(ctx context.Context, t *target) {
	switch t.act.kind {
	case actDeploy:
		s.resume(ctx, t)
	case actRenew:
		s.renewAndDeploy(ctx, t)
	}
}

// target is one certificate of the plan on its way through the run: its
// rows still in play, the facts gathered so far, and the action decided.
type target struct {
	job  *plan.Job
	rows []*plan.Row
	root int // the journal lineage it belongs to (0: none yet)
	f    facts
	act  action
	pair bool // it holds one of run.pairs
}

// storesOf returns the lower-case store ids of rows.
func storesOf(rows []*plan.Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.StoreID
	}
	return out
}

// rowsFor returns the target's rows for stores.
func (t *target) rowsFor(stores []string) []*plan.Row {
	var out []*plan.Row
	for _, r := range t.rows {
		if slices.Contains(stores, r.StoreID) {
			out = append(out, r)
		}
	}
	return out
}

// drop removes the rows of stores from play.
func (t *target) drop(stores []string) {
	t.rows = slices.DeleteFunc(t.rows, func(r *plan.Row) bool { return slices.Contains(stores, r.StoreID) })
	t.f.stores = storesOf(t.rows)
}
