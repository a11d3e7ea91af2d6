package runner

import (
	"fmt"
	"strings"
	"time"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/report"
)

// This file holds every choice the runner makes about one certificate: the
// lineage, resume, --force, approval and window rules. decide is a pure
// function of the facts gathered about a target and the clock; the caller
// gathers facts, asks decide, applies what it answers (which may be "look
// this up first" or "record that in the journal") and asks again, until the
// answer is to renew, deploy, skip or fail. The table in decide_test.go reads
// like the README's "Choices" section.

// facts is everything known about one target when a decision is made.
type facts struct {
	now    time.Time
	force  bool
	window time.Duration // Command's staging window
	margin time.Duration // stop deploying this long before it ends
	// renewBefore is the job's threshold, or the run's.
	renewBefore plan.RenewBefore
	// stores are the (lower-case) store ids of the target's rows still in
	// play; decide settles rows by store.
	stores []string

	// planCert is the certificate the plan names, as Command returned it;
	// nil when it was not read because the journal names a newer current
	// certificate.
	planCert *keyfactor.Certificate
	// planMismatch is set when the plan names the certificate by id and by
	// thumbprint and Command's certificate has another thumbprint.
	planMismatch string

	// lineage is the journal's record of the certificate; nil when the
	// journal does not know it.
	lineage *journal.Lineage
	// current is the certificate read for the lineage's current id (see
	// currentID); nil until read.
	current *keyfactor.Certificate

	// Results of look-ups, nil until done.
	search  *searchResult  // Command searched for an in-flight renewal's certificate
	request *requestResult // Command asked about a renewal that awaited approval
	holders *holderResult  // Command searched for a newer certificate already in the stores
}

// searchResult is the outcome of searching Command for the certificate an
// in-flight renewal may have issued. candidates are already filtered by
// renewalCandidates.
type searchResult struct {
	candidates []keyfactor.Certificate
	err        error
}

// requestResult is what Command says about a renewal request that awaited
// approval.
type requestResult struct {
	status   keyfactor.RequestStatus
	message  string                 // the request's denial comment
	issued   *keyfactor.Certificate // the certificate issued for it, if any
	notFound bool                   // Command does not know the request (404)
	hidden   string                 // why Command would not show the request's state (403)
	err      error
}

// holderResult is the outcome of looking for a newer certificate with the
// same subject already in the target's stores (renewed by another machine,
// shard or journal, or by a run whose state was lost). holder is nil when
// there is none.
type holderResult struct {
	holder *keyfactor.Certificate
	err    error
}

// actionKind says what to do next with a target.
type actionKind int

const (
	// Final actions.
	actRenew  actionKind = iota // renew current, then deploy to stores
	actDeploy                   // deploy the latest renewal (resume) to stores
	actSkip                     // rows end skipped
	actFail                     // rows end failed
	// Look-ups: gather a fact, then decide again.
	actReadCurrent   // read certificate certID (the lineage's current one)
	actSearch        // search Command for the in-flight renewal's certificate
	actLookupRequest // ask Command about the pending request
	actFindHolders   // look for a newer certificate of the same subject in the stores
	// Journal changes: record, then decide again.
	actAbandon  // the in-flight renewal never took effect: forget it
	actComplete // the in-flight or pending renewal issued certificate found
	actRefused  // the pending request was denied or failed in Command
	actOrphan   // the renewal's window passed undeployed: report once, keep in history
	actAdopt    // found in the stores: this is the certificate now
)

func (k actionKind) final() bool { return k <= actFail }

// action is decide's answer.
type action struct {
	kind   actionKind
	stage  report.Stage
	detail string

	// settle are rows (by store) that end now, whatever happens to the
	// others: stores an earlier run already deployed, orphaned stores.
	settle []settled

	certID  int                    // actReadCurrent
	renewal journal.Renewal        // actDeploy, actSearch, actLookupRequest, actAbandon, actComplete, actRefused, actOrphan
	found   *keyfactor.Certificate // actComplete, actAdopt
	refusal journal.State          // actRefused: StateDenied or StateFailed
	stores  []string               // actDeploy: the stores still to deploy
	dueAt   time.Time              // actRenew, actSkip: when current became or becomes due
}

// settled is one row outcome decided alongside the main action.
type settled struct {
	store  string
	status report.Status
	stage  report.Stage
	detail string
}

// clockSkew widens time comparisons against Command's clock (the search for
// a renewal whose answer was lost), so a Command clock somewhat behind ours
// does not hide it.
const clockSkew = 5 * time.Minute

