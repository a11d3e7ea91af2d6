package runner

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/report"
)

// The decision table: one named case per branch of decide, each with a
// fixed clock. It reads like the README's "Choices" section.

var (
	now     = time.Date(2026, 12, 1, 2, 15, 0, 0, time.UTC)
	storeA  = "11111111-1111-4111-8111-111111111111"
	storeB  = "22222222-2222-4222-8222-222222222222"
	subject = "CN=web.example.com"
)

// cert is a certificate valid from nb for life, in the given stores.
func cert(id int, nb time.Time, life time.Duration, stores ...string) *keyfactor.Certificate {
	c := &keyfactor.Certificate{Id: id, Thumbprint: "AB12", IssuedDN: subject, ImportDate: nb, NotBefore: nb, NotAfter: nb.Add(life), CertState: 1}
	for _, st := range stores {
		c.Locations = append(c.Locations, keyfactor.Location{CertStoreId: st})
	}
	return c
}

var (
	year = 365 * 24 * time.Hour
	// due: expires in 10 days; fresh: expires in 300 days.
	dueCert   = cert(1001, now.Add(-355*24*time.Hour), year, storeA, storeB)
	freshCert = cert(1002, now.Add(-65*24*time.Hour), year, storeA, storeB)
)

func baseFacts() facts {
	return facts{
		now: now, window: 5 * time.Minute, margin: 30 * time.Second,
		renewBefore: plan.RenewBefore{Duration: 30 * 24 * time.Hour},
		stores:      []string{storeA, storeB},
		planCert:    dueCert, current: dueCert,
		holders: &holderResult{}, // Command searched: no newer certificate in the stores
	}
}

func lineage(rs ...journal.Renewal) *journal.Lineage {
	for i := range rs {
		rs[i].Seq = uint64(i + 1)
		if rs[i].Kind == "" {
			rs[i].Kind = journal.KindRenewal
		}
	}
	return &journal.Lineage{Root: 1001, Renewals: rs}
}

func stores(status string, ids ...string) map[string]journal.StoreState {
	m := map[string]journal.StoreState{}
	for _, id := range ids {
		m[id] = journal.StoreState{Status: status, At: now.Add(-time.Minute)}
	}
	return m
}

var (
	inFlight       = journal.Renewal{State: journal.StateInFlight, OldCertificateID: 1001, Subject: subject, StartedAt: now.Add(-2 * time.Minute)}
	pending        = journal.Renewal{State: journal.StatePending, OldCertificateID: 1001, Subject: subject, StartedAt: now.Add(-24 * time.Hour), RequestID: 90001, RenewedAt: now.Add(-24 * time.Hour)}
	renewedJustNow = journal.Renewal{State: journal.StateRenewed, OldCertificateID: 1001, Subject: subject, StartedAt: now.Add(-2 * time.Minute),
		NewCertificateID: 1002, RequestID: 90002, RenewedAt: now.Add(-2 * time.Minute)}
	renewedLastNight = journal.Renewal{State: journal.StateRenewed, OldCertificateID: 1001, Subject: subject, StartedAt: now.Add(-24 * time.Hour),
		NewCertificateID: 1002, RequestID: 90002, RenewedAt: now.Add(-24 * time.Hour)}
)

func with(r journal.Renewal, edit func(*journal.Renewal)) journal.Renewal {
	r.Stores = nil
	edit(&r)
	return r
}

