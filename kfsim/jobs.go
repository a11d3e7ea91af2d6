package kfsim

import (
	"container/heap"
	"strings"
	"time"
)

// Job history values. The v10 OpenAPI file declares Result 0–4 and Status
// 0–5 without names; Keyfactor's documentation (v11.3, v11.4, Hosted v24.4)
// and the terraform provider's synthetic cassettes name Result 2 success,
// Result 4 failure and Status 3 completed. No recording of a real Command
// shows them, so they stay unconfirmed on the wire.
const (
	jobResultSuccess = 2
	jobResultFailure = 4
	jobStatusDone    = 3
	// firstJobHistoryID keeps history ids apart from other ids in tests.
	firstJobHistoryID = 1001
)

// job is a management job: its ledger view plus what running it needs.
type job struct {
	Job
	jobTime *time.Time // requested JobTime, to schedule after approval
}

// event is something due at a time: a job to run, or the location of a job
// that succeeded to become visible.
type event struct {
	at        time.Time
	seq       uint64
	j         *job
	inventory bool
}

// eventHeap orders events by time, then by the order they were made, so the
// world's history does not depend on when anyone looked.
type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(a, b int) bool {
	if !h[a].at.Equal(h[b].at) {
		return h[a].at.Before(h[b].at)
	}
	return h[a].seq < h[b].seq
}
func (h eventHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// jobQueue holds every job (in creation order, for the ledger), the queue
// of due events, the jobs waiting for an approval by request id, and the
// job history.
type jobQueue struct {
	all      []*job
	due      eventHeap
	seq      uint64         // events pushed so far, the tie-break of equal times
	waiting  map[int][]*job // request id → jobs awaiting its approval
	history  []wireJobHistory
	byJobID  map[string][]int // lowercase job id → history indexes
	nextHist int64
}

func (q *jobQueue) init() {
	q.waiting = map[int][]*job{}
	q.byJobID = map[string][]int{}
	q.nextHist = firstJobHistoryID
}

func (q *jobQueue) push(at time.Time, j *job, inventory bool) {
	q.seq++
	heap.Push(&q.due, event{at: at, seq: q.seq, j: j, inventory: inventory})
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
	}
	if jobTime != nil {
		t := jobTime.UTC()
		j.jobTime = &t
	}
	s.jobs.all = append(s.jobs.all, j)
	if certID != 0 {
		s.schedule(j, now)
	} else {
		s.jobs.waiting[requestID] = append(s.jobs.waiting[requestID], j)
	}
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
		if rec := s.world.byID[j.CertificateId]; rec != nil {
			// Like the K8S store type in the 25.4 recordings, an entry
			// without an alias is named after the thumbprint.
			j.Alias = rec.Thumbprint
		}
	}
	s.jobs.push(j.RunAt, j, false)
}

// releaseWaiting schedules (certID set) or cancels (message set) the jobs
// waiting for request requestID. Callers hold s.mu.
func (s *Server) releaseWaiting(requestID, certID int, now time.Time, cancel string) {
	for _, j := range s.jobs.waiting[requestID] {
		if cancel != "" {
			j.State, j.Message = JobCancelled, cancel
			continue
		}
		j.CertificateId = certID
		s.schedule(j, now)
	}
	delete(s.jobs.waiting, requestID)
}

// settle runs every event whose time has come, in order; the cost is that
// of the due events only. Callers hold s.mu.
func (s *Server) settle(now time.Time) {
	for len(s.jobs.due) > 0 && !now.Before(s.jobs.due[0].at) {
		e := heap.Pop(&s.jobs.due).(event)
		if e.inventory {
			s.inventoryDone(e.j)
			continue
		}
		s.run(e.j)
	}
}

// run finishes one job on its orchestrator: it fails when the store is told
// to fail, is not approved or has no orchestrator, or when the alias is held
// by another certificate and overwrite is not set; otherwise it succeeds
// and its location becomes visible after the inventory delay. Either way it
// gets a job history entry.
func (s *Server) run(j *job) {
	st := s.stores[j.StoreId]
	rec := s.world.byID[j.CertificateId]
	fail := func(msg string) {
		j.State, j.Message = JobFailed, msg
		s.recordHistory(j, st, jobResultFailure, msg)
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
	case st.Unapproved:
		fail("The certificate store " + st.Id + " is not approved; the job cannot run.")
		return
	case st.NoAgent:
		fail("No orchestrator is assigned to the certificate store " + st.Id + ".")
		return
	}
	if holder := s.world.holder(st.Id, j.Alias); holder != 0 && holder != rec.Id && !j.Overwrite {
		fail("alias exists, overwrite not set")
		return
	}
	j.State, j.Message = JobSucceeded, ""
	s.recordHistory(j, st, jobResultSuccess, "Job completed successfully")
	j.InventoryAt = j.RunAt.Add(s.inventory)
	if s.inventory == 0 {
		s.inventoryDone(j)
		return
	}
	s.jobs.push(j.InventoryAt, j, true)
}

