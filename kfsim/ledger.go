package kfsim

import (
	"encoding/json"
	"net/http"
	"time"
)

// Ledger is the ground truth of what the simulator did: every request, every
// renewal, every deploy call and every management job, in order.
type Ledger struct {
	Requests []Request
	Renewals []Renewal
	Deploys  []Deploy
	Jobs     []Job
}

// Request is one HTTP request as the simulator saw it. Status is what the
// client was sent: 0 when the connection was dropped or the client went
// away. Fault names the injected fault kind, "" if none.
type Request struct {
	At                               time.Time
	Method, Path, Endpoint, Identity string
	Status                           int
	Fault                            string
}

// Renewal is one committed POST /Enrollment/Renew. NewCertificateId is 0
// while the request awaits approval. ResponseLost means the renewal was
// committed but the client never got a usable answer (drop-after or
// malformed-json).
type Renewal struct {
	At                                            time.Time
	Identity                                      string
	OldCertificateId, NewCertificateId, RequestId int
	Pending, ResponseLost                         bool
}

// Deploy is one POST /Enrollment/PFX/Deploy that got past authentication,
// permissions and body validation. Refused says why the whole call was
// refused ("expired", "other user", "not staged"), "" if it was not.
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
	// "permission … missing for container 4", …); an addition to the
	// contract, for assertions.
	Reasons map[string]string
}

// Job states.
const (
	JobScheduled        = "scheduled"
	JobAwaitingApproval = "awaiting-approval"
	JobSucceeded        = "succeeded"
	JobFailed           = "failed"
)

// Job is one management job created by Deploy.
type Job struct {
	Id                       string
	StoreId                  string
	CertificateId, RequestId int
	Alias                    string
	Overwrite                bool
	CreatedAt, RunAt         time.Time
	State                    string // JobScheduled, JobAwaitingApproval, JobSucceeded, JobFailed
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
		Requests: append([]Request(nil), s.ledger.Requests...),
		Renewals: append([]Renewal(nil), s.ledger.Renewals...),
		Deploys:  make([]Deploy, len(s.ledger.Deploys)),
		Jobs:     make([]Job, len(s.jobs)),
	}
	for i, d := range s.ledger.Deploys {
		d.Stores = append([]string(nil), d.Stores...)
		d.Successful = append([]string(nil), d.Successful...)
		d.Failed = append([]string(nil), d.Failed...)
		if d.Reasons != nil {
			r := make(map[string]string, len(d.Reasons))
			for k, v := range d.Reasons {
				r[k] = v
			}
			d.Reasons = r
		}
		if d.JobTime != nil {
			t := *d.JobTime
			d.JobTime = &t
		}
		l.Deploys[i] = d
	}
	for i, j := range s.jobs {
		l.Jobs[i] = j.Job
	}
	return l
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
