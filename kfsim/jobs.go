package kfsim

import (
	"sort"
	"strings"
	"time"

	"runner/keyfactor"
)

// job is a management job: its ledger view plus what running it needs.
type job struct {
	Job
	seq     int        // creation order, the tie-break for equal RunAt
	jobTime *time.Time // requested JobTime, to schedule after approval
}

// newJob creates a job for certificate certID (0 while its request awaits
// approval) and schedules it unless it must wait. Callers hold s.mu.
func (s *Server) newJob(now time.Time, storeID string, certID, requestID int, alias string, overwrite bool, jobTime *time.Time) *job {
	j := &job{
		Job: Job{
			Id:            s.randomGUID(),
			StoreId:       storeID,
			CertificateId: certID,
			RequestId:     requestID,
			Alias:         alias,
			Overwrite:     overwrite,
			CreatedAt:     now,
			State:         JobAwaitingApproval,
		},
		seq: len(s.jobs),
	}
	if jobTime != nil {
		t := jobTime.UTC()
		j.jobTime = &t
	}
	if certID != 0 {
		s.schedule(j, now)
	}
	s.jobs = append(s.jobs, j)
	return j
}

// schedule sets a job's run time: JobTime if it is in the future, else now,
// plus the configured delay (the orchestrator picking it up).
func (s *Server) schedule(j *job, now time.Time) {
	start := now
	if j.jobTime != nil && j.jobTime.After(now) {
		start = *j.jobTime
	}
	j.RunAt = start.Add(s.delay)
	j.State = JobScheduled
	if j.Alias == "" {
		if rec := s.certs[j.CertificateId]; rec != nil {
			// Like the K8S store type in the 25.4 recordings, an entry
			// without an alias is named after the thumbprint.
			j.Alias = rec.cert.Thumbprint
		}
	}
}

// settle runs every scheduled job whose time has come, oldest first, so the
// outcome does not depend on when anyone looked. Callers hold s.mu.
func (s *Server) settle(now time.Time) {
	var due []*job
	for _, j := range s.jobs {
		if j.State == JobScheduled && !now.Before(j.RunAt) {
			due = append(due, j)
		}
	}
	sort.SliceStable(due, func(a, b int) bool {
		if !due[a].RunAt.Equal(due[b].RunAt) {
			return due[a].RunAt.Before(due[b].RunAt)
		}
		return due[a].seq < due[b].seq
	})
	for _, j := range due {
		s.run(j)
	}
}

// run finishes one job: it fails when the store is told to fail, or when the
// alias is taken by another certificate and overwrite is not set; otherwise
// the certificate gains a Location (what inventory would find).
func (s *Server) run(j *job) {
	st := s.stores[j.StoreId]
	rec := s.certs[j.CertificateId]
	fail := func(msg string) {
		j.State, j.Message = JobFailed, msg
	}
	switch {
	case st == nil:
		fail("store not found")
		return
	case rec == nil:
		fail("certificate not found")
		return
	case s.failJobs[st.Id] != "":
		fail(s.failJobs[st.Id])
		return
	case st.FailJobs != "":
		fail(st.FailJobs)
		return
	}
	for _, id := range s.sortedCertIDs() {
		if id == rec.cert.Id {
			continue
		}
		other := s.certs[id]
		i := locationIndex(other.cert.Locations, st.Id, j.Alias)
		if i < 0 {
			continue
		}
		if !j.Overwrite {
			fail("alias exists, overwrite not set")
			return
		}
		other.cert.Locations = append(other.cert.Locations[:i:i], other.cert.Locations[i+1:]...)
	}
	if locationIndex(rec.cert.Locations, st.Id, j.Alias) < 0 {
		rec.cert.Locations = append(rec.cert.Locations, keyfactor.Location{
			StoreMachine: st.ClientMachine,
			StorePath:    st.StorePath,
			StoreType:    st.CertStoreType,
			Alias:        j.Alias,
			CertStoreId:  st.Id,
		})
	}
	j.State, j.Message = JobSucceeded, ""
}

// locationIndex finds the entry with alias in store storeID, -1 if none.
// Aliases are compared without regard to case, as most store types do.
func locationIndex(locs []keyfactor.Location, storeID, alias string) int {
	for i, l := range locs {
		if strings.EqualFold(l.CertStoreId, storeID) && strings.EqualFold(l.Alias, alias) {
			return i
		}
	}
	return -1
}
