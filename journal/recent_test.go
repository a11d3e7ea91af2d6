package journal

import (
	"errors"
	"sync/atomic"
	"testing"
)

// The runner writes a lineage three times in quick succession (Begin, the
// Renew answer, the deploy outcome); once Begin is committed the later
// writes and reads find the lineage in memory, not in the file.
func TestRecentLineagesAreReadFromMemory(t *testing.T) {
	j := newJournal(t)
	r := begin(t, j, 5, 5)
	reads := j.fileReads.Load()
	if err := j.UpdateAsync(5, r.Seq, func(x *Renewal) { x.State, x.NewCertificateID = StateRenewed, 50 }); err != nil {
		t.Fatal(err)
	}
	if err := j.Update(5, r.Seq, func(x *Renewal) { x.Stores = map[string]StoreState{"s1": {Status: StoreJobCreated, At: t0}} }); err != nil {
		t.Fatal(err)
	}
	got := lineage(t, j, 50).Renewals[0]
	if n := j.fileReads.Load() - reads; n != 0 {
		t.Errorf("%d lineage reads from the file, want none", n)
	}
	if got.State != StateRenewed || got.NewCertificateID != 50 || got.Stores["s1"].Status != StoreJobCreated {
		t.Errorf("lineage = %+v, want renewed as 50 with store s1", got)
	}
	if again := lineage(t, reopen(t, j), 50).Renewals[0]; again.NewCertificateID != 50 || again.Stores["s1"].Status != StoreJobCreated {
		t.Errorf("after reopening: %+v", again)
	}
}

// Memory keeps a bounded number of lineages: the oldest is read from the
// file again, as it was committed.
func TestRecentLineagesForgetTheOldest(t *testing.T) {
	j := newJournal(t)
	j.mu.Lock()
	j.recent = newRecentLineages(2)
	j.mu.Unlock()
	for _, id := range []int{1, 2, 3} {
		begin(t, j, id, id)
	}
	reads := j.fileReads.Load()
	lineage(t, j, 3)
	lineage(t, j, 2)
	if n := j.fileReads.Load() - reads; n != 0 {
		t.Errorf("%d file reads for the two newest, want none", n)
	}
	if l := lineage(t, j, 1); !l.Renewals[0].InFlight() || l.Renewals[0].OldCertificateID != 1 {
		t.Errorf("lineage 1 = %+v", l)
	}
	if n := j.fileReads.Load() - reads; n != 1 {
		t.Errorf("%d file reads for the oldest, want 1", n)
	}
}

// A commit that fails leaves in memory nothing the file does not hold: here
// the renewal's answer was committed while its deploy outcome was queued,
// then the disk refused the outcome; a read must show the answer, not the
// older state memory held before.
func TestRecentLineagesAfterAFailedCommit(t *testing.T) {
	j := newJournal(t)
	r := begin(t, j, 7, 7)
	errDisk := errors.New("disk refused the write")
	var commits atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	j.beforeCommit = func() error {
		switch commits.Add(1) {
		case 1:
			close(entered)
			<-release
		case 2:
			return errDisk
		}
		return nil
	}
	if err := j.UpdateAsync(7, r.Seq, func(x *Renewal) { x.State, x.NewCertificateID = StateRenewed, 70 }); err != nil {
		t.Fatal(err)
	}
	<-entered
	if err := j.UpdateAsync(7, r.Seq, func(x *Renewal) { x.Stores = map[string]StoreState{"s1": {Status: StoreJobCreated, At: t0}} }); err != nil {
		t.Fatal(err)
	}
	queued(j, 1)
	close(release)
	// A synced write after the failure returns once the writer has dealt
	// with it.
	if err := j.Update(7, r.Seq, func(x *Renewal) {}); !errors.Is(err, errDisk) {
		t.Fatalf("Update after the failed commit: %v, want %v", err, errDisk)
	}
	got := lineage(t, j, 7).Renewals[0]
	if got.State != StateRenewed || got.NewCertificateID != 70 || got.Stores != nil {
		t.Errorf("lineage = %+v, want the committed answer (renewed as 70, no stores)", got)
	}
}