func TestDecide(t *testing.T) {
	type want struct {
		kind   actionKind
		detail string // substring
		stores []string
		settle map[string]report.Status
		certID int
	}
	for _, tc := range []struct {
		name string
		edit func(*facts)
		want want
	}{
		// Without a journal.
		{"not due: skipped with its date", func(f *facts) { f.planCert, f.current = freshCert, freshCert },
			want{kind: actSkip, detail: "not due until 2027-08-28"}},
		{"due and in every store: renew", func(f *facts) {}, want{kind: actRenew, detail: "due since 2026-11-11"}},
		{"expired: the most due of all", func(f *facts) {
			c := cert(1001, now.Add(-400*24*time.Hour), year, storeA, storeB)
			f.planCert, f.current = c, c
		}, want{kind: actRenew}},
		{"percent threshold", func(f *facts) {
			f.renewBefore = plan.RenewBefore{Percent: 20}
			f.planCert, f.current = freshCert, freshCert
		}, want{kind: actSkip, detail: "not due until 2027-07-16"}},
		{"--force renews what is not due", func(f *facts) { f.force = true; f.planCert, f.current = freshCert, freshCert },
			want{kind: actRenew, detail: "--force"}},
		{"revoked: fails, never renewed", func(f *facts) {
			c := *dueCert
			c.CertState = certStateRevoked
			f.planCert, f.current = &c, &c
		}, want{kind: actFail, detail: "revoked"}},
		{"plan's id and thumbprint disagree", func(f *facts) { f.planMismatch = "certificate_id 1001 is the certificate with thumbprint AB12" },
			want{kind: actFail, detail: "thumbprint AB12"}},
		{"no journal, due: look for a newer certificate already in the stores first", func(f *facts) { f.holders = nil },
			want{kind: actFindHolders}},
		{"no journal, --force: look first too", func(f *facts) { f.holders, f.force = nil, true; f.planCert, f.current = freshCert, freshCert },
			want{kind: actFindHolders}},
		{"no journal, not due: nothing to look for", func(f *facts) { f.holders = nil; f.planCert, f.current = freshCert, freshCert },
			want{kind: actSkip}},
		{"no journal, newer certificate in the store: adopt it", func(f *facts) {
			f.planCert = cert(1001, dueCert.NotBefore, year, storeA)
			f.holders = &holderResult{holder: cert(1050, now.Add(-24*time.Hour), year, storeB)}
		}, want{kind: actAdopt, certID: 1050}},
		{"no journal, nothing newer in the stores: renew", func(f *facts) {
			f.planCert = cert(1001, dueCert.NotBefore, year, storeA)
			f.current = f.planCert
			f.holders = &holderResult{}
		}, want{kind: actRenew}},
		{"no journal, the search for a replacement failed: no blind renewal", func(f *facts) {
			f.planCert = cert(1001, dueCert.NotBefore, year, storeA)
			f.holders = &holderResult{err: errors.New("HTTP 503")}
		}, want{kind: actFail, detail: "not renewing blindly"}},

		// A renewal in flight (crash, kill -9 or lost answer).
		{"in flight: search Command first", func(f *facts) { f.lineage = lineage(inFlight) }, want{kind: actSearch}},
		{"in flight with --force: still search, never renew twice", func(f *facts) { f.lineage = lineage(inFlight); f.force = true }, want{kind: actSearch}},
		{"in flight, search failed: fail, not renewing again", func(f *facts) {
			f.lineage, f.search = lineage(inFlight), &searchResult{err: errors.New("HTTP 503")}
		}, want{kind: actFail, detail: "not renewing again"}},
		{"in flight, nothing issued: abandon the attempt", func(f *facts) {
			f.lineage, f.search = lineage(inFlight), &searchResult{}
		}, want{kind: actAbandon}},
		{"in flight, its certificate found: complete the renewal", func(f *facts) {
			f.lineage, f.search = lineage(inFlight), &searchResult{candidates: []keyfactor.Certificate{*cert(1060, now.Add(-time.Minute), year)}}
		}, want{kind: actComplete, certID: 1060}},
		{"in flight, two candidates: ambiguous, never guess", func(f *facts) {
			f.lineage, f.search = lineage(inFlight), &searchResult{candidates: []keyfactor.Certificate{*cert(1060, now, year), *cert(1061, now, year)}}
		}, want{kind: actFail, detail: "1060 (imported"}},

		// Approval.
		{"awaiting approval: ask Command", func(f *facts) { f.lineage = lineage(pending) }, want{kind: actLookupRequest}},
		{"approved: follow the issued certificate", func(f *facts) {
			f.lineage = lineage(pending)
			f.request = &requestResult{status: keyfactor.RequestIssued, issued: cert(1070, now.Add(-time.Hour), year)}
		}, want{kind: actComplete, certID: 1070}},
		{"still pending: skipped", func(f *facts) {
			f.lineage, f.request = lineage(pending), &requestResult{status: keyfactor.RequestPending}
		}, want{kind: actSkip, detail: "still awaits approval"}},
		{"still pending with --force: a live renewal is not renewed again", func(f *facts) {
			f.lineage, f.request, f.force = lineage(pending), &requestResult{status: keyfactor.RequestPending}, true
		}, want{kind: actSkip, detail: "still awaits approval"}},
		{"denied: recorded", func(f *facts) {
			f.lineage, f.request = lineage(pending), &requestResult{status: keyfactor.RequestDenied, message: "not this quarter"}
		}, want{kind: actRefused, detail: "not this quarter"}},
		{"failed at the CA: recorded", func(f *facts) {
			f.lineage, f.request = lineage(pending), &requestResult{status: keyfactor.RequestFailed, message: "CA offline"}
		}, want{kind: actRefused, detail: "CA offline"}},
		{"request unknown to Command: fail, --force gets past it", func(f *facts) {
			f.lineage, f.request = lineage(pending), &requestResult{notFound: true}
		}, want{kind: actFail, detail: "--force"}},
		{"request unknown to Command with --force: abandon it", func(f *facts) {
			f.lineage, f.request, f.force = lineage(pending), &requestResult{notFound: true}, true
		}, want{kind: actAbandon}},
		{"request state hidden from this user: skipped, saying why", func(f *facts) {
			f.lineage, f.request = lineage(pending), &requestResult{status: keyfactor.RequestPending, hidden: "permission /monitoring/alerts/read/ is required"}
		}, want{kind: actSkip, detail: "/monitoring/alerts/read/"}},
		{"request lookup failed", func(f *facts) {
			f.lineage, f.request = lineage(pending), &requestResult{err: errors.New("HTTP 500")}
		}, want{kind: actFail, detail: "could not be asked"}},
		{"denied earlier: fails loudly on every run", func(f *facts) {
			f.lineage = lineage(with(pending, func(r *journal.Renewal) { r.State, r.Message = journal.StateDenied, "not this quarter" }))
		}, want{kind: actFail, detail: "was denied in Command: not this quarter"}},
		{"denied earlier, --force: ask again", func(f *facts) {
			f.lineage = lineage(with(pending, func(r *journal.Renewal) { r.State = journal.StateDenied }))
			f.force = true
		}, want{kind: actRenew, detail: "--force"}},

		// A renewal that got its certificate.
		{"renewed last night, deployed everywhere: judged on the new certificate", func(f *facts) {
			f.lineage = lineage(with(renewedLastNight, func(r *journal.Renewal) { r.Stores = stores(journal.StoreJobCreated, storeA, storeB) }))
			f.current = freshCert
		}, want{kind: actSkip, detail: "now certificate 1002; not due until"}},
		{"renewed, the new certificate not read yet: read it", func(f *facts) {
			f.lineage = lineage(with(renewedLastNight, func(r *journal.Renewal) { r.Stores = stores(journal.StoreVerified, storeA, storeB) }))
		}, want{kind: actReadCurrent, certID: 1002}},
		{"renewed just now, undeployed (crash): deploy it inside its window", func(f *facts) {
			f.lineage = lineage(renewedJustNow)
		}, want{kind: actDeploy, stores: []string{storeA, storeB}}},
		{"renewed just now, one store done: deploy the other, report the done one", func(f *facts) {
			f.lineage = lineage(with(renewedJustNow, func(r *journal.Renewal) { r.Stores = stores(journal.StoreJobCreated, storeA) }))
		}, want{kind: actDeploy, stores: []string{storeB}, settle: map[string]report.Status{storeA: report.Succeeded}}},
		{"renewed just now with --force: deployed, not renewed again", func(f *facts) {
			f.lineage, f.force = lineage(renewedJustNow), true
		}, want{kind: actDeploy, stores: []string{storeA, storeB}}},
		{"window passed undeployed: reported once as orphaned", func(f *facts) {
			f.lineage = lineage(with(renewedLastNight, func(r *journal.Renewal) { r.Stores = stores(journal.StoreFailed, storeA, storeB) }))
		}, want{kind: actOrphan, stores: []string{storeA, storeB}, settle: map[string]report.Status{storeA: report.Failed, storeB: report.Failed}, detail: "window expired"}},
		{"orphaned, reached no store: judged on the certificate in the stores, renewed when due", func(f *facts) {
			f.lineage = lineage(with(renewedLastNight, func(r *journal.Renewal) {
				r.Orphaned, r.Stores = true, stores(journal.StoreOrphaned, storeA, storeB)
			}))
		}, want{kind: actRenew, detail: "due since"}},
		{"orphaned in one store, deployed to the other: the new certificate counts", func(f *facts) {
			f.lineage = lineage(with(renewedLastNight, func(r *journal.Renewal) {
				r.Orphaned = true
				r.Stores = stores(journal.StoreJobCreated, storeA)
				r.Stores[storeB] = journal.StoreState{Status: journal.StoreOrphaned}
			}))
			f.current = freshCert
		}, want{kind: actSkip, detail: "now certificate 1002"}},
		{"the journal's certificate is due: look for a newer one in the stores first", func(f *facts) {
			f.lineage, f.holders = lineage(with(renewedLastNight, func(r *journal.Renewal) { r.Stores = stores(journal.StoreJobCreated, storeA, storeB) })), nil
			f.current = cert(1002, now.Add(-400*24*time.Hour), year, storeA, storeB)
		}, want{kind: actFindHolders}},
		{"the journal's certificate was renewed elsewhere since: adopt what the stores hold", func(f *facts) {
			// Another journal (a shard on other nights) renewed 1002 to 1060.
			f.lineage = lineage(with(renewedLastNight, func(r *journal.Renewal) { r.Stores = stores(journal.StoreJobCreated, storeA, storeB) }))
			f.current = cert(1002, now.Add(-400*24*time.Hour), year, storeA)
			f.holders = &holderResult{holder: cert(1060, now.Add(-time.Hour), year, storeB)}
		}, want{kind: actAdopt, certID: 1060}},
		{"adopted from the stores: judged on the adopted certificate", func(f *facts) {
			f.lineage = lineage(journal.Renewal{Kind: journal.KindAdoption, State: journal.StateRenewed, OldCertificateID: 1001, NewCertificateID: 1002})
			f.current = freshCert
		}, want{kind: actSkip, detail: "now certificate 1002"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := baseFacts()
			tc.edit(&f)
			a := decide(f)
			if a.kind != tc.want.kind {
				t.Fatalf("kind %d, want %d (action %+v)", a.kind, tc.want.kind, a)
			}
			text := a.detail
			for _, s := range a.settle {
				text += " | " + s.detail
			}
			if !strings.Contains(text, tc.want.detail) {
				t.Errorf("detail %q lacks %q", text, tc.want.detail)
			}
			if tc.want.stores != nil && !slices.Equal(a.stores, tc.want.stores) {
				t.Errorf("stores %v, want %v", a.stores, tc.want.stores)
			}
			got := map[string]report.Status{}
			for _, s := range a.settle {
				got[s.store] = s.status
			}
			if len(got) != len(tc.want.settle) {
				t.Errorf("settled %v, want %v", got, tc.want.settle)
			}
			for st, status := range tc.want.settle {
				if got[st] != status {
					t.Errorf("store %s settled %q, want %q", st, got[st], status)
				}
			}
			if tc.want.certID != 0 {
				id := a.certID
				if a.found != nil {
					id = a.found.Id
				}
				if id != tc.want.certID {
					t.Errorf("certificate %d, want %d", id, tc.want.certID)
				}
			}
		})
	}
}