// decide returns the next step for a target. It never does I/O.
func decide(f facts) action {
	if f.planMismatch != "" {
		return action{kind: actFail, stage: report.StageCheck, detail: f.planMismatch}
	}
	if latest, ok := latestRenewal(f.lineage); ok {
		if a, settledHere := decideLatest(f, latest); settledHere {
			return a
		}
	}
	id := currentID(f.lineage, f.planCert)
	if f.current == nil || f.current.Id != id {
		return action{kind: actReadCurrent, certID: id}
	}
	if a, settledHere := beforeRenewing(f); settledHere {
		return a
	}
	return dueCheck(f)
}

// decideLatest handles the newest renewal of the lineage. It reports false
// when the renewal needs nothing more and the due check on the current
// certificate decides.
func decideLatest(f facts, r journal.Renewal) (action, bool) {
	if r.Kind == journal.KindAdoption {
		return action{}, false // found in the stores: nothing to deploy
	}
	switch r.State {
	case journal.StateInFlight:
		// An earlier run sent (or was about to send) Renew and never learned
		// the outcome. Never renew to find out: look.
		if f.search == nil {
			return action{kind: actSearch, renewal: r}, true
		}
		if f.search.err != nil {
			return action{kind: actFail, stage: report.StageCheck, detail: fmt.Sprintf(
				"an earlier run's renewal of certificate %d (started %s) has an unknown outcome, and Command could not be searched for it (%v); not renewing again: rerun when Command answers",
				r.OldCertificateID, stamp(r.StartedAt), f.search.err)}, true
		}
		switch len(f.search.candidates) {
		case 0:
			return action{kind: actAbandon, renewal: r}, true
		case 1:
			return action{kind: actComplete, renewal: r, found: &f.search.candidates[0]}, true
		default:
			return action{kind: actFail, stage: report.StageCheck, detail: fmt.Sprintf(
				"an earlier run's renewal of certificate %d (started %s) has an unknown outcome, and Command holds %d certificates that could be it: %s; not guessing: check in Command which one was issued for certificate %d (requester, request id), then deploy it by hand or rerun with --force",
				r.OldCertificateID, stamp(r.StartedAt), len(f.search.candidates), certIDs(f.search.candidates), r.OldCertificateID)}, true
		}

	case journal.StatePending:
		if f.request == nil {
			return action{kind: actLookupRequest, renewal: r}, true
		}
		q := f.request
		switch {
		case q.err != nil:
			return action{kind: actFail, stage: report.StageCheck, detail: fmt.Sprintf(
				"renewal request %d (of certificate %d) awaited approval, and Command could not be asked about it: %v", r.RequestID, r.OldCertificateID, q.err)}, true
		case q.notFound && f.force:
			return action{kind: actAbandon, renewal: r}, true
		case q.notFound:
			return action{kind: actFail, stage: report.StageCheck, detail: fmt.Sprintf(
				"renewal request %d (of certificate %d) awaited approval, but Command no longer knows it; rerun with --force to request a new renewal", r.RequestID, r.OldCertificateID)}, true
		case q.issued != nil:
			return action{kind: actComplete, renewal: r, found: q.issued}, true
		case q.status == keyfactor.RequestDenied:
			return action{kind: actRefused, renewal: r, refusal: journal.StateDenied, detail: q.message}, true
		case q.status == keyfactor.RequestFailed:
			return action{kind: actRefused, renewal: r, refusal: journal.StateFailed, detail: q.message}, true
		case q.hidden != "":
			return action{kind: actSkip, stage: report.StageCheck, detail: fmt.Sprintf(
				"renewal request %d (of certificate %d, sent %s) has no certificate yet; whether it awaits approval or was denied Command does not show this user (%s): grant the permission, or look at the request in Command",
				r.RequestID, r.OldCertificateID, stamp(r.StartedAt), q.hidden)}, true
		default:
			return action{kind: actSkip, stage: report.StageCheck, detail: fmt.Sprintf(
				"renewal request %d (of certificate %d, sent %s) still awaits approval in Command", r.RequestID, r.OldCertificateID, stamp(r.StartedAt))}, true
		}

	case journal.StateDenied, journal.StateFailed:
		if f.force {
			return action{}, false // --force asks again; currentID skips the refused renewal
		}
		verb := "was denied"
		if r.State == journal.StateFailed {
			verb = "failed"
		}
		detail := fmt.Sprintf("the renewal request %d of certificate %d %s in Command", r.RequestID, r.OldCertificateID, verb)
		if r.Message != "" {
			detail += ": " + r.Message
		}
		return action{kind: actFail, stage: report.StageRenew, detail: detail + "; fix the cause in Command (template, approval), then rerun with --force to request again"}, true

	case journal.StateRenewed:
		var pending []string
		var settle []settled
		for _, st := range f.stores {
			if reached(r, st) {
				settle = append(settle, settled{store: st, status: report.Succeeded, stage: report.StageDeploy,
					detail: fmt.Sprintf("job created by an earlier run (%s)", stamp(r.Stores[st].At))})
				continue
			}
			pending = append(pending, st)
		}
		if len(pending) == 0 || r.Orphaned {
			return action{}, false
		}
		deadline := r.RenewedAt.Add(f.window - f.margin)
		if f.now.Before(deadline) {
			// Inside the window: deploy the earlier renewal, even with
			// --force; renewing again would orphan it.
			return action{kind: actDeploy, renewal: r, stores: pending, settle: settle}, true
		}
		var orphaned []settled
		for _, st := range pending {
			orphaned = append(orphaned, settled{store: st, status: report.Failed, stage: report.StageDeploy, detail: fmt.Sprintf(
				"window expired: certificate %d was renewed as %d at %s, but %d never reached this store and its staging window has passed; %d stays in Command (journal history), deploy it by hand or let the next renewal replace it",
				r.OldCertificateID, r.NewCertificateID, stamp(r.RenewedAt), r.NewCertificateID, r.NewCertificateID)})
		}
		return action{kind: actOrphan, renewal: r, stores: pending, settle: orphaned}, true
	}
	return action{}, false
}