// inventoryDone makes a succeeded job's entry visible: the certificate is
// at (store, alias), and whatever held that alias is not.
func (s *Server) inventoryDone(j *job) {
	st := s.stores[j.StoreId]
	rec := s.world.byID[j.CertificateId]
	if st == nil || rec == nil {
		return
	}
	s.world.place(rec, st, j.Alias)
}

// recordHistory adds the job history entry of a job that ran.
func (s *Server) recordHistory(j *job, st *Store, result int, message string) {
	h := wireJobHistory{
		JobHistoryId:   s.jobs.nextHist,
		JobId:          j.Id,
		Schedule:       map[string]any{"Immediate": true},
		OperationStart: j.RunAt,
		OperationEnd:   j.RunAt,
		Message:        message,
		Result:         result,
		Status:         jobStatusDone,
	}
	if j.jobTime != nil {
		h.Schedule = map[string]any{"ExactlyOnce": map[string]any{"Time": j.jobTime.Format(time.RFC3339)}}
	}
	if st != nil {
		h.AgentMachine, h.ClientMachine, h.StorePath = st.ClientMachine, st.ClientMachine, st.StorePath
		// The synthetic cassettes name the job type after the store type:
		// "K8STLSSecrManagement".
		if t := s.storeTypes[st.CertStoreType]; t != nil {
			h.JobType = t.ShortName + "Management"
		} else {
			h.JobType = "Management"
		}
	}
	s.jobs.nextHist++
	k := strings.ToLower(j.Id)
	s.jobs.byJobID[k] = append(s.jobs.byJobID[k], len(s.jobs.history))
	s.jobs.history = append(s.jobs.history, h)
}

// historyLookup answers an indexed `-eq` clause of a job history query.
func (s *Server) historyLookup(c clause) ([]int, bool) {
	switch c.field.name {
	case "JobId":
		return s.jobs.byJobID[c.str], true
	case "JobHistoryId":
		i := int(c.num - firstJobHistoryID)
		if i >= 0 && i < len(s.jobs.history) {
			return []int{i}, true
		}
		return nil, true
	}
	return nil, false
}

func historyValue(h *wireJobHistory, f string) fieldValue {
	switch f {
	case "JobHistoryId":
		return fieldValue{num: h.JobHistoryId}
	case "JobId":
		return fieldValue{str: h.JobId}
	case "ClientMachine":
		return fieldValue{str: h.ClientMachine}
	case "AgentMachine":
		return fieldValue{str: h.AgentMachine}
	case "StorePath":
		return fieldValue{str: h.StorePath}
	case "JobType":
		return fieldValue{str: h.JobType}
	case "Result":
		return fieldValue{num: int64(h.Result)}
	case "Status":
		return fieldValue{num: int64(h.Status)}
	case "OperationStart":
		return fieldValue{tm: h.OperationStart}
	case "OperationEnd":
		return fieldValue{tm: h.OperationEnd}
	}
	return fieldValue{null: true}
}

// jobHistory answers GET /OrchestratorJobs/JobHistory: one entry per job
// that ran, pq.* or unprefixed paging, sorted by JobHistoryId unless asked
// otherwise.
func (s *Server) jobHistory(c *call) response {
	if !hasPermission(c.perms, PermAgentsRead, nil) {
		return forbidden(PermAgentsRead)
	}
	lq, errResp := s.listQuery(c, jobHistoryFields, "JobHistoryId", "pq")
	if errResp != nil {
		return *errResp
	}
	idx, indexed := lq.q.candidates(s.historyLookup)
	var found []*wireJobHistory
	visit := func(i int) {
		h := &s.jobs.history[i]
		if lq.q.matches(func(f string) fieldValue { return historyValue(h, f) }) {
			found = append(found, h)
		}
	}
	if indexed {
		for _, i := range sortedIDs(idx) {
			visit(i)
		}
	} else {
		for i := range s.jobs.history {
			visit(i)
		}
	}
	sortPage(found, lq, historyValue, "JobHistoryId")
	start, end := pageOf(len(found), lq.page, lq.limit)
	out := make([]wireJobHistory, 0, end-start)
	for _, h := range found[start:end] {
		out = append(out, *h)
	}
	return listResponse(out, len(found))
}