func TestRenewalCandidates(t *testing.T) {
	claimed := map[int]int{2001: 5000, 2002: 1001}
	claimedBy := func(id int) (int, bool) { r, ok := claimed[id]; return r, ok }
	mine := func(id int, edit func(*keyfactor.Certificate)) keyfactor.Certificate {
		c := *cert(id, now.Add(-time.Minute), year)
		c.RequesterName = `CORP\svc`
		if edit != nil {
			edit(&c)
		}
		return c
	}
	for _, tc := range []struct {
		name  string
		found keyfactor.Certificate
		keep  bool
	}{
		{"its own renewal", mine(3000, nil), true},
		{"the old certificate itself", mine(1001, nil), false},
		{"another subject", mine(3000, func(c *keyfactor.Certificate) { c.IssuedDN = "CN=other" }), false},
		{"subject in another case", mine(3000, func(c *keyfactor.Certificate) { c.IssuedDN = strings.ToUpper(subject) }), true},
		{"imported before the attempt", mine(3000, func(c *keyfactor.Certificate) { c.ImportDate = now.Add(-time.Hour) }), false},
		{"imported a little before, within clock skew", mine(3000, func(c *keyfactor.Certificate) { c.ImportDate = inFlight.StartedAt.Add(-4 * time.Minute) }), true},
		{"claimed by another lineage (same subject)", mine(2001, nil), false},
		{"claimed by this lineage", mine(2002, nil), true},
		{"requested by someone else", mine(3000, func(c *keyfactor.Certificate) { c.RequesterName = `CORP\alice` }), false},
		{"requester not shown", mine(3000, func(c *keyfactor.Certificate) { c.RequesterName = "" }), true},
		{"already expired: a lying answer", mine(3000, func(c *keyfactor.Certificate) { c.NotAfter = now.Add(-time.Second) }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := renewalCandidates(inFlight, 1001, `CORP\svc`, now, claimedBy, []keyfactor.Certificate{tc.found})
			if (len(got) == 1) != tc.keep {
				t.Errorf("kept %v, want %v", len(got) == 1, tc.keep)
			}
		})
	}
}