// beforeRenewing runs when the current certificate would be renewed. The
// journal is not the only one who renews: another machine, a run whose
// state was lost, a shard that held the certificate on other nights. So
// Command is searched first for a newer certificate with the same subject
// already in one of the stores (maybe under another alias); that one is the
// certificate now, and is adopted instead of renewing the old one again.
func beforeRenewing(f facts) (action, bool) {
	c := f.current
	if !wouldRenew(c, f.force, f.now, f.renewBefore) {
		return action{}, false
	}
	switch {
	case f.holders == nil:
		return action{kind: actFindHolders}, true
	case f.holders.err != nil:
		return action{kind: actFail, stage: report.StageCheck, detail: fmt.Sprintf(
			"certificate %d is due, and Command could not be searched for a newer certificate already in its stores (%v); not renewing blindly: rerun when Command answers",
			c.Id, f.holders.err)}, true
	case f.holders.holder != nil && f.holders.holder.Id != c.Id:
		return action{kind: actAdopt, found: f.holders.holder}, true
	}
	return action{}, false
}

// wouldRenew reports whether the due check would renew c: it is not
// revoked, and it is due or the run forces renewal.
func wouldRenew(c *keyfactor.Certificate, force bool, now time.Time, rb plan.RenewBefore) bool {
	return c.CertState != certStateRevoked && (force || !now.Before(dueAt(c, rb)))
}

// dueCheck renews the current certificate when it is due (or --force), and
// skips the rows otherwise.
func dueCheck(f facts) action {
	c := f.current
	at := dueAt(c, f.renewBefore)
	prefix := ""
	if f.planCert == nil || c.Id != f.planCert.Id {
		prefix = fmt.Sprintf("now certificate %d; ", c.Id)
	}
	switch {
	case c.CertState == certStateRevoked:
		return action{kind: actFail, stage: report.StageCheck, detail: fmt.Sprintf(
			"%scertificate %d is revoked in Command; a revoked certificate cannot be renewed: enroll a new one and put its id in the plan", prefix, c.Id)}
	case f.force:
		return action{kind: actRenew, dueAt: at, detail: "--force"}
	case f.now.Before(at):
		return action{kind: actSkip, stage: report.StageCheck, dueAt: at, detail: prefix + "not due until " + day(at)}
	default:
		return action{kind: actRenew, dueAt: at, detail: "due since " + day(at)}
	}
}

// certStateRevoked is CertState 2 (Revoked) of GET /Certificates; only
// "Active (1)" was seen in recordings, the rest are the documented enum.
const certStateRevoked = 2

func dueAt(c *keyfactor.Certificate, rb plan.RenewBefore) time.Time {
	return rb.DueAt(c.NotBefore, c.NotAfter)
}

