package kfsim

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Ledger is the ground truth of what the simulator did: every request, every
// renewal, every deploy call and every management job, in order. Each entry
// is written before the answer it belongs to leaves the simulator, so a
// client that has seen an answer (or lost one) always finds it here.
type Ledger struct {
	Requests []Request
	Renewals []Renewal
	Deploys  []Deploy
	Jobs     []Job
	// UnknownRoutes are the requests to a route the simulator does not
	// serve (404) or to a known route with the wrong method (405): a client
	// calling what Command does not have is a bug to fix on one side.
	UnknownRoutes []Request
}

// Request is one HTTP request as the simulator saw it. Status is what the
// client was sent: 0 when the connection was dropped or reset, or the client
// went away. Fault names the injected fault kind, "" if none.
type Request struct {
	At                               time.Time
	Method, Path, Endpoint, Identity string
	Status                           int
	Fault                            string
}

// Renewal is one committed POST /Enrollment/Renew, stamped At the moment it
// was committed. NewCertificateId is 0 while the request awaits approval
// and for DENIED/FAILED dispositions; Disposition is the RequestDisposition
// answered (or, after Approve or Deny, the request's outcome). AnsweredAt is
// when the answer started on its way to the client, zero when the client
// never got a usable one: then ResponseLost is set (drop-after, reset-after,
// 500-after, malformed-json, a restart, a client gone during a slow body).
type Renewal struct {
	At, AnsweredAt                                time.Time
	Identity                                      string
	OldCertificateId, NewCertificateId, RequestId int
	Disposition                                   string
	Pending, Denied, ResponseLost                 bool
}

// Deploy is one POST /Enrollment/PFX/Deploy that got past authentication,
// permissions and body validation, stamped At the moment it was processed.
// Refused says why the whole call was refused ("expired", "other user", "not
// staged", "denied"), "" if it was not.
type Deploy struct {
	At                         time.Time
	Identity                   string
	CertificateId, RequestId   int
	Stores, Successful, Failed []string
	Refused                    string
	StagedAt                   time.Time
	StagedBy                   string
	Legacy                     bool
	JobTime                    *time.Time
	// Reasons says why each store in Failed failed ("store not found",
	// "permission … missing for container 4", "store type 5 requires an
	// alias", …).
	Reasons map[string]string
}

// Job states.
const (
	JobScheduled        = "scheduled"
	JobAwaitingApproval = "awaiting-approval"
	JobSucceeded        = "succeeded"
	JobFailed           = "failed"
	// JobCancelled is a job that waited for an approval that was denied.
	JobCancelled = "cancelled"
)

// Job is one management job created by Deploy. RunAt is when the
// orchestrator runs it; InventoryAt, for a job that succeeded, is when its
// location shows in Locations (RunAt plus Options.InventoryDelay).
type Job struct {
	Id                       string
	StoreId                  string
	CertificateId, RequestId int
	Alias                    string
	Overwrite                bool
	CreatedAt, RunAt         time.Time
	InventoryAt              time.Time
	State                    string // JobScheduled, JobAwaitingApproval, JobSucceeded, JobFailed, JobCancelled
	Message                  string
}

// Ledger returns a deep copy of the ledger, after settling jobs that are
// due.
func (s *Server) Ledger() Ledger {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(s.now())
	return s.ledgerCopy()
}

func (s *Server) ledgerCopy() Ledger {
	l := Ledger{
		Requests:      slices.Clone(s.ledger.Requests),
		Renewals:      slices.Clone(s.ledger.Renewals),
		Deploys:       make([]Deploy, len(s.ledger.Deploys)),
		Jobs:          make([]Job, len(s.jobs.all)),
		UnknownRoutes: slices.Clone(s.ledger.UnknownRoutes),
	}
	for i, d := range s.ledger.Deploys {
		d.Stores = slices.Clone(d.Stores)
		d.Successful = slices.Clone(d.Successful)
		d.Failed = slices.Clone(d.Failed)
		d.Reasons = maps.Clone(d.Reasons)
		if d.JobTime != nil {
			t := *d.JobTime
			d.JobTime = &t
		}
		l.Deploys[i] = d
	}
	for i, j := range s.jobs.all {
		l.Jobs[i] = j.Job
	}
	return l
}

// UnknownRoutes returns the requests made so far to routes the simulator
// does not serve (see Ledger.UnknownRoutes).
func (s *Server) UnknownRoutes() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ledger.UnknownRoutes)
}

// Reporter is the part of testing.TB that CheckNoUnknownRoutes needs; a
// *testing.T, *testing.B or testing.TB will do. kfsim declares it instead of
// importing package testing, which would then be linked into `runner sim`.
type Reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// CheckNoUnknownRoutes fails t (without stopping it) when any request went
// to a route the simulator does not serve, naming each: call it from a test
// helper's Cleanup so a client calling a route Command lacks cannot pass
// unnoticed.
func (s *Server) CheckNoUnknownRoutes(t Reporter) {
	t.Helper()
	unknown := s.UnknownRoutes()
	if len(unknown) == 0 {
		return
	}
	lines := make([]string, len(unknown))
	for i, r := range unknown {
		lines[i] = fmt.Sprintf("%s %s → %d", r.Method, r.Path, r.Status)
	}
	t.Errorf("kfsim: %d request(s) to routes the simulator does not serve (under %s):\n  %s",
		len(unknown), s.base, strings.Join(lines, "\n  "))
}

// serveLedger answers GET /_kfsim/ledger.
func (s *Server) serveLedger(w http.ResponseWriter) {
	b, err := json.Marshal(s.Ledger())
	if err != nil {
		http.Error(w, "encode ledger", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(b)
}
