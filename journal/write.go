package journal

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// A write is one change queued for the writer goroutine.
type write struct {
	root    int    // lineage written, 0 for a run record
	lineage []byte // the lineage's whole new value
	claim   []int  // certificate ids that now belong to root
	unclaim []int  // certificate ids that no longer belong to root
	run     []byte // a run record to append
	seq     uint64 // the highest Renewal.Seq the write uses
}

// A batch is the writes committed in one transaction; done is closed once
// it is committed (or failed), with err set before.
type batch struct {
	writes []write
	done   chan struct{}
	err    error
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

func (b *batch) wait() error {
	<-b.done
	return b.err
}

// write is the writer goroutine: it commits everything queued in one
// transaction, and while that syncs the next writes queue up for the next
// one. There is no delay to gather writes (bbolt's DB.Batch waits up to
// 10 ms, which made runs slower): a lone write is committed at once, and
// under load each sync carries every write that arrived during the last.
func (j *Journal) write() {
	defer close(j.writerDone)
	j.mu.Lock()
	for {
		for len(j.next.writes) == 0 && !j.closing {
			j.cond.Wait()
		}
		if len(j.next.writes) == 0 {
			j.mu.Unlock()
			return
		}
		b := j.next
		j.next, j.committing = newBatch(), b
		failed := j.failed
		j.mu.Unlock()

		if failed != nil {
			b.err = fmt.Errorf("journal %s: not written, an earlier commit failed: %w", j.path, failed)
		} else {
			b.err = j.commit(b.writes)
		}

		j.mu.Lock()
		for _, w := range b.writes {
			if w.root == 0 {
				continue
			}
			if b.err != nil {
				j.recent.drop(w.root) // the file holds what it held before
			}
			if l := j.live[w.root]; l != nil {
				if l.pending--; l.pending == 0 {
					delete(j.live, w.root)
					if b.err == nil {
						j.recent.put(w.root, l.lin)
					}
				}
			}
		}
		if b.err != nil && j.failed == nil {
			j.failed = b.err
		}
		j.committing = nil
		close(b.done)
		j.cond.Broadcast()
	}
}

// commit writes ws in one transaction, synced when it returns.
func (j *Journal) commit(ws []write) error {
	err := j.db.Update(func(tx *bolt.Tx) error {
		if j.beforeCommit != nil {
			if err := j.beforeCommit(); err != nil {
				return err
			}
		}
		lineages, index, runs := tx.Bucket(bucketLineages), tx.Bucket(bucketIndex), tx.Bucket(bucketRuns)
		var seq uint64
		appended := false
		for _, w := range ws {
			if w.lineage != nil {
				if err := lineages.Put(itob(w.root), w.lineage); err != nil {
					return err
				}
			}
			for _, id := range w.unclaim {
				if err := index.Delete(itob(id)); err != nil {
					return err
				}
			}
			for _, id := range w.claim {
				if err := index.Put(itob(id), itob(w.root)); err != nil {
					return err
				}
			}
			if w.run != nil {
				if err := appendRun(runs, w.run); err != nil {
					return err
				}
				appended = true
			}
			seq = max(seq, w.seq)
		}
		if seq > 0 {
			if err := tx.Bucket(bucketMeta).Put(keySeq, binary.BigEndian.AppendUint64(nil, seq)); err != nil {
				return err
			}
		}
		if appended {
			return pruneRuns(runs)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit journal %s: %w", j.path, err)
	}
	j.commits.Add(1)
	return nil
}

func appendRun(runs *bolt.Bucket, v []byte) error {
	seq, err := runs.NextSequence()
	if err != nil {
		return err
	}
	return runs.Put(binary.BigEndian.AppendUint64(nil, seq), v)
}

// pruneRuns drops the oldest run records beyond maxRuns. Keys are sequence
// numbers, so the oldest come first.
func pruneRuns(runs *bolt.Bucket) error {
	seq := runs.Sequence()
	c := runs.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k)+maxRuns <= seq; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// usableLocked returns why nothing may be written, or nil. j.mu is held.
func (j *Journal) usableLocked() error {
	if j.closing {
		return fmt.Errorf("journal %s is closed", j.path)
	}
	if j.failed != nil {
		return fmt.Errorf("journal %s: nothing more is written after a failed commit: %w", j.path, j.failed)
	}
	return nil
}

// lineageLocked returns the newest state of root's lineage: the live one,
// else the committed one (from memory when it was committed lately). j.mu is held for writing, so no write of root can
// be queued meanwhile, and a lineage with writes in flight is always live.
func (j *Journal) lineageLocked(root int) (Lineage, bool, error) {
	if l, ok := j.inMemoryLocked(root); ok {
		return l, true, nil
	}
	return j.read(root)
}

// stageLocked makes lin the live state of its lineage and queues its write,
// moving the in-memory claims at once. j.mu is held.
func (j *Journal) stageLocked(lin Lineage, before []int) (*batch, error) {
	v, err := encodeLineage(lin)
	if err != nil {
		return nil, err
	}
	after := lin.certificates()
	w := write{root: lin.Root, lineage: v}
	for _, id := range after {
		if _, ok := j.index.get(id); !ok {
			w.claim = append(w.claim, id)
			j.index.set(id, lin.Root)
		}
	}
	for _, id := range before {
		if !slices.Contains(after, id) {
			w.unclaim = append(w.unclaim, id)
			j.index.remove(id)
		}
	}
	for _, r := range lin.Renewals {
		w.seq = max(w.seq, r.Seq)
	}
	l := j.live[lin.Root]
	if l == nil {
		l = &liveLineage{}
		j.live[lin.Root] = l
	}
	l.lin = lin
	l.pending++
	j.next.writes = append(j.next.writes, w)
	j.cond.Broadcast()
	return j.next, nil
}

// certificates returns every certificate id of the lineage, root first.
func (l Lineage) certificates() []int {
	ids := []int{l.Root}
	for _, r := range l.Renewals {
		for _, id := range []int{r.OldCertificateID, r.NewCertificateID} {
			if id > 0 && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// checkClaimsLocked fails when one of ids belongs to another lineage than
// root. j.mu is held.
func (j *Journal) checkClaimsLocked(root int, ids ...int) error {
	for _, id := range ids {
		if owner, ok := j.index.get(id); ok && owner != root && id > 0 {
			return fmt.Errorf("certificate %d belongs to lineage %d: %w", id, owner, ErrClaimed)
		}
	}
	return nil
}

func checkState(r Renewal) error {
	switch r.State {
	case StateInFlight, StateRenewed, StatePending, StateDenied, StateFailed, StateAbandoned:
	default:
		return fmt.Errorf("unknown state %q", r.State)
	}
	for _, id := range []int{r.OldCertificateID, r.NewCertificateID, r.RequestID} {
		if id < 0 {
			return fmt.Errorf("negative id %d", id)
		}
	}
	return nil
}

// Begin records that a renewal of r.OldCertificateID is about to be sent, as
// the newest renewal of the lineage rooted at root (created when it does not
// exist: root is then the certificate it starts from). Kind and State are
// set (KindRenewal, StateInFlight), StartedAt defaults to now, and Seq is
// assigned. It returns after the record is synced to disk, so the caller may
// then send Renew knowing that a crash will not make it forget the attempt.
// Its certificates are claimed (ClaimedBy) from the moment it is called.
//
// It fails with ErrClaimed when root or the old certificate belongs to
// another lineage (look the root up with Lineage first), and with
// ErrInFlight while an earlier renewal of the lineage is in flight.
func (j *Journal) Begin(root int, r Renewal) (Renewal, error) {
	r.Kind, r.State = KindRenewal, StateInFlight
	if r.StartedAt.IsZero() {
		r.StartedAt = j.now()
	}
	r, b, err := j.add(root, r)
	if err == nil {
		err = b.wait()
	}
	if err != nil {
		return Renewal{}, fmt.Errorf("begin renewal of certificate %d in lineage %d: %w", r.OldCertificateID, root, err)
	}
	return r, nil
}

// Adopt records r.NewCertificateID, a newer certificate found in the stores
// of r.OldCertificateID, as the newest step of the lineage rooted at root,
// renewed by nobody here. Kind is set to KindAdoption, State defaults to
// StateRenewed and StartedAt to now, and Seq is assigned. Like Begin it
// claims at once, waits for the commit, and fails with ErrClaimed or
// ErrInFlight.
func (j *Journal) Adopt(root int, r Renewal) (Renewal, error) {
	r.Kind = KindAdoption
	if r.State == "" {
		r.State = StateRenewed
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = j.now()
	}
	var b *batch
	var err error
	if r.NewCertificateID <= 0 {
		err = errors.New("no adopted certificate")
	} else {
		r, b, err = j.add(root, r)
	}
	if err == nil {
		err = b.wait()
	}
	if err != nil {
		return Renewal{}, fmt.Errorf("adopt certificate %d into lineage %d: %w", r.NewCertificateID, root, err)
	}
	return r, nil
}

// add appends r to root's lineage and queues the write.
func (j *Journal) add(root int, r Renewal) (Renewal, *batch, error) {
	if root <= 0 {
		return r, nil, fmt.Errorf("lineage root %d: want a certificate id", root)
	}
	if r.OldCertificateID <= 0 {
		return r, nil, errors.New("no old certificate")
	}
	if err := checkState(r); err != nil {
		return r, nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usableLocked(); err != nil {
		return r, nil, err
	}
	if err := j.checkClaimsLocked(root, root, r.OldCertificateID, r.NewCertificateID); err != nil {
		return r, nil, err
	}
	lin, found, err := j.lineageLocked(root)
	if err != nil {
		return r, nil, err
	}
	if !found {
		lin = Lineage{Root: root}
	}
	for _, prev := range lin.Renewals {
		if prev.InFlight() {
			return r, nil, fmt.Errorf("renewal %d of certificate %d, begun %s: %w",
				prev.Seq, prev.OldCertificateID, prev.StartedAt.Format("2006-01-02T15:04:05Z07:00"), ErrInFlight)
		}
	}
	before := lin.certificates()
	j.seq++
	r.Seq = j.seq
	r = r.normalized()
	lin.Renewals = append(lin.Renewals, r)
	b, err := j.stageLocked(lin, before)
	return r.clone(), b, err
}

// Update changes the renewal seq of the lineage rooted at root and waits for
// the commit; under group commit that costs a share of one sync. change gets
// a copy and must not call the Journal; it may not alter Seq or Kind. A new
// certificate it sets is claimed at once, and the change fails with
// ErrClaimed when that certificate belongs to another lineage.
func (j *Journal) Update(root int, seq uint64, change func(*Renewal)) error {
	b, err := j.modify(root, seq, func(r *Renewal) error { change(r); return nil })
	if err == nil {
		err = b.wait()
	}
	if err != nil {
		return fmt.Errorf("update renewal %d of lineage %d: %w", seq, root, err)
	}
	return nil
}

// UpdateAsync is Update without waiting for the commit: the change is
// visible (Lineage, ClaimedBy) when it returns, and committed with the next
// transaction. For what need not be durable at once: the Renew answer (a
// crash before the deploy is settled by the next run's search, so the
// worker goes on to Deploy without a sync in between) and the deploy
// outcome (the next run reads the stores). A failed commit is
// returned by the next Begin, Adopt, Update or RecordRun, and by Close.
func (j *Journal) UpdateAsync(root int, seq uint64, change func(*Renewal)) error {
	if _, err := j.modify(root, seq, func(r *Renewal) error { change(r); return nil }); err != nil {
		return fmt.Errorf("update renewal %d of lineage %d: %w", seq, root, err)
	}
	return nil
}

// Abandon marks the in-flight renewal seq of root's lineage abandoned, for
// when Command surely did not process it (the request was refused before it
// was sent, or a search found nothing it issued). It stays in the history;
// Lineage.Latest skips it. A renewal that is not in flight may have taken
// effect and is never abandoned: that fails.
func (j *Journal) Abandon(root int, seq uint64) error {
	b, err := j.modify(root, seq, func(r *Renewal) error {
		if !r.InFlight() {
			return fmt.Errorf("it is %s, not in flight, and may have taken effect", r.State)
		}
		r.State = StateAbandoned
		return nil
	})
	if err == nil {
		err = b.wait()
	}
	if err != nil {
		return fmt.Errorf("abandon renewal %d of lineage %d: %w", seq, root, err)
	}
	return nil
}

// modify applies change to one renewal and queues the write.
func (j *Journal) modify(root int, seq uint64, change func(*Renewal) error) (*batch, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usableLocked(); err != nil {
		return nil, err
	}
	lin, found, err := j.lineageLocked(root)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(lin.Renewals, func(r Renewal) bool { return r.Seq == seq })
	if !found || i < 0 {
		return nil, errors.New("no such renewal recorded")
	}
	r := lin.Renewals[i].clone()
	if err := change(&r); err != nil {
		return nil, err
	}
	if r.Seq != seq || r.Kind != lin.Renewals[i].Kind {
		return nil, errors.New("a change may not alter Seq or Kind")
	}
	if err := checkState(r); err != nil {
		return nil, err
	}
	if err := j.checkClaimsLocked(root, r.OldCertificateID, r.NewCertificateID); err != nil {
		return nil, err
	}
	before := lin.certificates()
	lin.Renewals[i] = r.normalized()
	return j.stageLocked(lin, before)
}

// RecordRun appends r to the run history, dropping the oldest records
// beyond the last 1000, and waits for the commit.
func (j *Journal) RecordRun(r RunRecord) error {
	v, err := json.Marshal(storedRun{
		Start: utc(r.Start), End: utc(r.End), PlanFile: r.PlanFile, Counts: r.Counts, Interrupted: r.Interrupted,
	})
	if err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	j.mu.Lock()
	err = j.usableLocked()
	b := j.next
	if err == nil {
		b.writes = append(b.writes, write{run: v})
		j.cond.Broadcast()
	}
	j.mu.Unlock()
	if err == nil {
		err = b.wait()
	}
	if err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	return nil
}
