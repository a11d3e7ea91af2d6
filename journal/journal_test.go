package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)

const testCommand = "https://command.example.com/KeyfactorAPI"

func testOptions() Options {
	return Options{Command: testCommand, Now: func() time.Time { return t0 }}
}

func openT(t testing.TB, path string) *Journal {
	t.Helper()
	j, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func newJournal(t testing.TB) *Journal {
	t.Helper()
	return openT(t, filepath.Join(t.TempDir(), "state.db"))
}

func reopen(t testing.TB, j *Journal) *Journal {
	t.Helper()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return openT(t, j.Path())
}

func begin(t testing.TB, j *Journal, root, old int) Renewal {
	t.Helper()
	r, err := j.Begin(root, Renewal{OldCertificateID: old, Subject: fmt.Sprintf("CN=app%d.example.com", root)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func renewed(t testing.TB, j *Journal, root int, seq uint64, newID int) {
	t.Helper()
	if err := j.Update(root, seq, func(r *Renewal) {
		r.State, r.NewCertificateID, r.RenewedAt = StateRenewed, newID, t0.Add(time.Second)
	}); err != nil {
		t.Fatal(err)
	}
}

func lineage(t testing.TB, j *Journal, certID int) Lineage {
	t.Helper()
	l, ok, err := j.Lineage(certID)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("no lineage for certificate %d", certID)
	}
	return l
}

func TestLineageFromAnyCertificate(t *testing.T) {
	j := newJournal(t)
	// The nightly plan renews 100 into 200; a later night renews 200 into
	// 300; a one-off plan names 300, a failed plan 200.
	r1 := begin(t, j, 100, 100)
	renewed(t, j, 100, r1.Seq, 200)
	r2 := begin(t, j, 100, 200)
	renewed(t, j, 100, r2.Seq, 300)
	other := begin(t, j, 500, 500)

	check := func(t *testing.T, j *Journal) {
		for _, id := range []int{100, 200, 300} {
			l := lineage(t, j, id)
			if l.Root != 100 || len(l.Renewals) != 2 || l.Renewals[0].Seq != r1.Seq || l.Renewals[1].Seq != r2.Seq {
				t.Errorf("Lineage(%d) = %+v, want root 100 with renewals %d then %d", id, l, r1.Seq, r2.Seq)
			}
			if root, ok := j.ClaimedBy(id); !ok || root != 100 {
				t.Errorf("ClaimedBy(%d) = %d, %v; want 100", id, root, ok)
			}
		}
		if l := lineage(t, j, 500); l.Root != 500 || len(l.Renewals) != 1 || l.Renewals[0].Seq != other.Seq {
			t.Errorf("Lineage(500) = %+v", l)
		}
		if _, ok, err := j.Lineage(999); ok || err != nil {
			t.Errorf("Lineage(999): ok %v, err %v; want none", ok, err)
		}
		if _, ok := j.ClaimedBy(999); ok {
			t.Error("ClaimedBy(999) claims an unknown certificate")
		}
	}
	t.Run("before reopen", func(t *testing.T) { check(t, j) })
	j = reopen(t, j)
	t.Run("after reopen", func(t *testing.T) { check(t, j) })
	// Sequence numbers stay unique across a reopen.
	if r := begin(t, j, 700, 700); r.Seq <= other.Seq {
		t.Errorf("seq after reopen = %d, want > %d", r.Seq, other.Seq)
	}
}

func TestRoundTripAcrossReopen(t *testing.T) {
	// The directory does not exist yet: Open creates it.
	path := filepath.Join(t.TempDir(), "state", "nested", "command.db")
	j := openT(t, path)

	est := time.FixedZone("EST", -5*3600)
	r, err := j.Begin(1234, Renewal{OldCertificateID: 1234, Subject: "CN=www.example.com, O=Example", StartedAt: t0.In(est)})
	if err != nil {
		t.Fatal(err)
	}
	err = j.Update(1234, r.Seq, func(r *Renewal) {
		r.State, r.NewCertificateID, r.RequestID, r.RenewedAt = StateRenewed, 5678, 91, t0.Add(2*time.Second).In(est)
		r.Stores = map[string]StoreState{
			"store-a": {Status: StoreJobCreated, At: t0.Add(3 * time.Second)},
			"store-b": {Status: StoreFailed, At: t0.Add(3 * time.Second).In(est), Detail: "access denied"},
		}
		r.Message, r.Orphaned = "staged", true
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Lineage{Root: 1234, Renewals: []Renewal{{
		Seq: r.Seq, Kind: KindRenewal, State: StateRenewed,
		OldCertificateID: 1234, Subject: "CN=www.example.com, O=Example",
		StartedAt: t0, NewCertificateID: 5678, RequestID: 91, RenewedAt: t0.Add(2 * time.Second),
		Message: "staged", Orphaned: true,
		Stores: map[string]StoreState{
			"store-a": {Status: StoreJobCreated, At: t0.Add(3 * time.Second)},
			"store-b": {Status: StoreFailed, At: t0.Add(3 * time.Second), Detail: "access denied"},
		},
	}}}
	if got := lineage(t, j, 5678); !reflect.DeepEqual(got, want) {
		t.Errorf("before reopen\n got %+v\nwant %+v", got, want)
	}
	j = reopen(t, j)
	if got := lineage(t, j, 5678); !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen\n got %+v\nwant %+v", got, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}
}

func TestLineageIsACopy(t *testing.T) {
	j := newJournal(t)
	r := begin(t, j, 1, 1)
	if err := j.Update(1, r.Seq, func(r *Renewal) { r.Stores = map[string]StoreState{"s": {Status: StoreFailed}} }); err != nil {
		t.Fatal(err)
	}
	l := lineage(t, j, 1)
	l.Renewals[0].Stores["s"] = StoreState{Status: StoreVerified}
	l.Renewals[0].State = StateDenied
	if got := lineage(t, j, 1).Renewals[0]; got.Stores["s"].Status != StoreFailed || got.State != StateInFlight {
		t.Errorf("changing a returned lineage changed the journal: %+v", got)
	}
}

func TestAddRefuses(t *testing.T) {
	tests := []struct {
		name   string
		do     func(j *Journal) error
		wantIs error
		want   string
	}{
		{"root belongs to another lineage", func(j *Journal) error {
			_, err := j.Begin(200, Renewal{OldCertificateID: 200})
			return err
		}, ErrClaimed, "certificate 200 belongs to lineage 100"},
		{"old certificate belongs to another lineage", func(j *Journal) error {
			_, err := j.Begin(300, Renewal{OldCertificateID: 200})
			return err
		}, ErrClaimed, "certificate 200 belongs to lineage 100"},
		{"earlier renewal in flight", func(j *Journal) error {
			_, err := j.Begin(500, Renewal{OldCertificateID: 500})
			return err
		}, ErrInFlight, "renewal 2 of certificate 500"},
		{"adoption while in flight", func(j *Journal) error {
			_, err := j.Adopt(500, Renewal{OldCertificateID: 500, NewCertificateID: 501})
			return err
		}, ErrInFlight, "adopt certificate 501 into lineage 500"},
		{"adopting another lineage's certificate", func(j *Journal) error {
			_, err := j.Adopt(300, Renewal{OldCertificateID: 300, NewCertificateID: 200})
			return err
		}, ErrClaimed, "certificate 200 belongs to lineage 100"},
		{"adoption without a certificate", func(j *Journal) error {
			_, err := j.Adopt(300, Renewal{OldCertificateID: 300})
			return err
		}, nil, "no adopted certificate"},
		{"no root", func(j *Journal) error {
			_, err := j.Begin(0, Renewal{OldCertificateID: 300})
			return err
		}, nil, "lineage root 0: want a certificate id"},
		{"no old certificate", func(j *Journal) error {
			_, err := j.Begin(300, Renewal{})
			return err
		}, nil, "no old certificate"},
		{"unknown adoption state", func(j *Journal) error {
			_, err := j.Adopt(300, Renewal{OldCertificateID: 300, NewCertificateID: 301, State: "done"})
			return err
		}, nil, `unknown state "done"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newJournal(t)
			r := begin(t, j, 100, 100)
			renewed(t, j, 100, r.Seq, 200)
			begin(t, j, 500, 500) // seq 3, in flight
			commits := j.CommitCount()

			err := tt.do(j)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.wantIs != nil && !errors.Is(err, tt.wantIs)) {
				t.Fatalf("error = %v, want one containing %q (is %v)", err, tt.want, tt.wantIs)
			}
			for _, id := range []int{300, 301, 501} {
				if root, ok := j.ClaimedBy(id); ok {
					t.Errorf("a refused change claimed certificate %d for %d", id, root)
				}
			}
			if l := lineage(t, j, 200); len(l.Renewals) != 1 {
				t.Errorf("lineage 100 changed: %+v", l)
			}
			if l := lineage(t, j, 500); len(l.Renewals) != 1 {
				t.Errorf("lineage 500 changed: %+v", l)
			}
			if j.CommitCount() != commits {
				t.Errorf("a refused change was committed")
			}
		})
	}
}

func TestUpdateRefuses(t *testing.T) {
	tests := []struct {
		name   string
		root   int
		seq    uint64
		change func(*Renewal)
		wantIs error
		want   string
	}{
		{"unknown lineage", 9, 1, func(*Renewal) {}, nil, "update renewal 1 of lineage 9: no such renewal recorded"},
		{"unknown renewal", 100, 7, func(*Renewal) {}, nil, "update renewal 7 of lineage 100: no such renewal recorded"},
		{"renewal of another lineage", 100, 2, func(*Renewal) {}, nil, "no such renewal recorded"},
		{"new certificate of another lineage", 100, 1, func(r *Renewal) { r.NewCertificateID = 500 }, ErrClaimed, "certificate 500 belongs to lineage 500"},
		{"changes seq", 100, 1, func(r *Renewal) { r.Seq = 9 }, nil, "may not alter Seq or Kind"},
		{"changes kind", 100, 1, func(r *Renewal) { r.Kind = KindAdoption }, nil, "may not alter Seq or Kind"},
		{"unknown state", 100, 1, func(r *Renewal) { r.State = "done" }, nil, `unknown state "done"`},
		{"negative id", 100, 1, func(r *Renewal) { r.RequestID = -1 }, nil, "negative id -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newJournal(t)
			begin(t, j, 100, 100)
			begin(t, j, 500, 500)
			want := lineage(t, j, 100)
			for _, update := range []func(int, uint64, func(*Renewal)) error{j.Update, j.UpdateAsync} {
				err := update(tt.root, tt.seq, tt.change)
				if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.wantIs != nil && !errors.Is(err, tt.wantIs)) {
					t.Fatalf("error = %v, want one containing %q (is %v)", err, tt.want, tt.wantIs)
				}
			}
			if got := lineage(t, j, 100); !reflect.DeepEqual(got, want) {
				t.Errorf("a refused update changed lineage 100: %+v", got)
			}
		})
	}
}

func TestUpdateMovesClaims(t *testing.T) {
	j := newJournal(t)
	r := begin(t, j, 100, 100)
	renewed(t, j, 100, r.Seq, 200)
	// A lost answer first settled on the wrong certificate, then corrected.
	renewed(t, j, 100, r.Seq, 201)
	for _, j := range []*Journal{j, reopen(t, j)} {
		if root, ok := j.ClaimedBy(200); ok {
			t.Errorf("200 still claimed by %d after it left the lineage", root)
		}
		if root, ok := j.ClaimedBy(201); !ok || root != 100 {
			t.Errorf("ClaimedBy(201) = %d, %v; want 100", root, ok)
		}
		if _, ok, _ := j.Lineage(200); ok {
			t.Error("Lineage(200) found a lineage")
		}
	}
}

func TestAbandon(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(t testing.TB, j *Journal) uint64 // returns the seq to abandon
		wantErr    string
		wantLatest uint64 // 0: none
	}{
		{
			name:  "only an in-flight renewal",
			setup: func(t testing.TB, j *Journal) uint64 { return begin(t, j, 1, 1).Seq },
		},
		{
			name: "in flight after a completed one",
			setup: func(t testing.TB, j *Journal) uint64 {
				r := begin(t, j, 1, 1)
				renewed(t, j, 1, r.Seq, 2)
				return begin(t, j, 1, 2).Seq
			},
			wantLatest: 1,
		},
		{
			name: "a completed renewal is kept",
			setup: func(t testing.TB, j *Journal) uint64 {
				r := begin(t, j, 1, 1)
				renewed(t, j, 1, r.Seq, 2)
				return r.Seq
			},
			wantErr:    "it is renewed, not in flight",
			wantLatest: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newJournal(t)
			seq := tt.setup(t, j)
			err := j.Abandon(1, seq)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Abandon: %v, want error %q", err, tt.wantErr)
			}
			j = reopen(t, j)
			l := lineage(t, j, 1)
			latest, ok := l.Latest()
			if ok != (tt.wantLatest != 0) || latest.Seq != tt.wantLatest {
				t.Errorf("Latest = %d (%v), want %d", latest.Seq, ok, tt.wantLatest)
			}
			if tt.wantErr == "" && l.Renewals[len(l.Renewals)-1].State != StateAbandoned {
				t.Errorf("abandoned renewal not kept in the history: %+v", l.Renewals)
			}
			if tt.wantErr == "" {
				// Once abandoned, a new renewal may begin.
				begin(t, j, 1, 1)
			}
		})
	}
}

func TestLatest(t *testing.T) {
	tests := []struct {
		name   string
		states []State
		want   int // index, -1 for none
	}{
		{"none", nil, -1},
		{"only abandoned", []State{StateAbandoned, StateAbandoned}, -1},
		{"newest", []State{StateRenewed, StatePending}, 1},
		{"skips abandoned", []State{StateRenewed, StateAbandoned}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l Lineage
			for i, s := range tt.states {
				l.Renewals = append(l.Renewals, Renewal{Seq: uint64(i + 1), State: s})
			}
			r, ok := l.Latest()
			if ok != (tt.want >= 0) || (ok && r.Seq != uint64(tt.want+1)) {
				t.Errorf("Latest = %+v, %v; want index %d", r, ok, tt.want)
			}
		})
	}
}

func TestAdopt(t *testing.T) {
	j := newJournal(t)
	r, err := j.Adopt(100, Renewal{OldCertificateID: 100, NewCertificateID: 150, Subject: "CN=a"})
	if err != nil {
		t.Fatal(err)
	}
	want := Renewal{Seq: r.Seq, Kind: KindAdoption, State: StateRenewed, OldCertificateID: 100, NewCertificateID: 150, Subject: "CN=a", StartedAt: t0}
	if got := lineage(t, reopen(t, j), 150).Renewals; len(got) != 1 || !reflect.DeepEqual(got[0], want) || r.Seq == 0 {
		t.Errorf("adopted = %+v, want %+v", got, want)
	}
}

// blockCommits makes the next commit wait until the returned release is
// called; entered is closed when that commit has begun.
func blockCommits(t testing.TB, j *Journal) (entered <-chan struct{}, release func()) {
	t.Helper()
	in, out := make(chan struct{}), make(chan struct{})
	var once sync.Once
	j.beforeCommit = func() error {
		once.Do(func() { close(in); <-out })
		return nil
	}
	var released sync.Once
	release = func() { released.Do(func() { close(out) }) }
	t.Cleanup(release)
	return in, release
}

// queued waits until n writes wait for the next commit. It yields rather
// than sleeps: the writes are made by goroutines already started.
func queued(j *Journal, n int) {
	for {
		j.mu.Lock()
		got := len(j.next.writes)
		j.mu.Unlock()
		if got >= n {
			return
		}
		runtime.Gosched()
	}
}

func TestClaimsAreSeenBeforeTheCommit(t *testing.T) {
	j := newJournal(t)
	entered, release := blockCommits(t, j)
	done := make(chan error)
	go func() {
		_, err := j.Begin(100, Renewal{OldCertificateID: 100})
		done <- err
	}()
	<-entered // Begin's transaction is being committed, not yet synced
	if root, ok := j.ClaimedBy(100); !ok || root != 100 {
		t.Errorf("ClaimedBy(100) during the commit = %d, %v; want 100", root, ok)
	}
	if l := lineage(t, j, 100); len(l.Renewals) != 1 || !l.Renewals[0].InFlight() {
		t.Errorf("Lineage during the commit = %+v", l)
	}
	select {
	case err := <-done:
		t.Fatalf("Begin returned (%v) before its commit was synced", err)
	default:
	}
	// The Renew answer is recorded without waiting, and claimed at once.
	if err := j.UpdateAsync(100, 1, func(r *Renewal) { r.State, r.NewCertificateID = StateRenewed, 200 }); err != nil {
		t.Fatal(err)
	}
	if root, ok := j.ClaimedBy(200); !ok || root != 100 {
		t.Errorf("ClaimedBy(200) before its commit = %d, %v; want 100", root, ok)
	}
	if l := lineage(t, j, 200); l.Renewals[0].NewCertificateID != 200 {
		t.Errorf("Lineage(200) before its commit = %+v", l)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if l := lineage(t, openT(t, j.Path()), 200); l.Renewals[0].State != StateRenewed {
		t.Errorf("after reopen %+v, want the asynchronous update committed by Close", l)
	}
}

func TestGroupCommit(t *testing.T) {
	j := newJournal(t)
	for root := 1; root <= 6; root++ {
		begin(t, j, root, root)
	}
	base := j.CommitCount()
	entered, release := blockCommits(t, j)

	// The first write starts a commit that stalls; everything queued while
	// it syncs must go into one next transaction.
	if err := j.UpdateAsync(1, 1, func(r *Renewal) { r.State = StateRenewed; r.NewCertificateID = 101 }); err != nil {
		t.Fatal(err)
	}
	<-entered
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for root := 2; root <= 6; root++ {
		if err := j.UpdateAsync(root, uint64(root), func(r *Renewal) { r.State = StateRenewed; r.NewCertificateID = 100 + root }); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := j.Begin(10+root, Renewal{OldCertificateID: 10 + root})
			errs <- err
		}()
	}
	queued(j, 10)
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := j.CommitCount() - base; got != 2 {
		t.Errorf("%d commits for 1 write and then 10 queued during its sync, want 2", got)
	}
	j = reopen(t, j)
	for root := 1; root <= 6; root++ {
		if l := lineage(t, j, 100+root); l.Root != root {
			t.Errorf("Lineage(%d) = %+v", 100+root, l)
		}
	}
	for root := 2; root <= 6; root++ {
		if l := lineage(t, j, 10+root); !l.Renewals[0].InFlight() {
			t.Errorf("Lineage(%d) = %+v", 10+root, l)
		}
	}
}

func TestFailedCommitStopsWrites(t *testing.T) {
	errDisk := errors.New("input/output error")
	tests := []struct {
		name string
		// fail is the write whose commit fails; then writes are refused.
		fail func(j *Journal) error
	}{
		{"begin", func(j *Journal) error { _, err := j.Begin(1, Renewal{OldCertificateID: 1}); return err }},
		{"asynchronous update", func(j *Journal) error {
			return j.UpdateAsync(9, 1, func(r *Renewal) { r.State = StateRenewed })
		}},
		{"run record", func(j *Journal) error { return j.RecordRun(RunRecord{PlanFile: "p.csv"}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newJournal(t)
			begin(t, j, 9, 9)
			// The disk fails once and then recovers; the journal must not
			// trust it again.
			var failed atomic.Bool
			j.beforeCommit = func() error {
				if failed.CompareAndSwap(false, true) {
					return errDisk
				}
				return nil
			}
			failErr := tt.fail(j)
			_, err := j.Begin(2, Renewal{OldCertificateID: 2})
			if !errors.Is(err, errDisk) {
				t.Errorf("Begin after a failed commit: %v, want it to report %v", err, errDisk)
			}
			if failErr != nil && !errors.Is(failErr, errDisk) {
				t.Errorf("failing write: %v", failErr)
			}
			for name, err := range map[string]error{
				"update":       j.Update(9, 1, func(r *Renewal) { r.State = StateRenewed }),
				"async update": j.UpdateAsync(9, 1, func(r *Renewal) { r.State = StateRenewed }),
				"abandon":      j.Abandon(9, 1),
				"record run":   j.RecordRun(RunRecord{}),
			} {
				if !errors.Is(err, errDisk) {
					t.Errorf("%s after a failed commit: %v", name, err)
				}
			}
			if err := j.Close(); !errors.Is(err, errDisk) {
				t.Errorf("Close: %v, want it to report %v", err, errDisk)
			}
			j = openT(t, j.Path())
			if _, ok, _ := j.Lineage(2); ok {
				t.Error("a write after the failed commit reached the file")
			}
			if l := lineage(t, j, 9); !l.Renewals[0].InFlight() {
				t.Errorf("lineage 9 = %+v, want it as committed before the failure", l)
			}
		})
	}
}

func TestClosed(t *testing.T) {
	j := newJournal(t)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := j.Begin(1, Renewal{OldCertificateID: 1}); err == nil || !strings.Contains(err.Error(), "is closed") {
		t.Errorf("Begin after Close: %v", err)
	}
}

func TestRuns(t *testing.T) {
	j := newJournal(t)
	for i := range 5 {
		err := j.RecordRun(RunRecord{
			Start: t0.Add(time.Duration(i) * time.Hour), End: t0.Add(time.Duration(i)*time.Hour + time.Minute),
			PlanFile: fmt.Sprintf("plan%d.csv", i), Counts: map[string]int{"succeeded": i, "failed": 1},
			Interrupted: i == 3,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	j = reopen(t, j)
	tests := []struct {
		name  string
		limit int
		want  []string
	}{
		{"all with zero", 0, []string{"plan4.csv", "plan3.csv", "plan2.csv", "plan1.csv", "plan0.csv"}},
		{"all with negative", -1, []string{"plan4.csv", "plan3.csv", "plan2.csv", "plan1.csv", "plan0.csv"}},
		{"limit", 2, []string{"plan4.csv", "plan3.csv"}},
		{"limit above count", 10, []string{"plan4.csv", "plan3.csv", "plan2.csv", "plan1.csv", "plan0.csv"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs, err := j.Runs(tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range runs {
				got = append(got, r.PlanFile)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("plan files = %v, want %v", got, tt.want)
			}
		})
	}
	runs, _ := j.Runs(2)
	want := RunRecord{Start: t0.Add(3 * time.Hour), End: t0.Add(3*time.Hour + time.Minute), PlanFile: "plan3.csv",
		Counts: map[string]int{"succeeded": 3, "failed": 1}, Interrupted: true}
	if len(runs) != 2 || !reflect.DeepEqual(runs[1], want) {
		t.Errorf("second newest run = %+v, want %+v", runs, want)
	}
}

func TestRunsArePruned(t *testing.T) {
	j := newJournal(t)
	for i := range maxRuns + 3 {
		if err := j.RecordRun(RunRecord{PlanFile: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := j.Runs(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != maxRuns || runs[0].PlanFile != fmt.Sprint(maxRuns+2) || runs[len(runs)-1].PlanFile != "3" {
		t.Errorf("%d runs from %s to %s, want %d from %d to 3", len(runs), runs[0].PlanFile, runs[len(runs)-1].PlanFile, maxRuns, maxRuns+2)
	}
}

func TestCommand(t *testing.T) {
	tests := []struct {
		name    string
		first   string // the Command that created the file
		then    string
		refused bool
	}{
		{"same", testCommand, testCommand, false},
		{"default port, trailing slash, case", "https://Command.Example.com/KeyfactorAPI/", "https://command.example.com:443/keyfactorapi", false},
		{"user information is not identity", "https://admin:pw@command.example.com/KeyfactorAPI", testCommand, false},
		{"other host", testCommand, "https://other.example.com/KeyfactorAPI", true},
		{"other port", testCommand, "https://command.example.com:8443/KeyfactorAPI", true},
		{"other path", testCommand, "https://command.example.com/KeyfactorAPI2", true},
		{"other scheme", "http://command.example.com:443/KeyfactorAPI", testCommand, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			j, err := Open(path, Options{Command: tt.first})
			if err != nil {
				t.Fatal(err)
			}
			recorded := j.Command()
			j.Close()
			j, err = Open(path, Options{Command: tt.then})
			if !tt.refused {
				if err != nil {
					t.Fatal(err)
				}
				j.Close()
				return
			}
			if err == nil {
				j.Close()
				t.Fatal("Open of another Command's file succeeded")
			}
			t.Log(err)
			if !errors.Is(err, ErrOtherCommand) {
				t.Errorf("error %v does not wrap ErrOtherCommand", err)
			}
			cmd, _ := parseCommand(tt.then)
			for _, s := range []string{path, recorded, cmd.String()} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %q", err, s)
				}
			}
		})
	}
}

func TestNoSecretInTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	j, err := Open(path, Options{Command: "https://admin:hunter2@command.example.com/KeyfactorAPI?token=s3cret#frag"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := j.Command(), "https://command.example.com:443/KeyfactorAPI"; got != want {
		t.Errorf("Command() = %q, want %q", got, want)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"hunter2", "admin", "s3cret"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("state file contains %q", secret)
		}
	}
}

func TestNotAJournal(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t testing.TB, path string)
		want  string
		// buckets, for a bbolt file, are its buckets after the refusal:
		// those setup made and no more.
		buckets []string
	}{
		{
			name:  "text file",
			setup: func(t testing.TB, path string) { writeFile(t, path, []byte("certificate_id,store_id\n1234,abc\n")) },
			want:  "not a journal or corrupted",
		},
		{
			name:  "zeroed file",
			setup: func(t testing.TB, path string) { writeFile(t, path, make([]byte, 64<<10)) },
			want:  "not a journal or corrupted",
		},
		{
			name: "another program's bbolt file",
			setup: func(t testing.TB, path string) {
				boltFile(t, path, func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err })
			},
			want:    "not a runner journal",
			buckets: []string{"widgets"},
		},
		{
			name: "a later journal format",
			setup: func(t testing.TB, path string) {
				boltFile(t, path, func(tx *bolt.Tx) error {
					b, err := tx.CreateBucket(bucketMeta)
					if err != nil {
						return err
					}
					return b.Put(keySchema, []byte("runner.journal/v3"))
				})
			},
			want:    `journal format "runner.journal/v3"`,
			buckets: []string{"meta"},
		},
		{
			name: "a directory",
			setup: func(t testing.TB, path string) {
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			},
			want: "open journal",
		},
		{
			name: "damaged pages of a journal",
			setup: func(t testing.TB, path string) {
				j := openT(t, path)
				for i := range 50 {
					if err := j.RecordRun(RunRecord{PlanFile: fmt.Sprint(i)}); err != nil {
						t.Fatal(err)
					}
				}
				j.Close()
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				// bbolt checksums only its two meta pages; ruin the rest.
				pageSize := os.Getpagesize()
				for i := 2 * pageSize; i < len(b); i++ {
					b[i] = 0xA5
				}
				writeFile(t, path, b)
			},
			want: "not a journal or corrupted",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			tt.setup(t, path)
			j, err := Open(path, testOptions())
			if err == nil {
				j.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			for _, s := range []string{path, tt.want} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if errors.Is(err, ErrLocked) {
				t.Errorf("error %q claims the journal is locked", err)
			}
			if _, err := os.Stat(holderPath(path)); err == nil {
				t.Error("a failed Open left its lock note behind")
			}
			if tt.buckets != nil {
				if got := bucketNames(t, path); !reflect.DeepEqual(got, tt.buckets) {
					t.Errorf("buckets after the refusal %q, want %q", got, tt.buckets)
				}
			}
		})
	}
}

// bucketNames returns the top-level buckets of the bbolt file at path.
func bucketNames(t testing.TB, path string) []string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var names []string
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, string(name))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return names
}

func TestOpenNeedsACommand(t *testing.T) {
	tests := []struct {
		name, command, want string
	}{
		{"none", "", "no Command URL"},
		{"no scheme", "command.example.com/KeyfactorAPI", "bad Command URL"},
		{"other scheme", "ftp://command.example.com/KeyfactorAPI", "bad Command URL ftp://command.example.com/KeyfactorAPI"},
		{"no host", "https:///KeyfactorAPI", "bad Command URL"},
		{"unparsable, with a password", "https://admin:hunter2@command example.com/", "bad Command URL"},
		{"password redacted", "ftp://admin:hunter2@command.example.com/", "ftp://admin:xxxxx@command.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			_, err := Open(path, Options{Command: tt.command})
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
			if _, err := os.Stat(path); err == nil {
				t.Error("Open created a file for a bad Command")
			}
		})
	}
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// boltFile writes a bbolt file at path with fill, independently of Open.
func boltFile(t testing.TB, path string, fill func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fill); err != nil {
		t.Fatal(err)
	}
}