// latestRenewal is the lineage's newest renewal that was not abandoned.
func latestRenewal(l *journal.Lineage) (journal.Renewal, bool) {
	if l == nil {
		return journal.Renewal{}, false
	}
	return l.Latest()
}

// currentID is the certificate that is in the stores now, the one whose
// due-ness counts: the newest adopted certificate or renewal that reached at
// least one store; without one, the lineage's root; without a lineage, the
// plan's certificate. A renewal that reached no store (orphaned, refused, in
// flight) does not replace the certificate the stores hold.
func currentID(l *journal.Lineage, planCert *keyfactor.Certificate) int {
	if l == nil {
		return planCert.Id
	}
	for i := len(l.Renewals) - 1; i >= 0; i-- {
		r := l.Renewals[i]
		switch {
		case r.Kind == journal.KindAdoption && r.NewCertificateID != 0:
			return r.NewCertificateID
		case r.State == journal.StateRenewed && r.NewCertificateID != 0 && reachedAny(r):
			return r.NewCertificateID
		}
	}
	return l.Root
}

// reached reports whether the renewal got a management job (or was seen) in
// store.
func reached(r journal.Renewal, store string) bool {
	st, ok := r.Stores[store]
	return ok && (st.Status == journal.StoreJobCreated || st.Status == journal.StoreVerified)
}

func reachedAny(r journal.Renewal) bool {
	for store := range r.Stores {
		if reached(r, store) {
			return true
		}
	}
	return false
}

func locatedIn(c *keyfactor.Certificate, store string) bool {
	for _, l := range c.Locations {
		if l.CertStoreId == store {
			return true
		}
	}
	return false
}

// renewalCandidates filters the certificates a search found for an
// in-flight renewal old down to those that can only be its own renewal:
// old's subject but not old itself, imported since the attempt started
// (less clockSkew), not already expired (a lying answer), not claimed by any
// lineage but root's, and requested by identity where Command says who
// requested it.
func renewalCandidates(old journal.Renewal, root int, identity string, now time.Time, claimedBy func(int) (int, bool), found []keyfactor.Certificate) []keyfactor.Certificate {
	var out []keyfactor.Certificate
	for _, c := range found {
		if c.Id <= 0 || c.Id == old.OldCertificateID || !strings.EqualFold(c.IssuedDN, old.Subject) {
			continue
		}
		if c.ImportDate.Before(old.StartedAt.Add(-clockSkew)) || !c.NotAfter.After(now) {
			continue
		}
		if owner, ok := claimedBy(c.Id); ok && owner != root {
			continue
		}
		if c.RequesterName != "" && identity != "" && !strings.EqualFold(c.RequesterName, identity) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// storeHolder picks, among certificates with old's subject, the newest
// active one newer than old that Command shows in one of stores and no
// lineage but root's claims; nil when there is none.
func storeHolder(old *keyfactor.Certificate, root int, stores []string, now time.Time, claimedBy func(int) (int, bool), found []keyfactor.Certificate) *keyfactor.Certificate {
	var best *keyfactor.Certificate
	for i := range found {
		c := &found[i]
		if c.Id == old.Id || !strings.EqualFold(c.IssuedDN, old.IssuedDN) || c.CertState == certStateRevoked {
			continue
		}
		if !newer(c, old) || !c.NotAfter.After(now) {
			continue
		}
		if owner, ok := claimedBy(c.Id); ok && owner != root {
			continue
		}
		in := false
		for _, st := range stores {
			in = in || locatedIn(c, st)
		}
		if in && (best == nil || c.NotAfter.After(best.NotAfter)) {
			best = c
		}
	}
	return best
}

// newer reports whether c was issued after old: a later NotBefore, or the
// same second and a later import (Command's ids grow with time, the last
// tie-break).
func newer(c, old *keyfactor.Certificate) bool {
	switch {
	case !c.NotBefore.Equal(old.NotBefore):
		return c.NotBefore.After(old.NotBefore)
	case !c.ImportDate.Equal(old.ImportDate):
		return c.ImportDate.After(old.ImportDate)
	}
	return c.Id > old.Id
}

func certIDs(cs []keyfactor.Certificate) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%d (imported %s)", c.Id, stamp(c.ImportDate))
	}
	return strings.Join(parts, ", ")
}

// stamp and day are the two time formats of row details.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
func day(t time.Time) string   { return t.UTC().Format("2006-01-02") }