func TestStoreHolder(t *testing.T) {
	old := cert(1001, now.Add(-355*24*time.Hour), year, storeA)
	claimed := map[int]int{2001: 7777, 2002: 1001}
	claimedBy := func(id int) (int, bool) { r, ok := claimed[id]; return r, ok }
	newer := func(id int, nb time.Time, stores ...string) keyfactor.Certificate {
		return *cert(id, nb, year, stores...)
	}
	edited := func(c keyfactor.Certificate, edit func(*keyfactor.Certificate)) keyfactor.Certificate {
		edit(&c)
		return c
	}
	for _, tc := range []struct {
		name  string
		found []keyfactor.Certificate
		want  int
	}{
		{"newer in a target store", []keyfactor.Certificate{newer(2000, now.Add(-time.Hour), storeB)}, 2000},
		{"newer but in no target store", []keyfactor.Certificate{newer(2000, now.Add(-time.Hour), "99999999-9999-4999-8999-999999999999")}, 0},
		{"older than the plan's certificate", []keyfactor.Certificate{newer(2000, old.NotBefore.Add(-time.Hour), storeB)}, 0},
		{"issued the same second, imported later", []keyfactor.Certificate{func() keyfactor.Certificate {
			c := newer(2000, old.NotBefore, storeB)
			c.ImportDate = old.ImportDate.Add(time.Millisecond)
			return c
		}()}, 2000},
		{"the same second and import, a lower id", []keyfactor.Certificate{newer(999, old.NotBefore, storeB)}, 0},
		{"claimed by another lineage", []keyfactor.Certificate{newer(2001, now.Add(-time.Hour), storeB)}, 0},
		{"claimed by this lineage", []keyfactor.Certificate{newer(2002, now.Add(-time.Hour), storeB)}, 2002},
		{"another subject", []keyfactor.Certificate{edited(newer(2000, now.Add(-time.Hour), storeB), func(c *keyfactor.Certificate) { c.IssuedDN = "CN=other" })}, 0},
		{"subject in another case", []keyfactor.Certificate{edited(newer(2000, now.Add(-time.Hour), storeB), func(c *keyfactor.Certificate) { c.IssuedDN = strings.ToUpper(subject) })}, 2000},
		{"revoked", []keyfactor.Certificate{edited(newer(2000, now.Add(-time.Hour), storeB), func(c *keyfactor.Certificate) { c.CertState = certStateRevoked })}, 0},
		{"already expired", []keyfactor.Certificate{edited(newer(2000, now.Add(-time.Hour), storeB), func(c *keyfactor.Certificate) { c.NotAfter = now.Add(-time.Second) })}, 0},
		{"the newest of two", []keyfactor.Certificate{newer(2000, now.Add(-48*time.Hour), storeB), newer(2003, now.Add(-time.Hour), storeB)}, 2003},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := storeHolder(old, 1001, []string{storeA, storeB}, now, claimedBy, tc.found)
			id := 0
			if got != nil {
				id = got.Id
			}
			if id != tc.want {
				t.Errorf("holder %d, want %d", id, tc.want)
			}
		})
	}
}
