package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)

func openT(t testing.TB, path string) *Journal {
	t.Helper()
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func reopen(t testing.TB, j *Journal) *Journal {
	t.Helper()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return openT(t, j.Path())
}

func begin(t testing.TB, j *Journal, key string, at time.Time) {
	t.Helper()
	if err := j.BeginRenewal(Renewal{Key: key, OldCertificateID: 1234, Subject: "CN=www.example.com, O=Example", StartedAt: at}); err != nil {
		t.Fatal(err)
	}
}

func latest(t testing.TB, j *Journal, key string) Renewal {
	t.Helper()
	r, ok, err := j.Renewal(key)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("no renewal for %s", key)
	}
	return r
}

func TestRoundTripAcrossReopen(t *testing.T) {
	// The directory does not exist yet: Open creates it.
	path := filepath.Join(t.TempDir(), "state", "nested", "runner.db")
	j := openT(t, path)

	est := time.FixedZone("EST", -5*3600)
	begin(t, j, "id:1234", t0.In(est))
	if err := j.CompleteRenewal("id:1234", 5678, 91, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	// One Deploy answers for several stores at once.
	if err := j.RecordStores("id:1234", map[string]StoreState{
		"store-a": {Status: "job-created", At: t0.Add(3 * time.Second)},
		"store-b": {Status: "failed", At: t0.Add(3 * time.Second), Detail: "access denied"},
	}); err != nil {
		t.Fatal(err)
	}
	// A later state for the same store replaces the earlier one.
	if err := j.RecordStore("id:1234", "store-a", StoreState{Status: "verified", At: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}

	j = reopen(t, j)
	got := latest(t, j, "id:1234")
	want := Renewal{
		Key: "id:1234", OldCertificateID: 1234, Subject: "CN=www.example.com, O=Example",
		StartedAt: t0, NewCertificateID: 5678, RequestID: 91, RenewedAt: t0.Add(2 * time.Second),
		Stores: map[string]StoreState{
			"store-a": {Status: "verified", At: t0.Add(time.Minute)},
			"store-b": {Status: "failed", At: t0.Add(3 * time.Second), Detail: "access denied"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen\n got %+v\nwant %+v", got, want)
	}
	if got.InFlight() {
		t.Error("completed renewal reported in flight")
	}
	if _, ok, err := j.Renewal("id:9999"); ok || err != nil {
		t.Errorf("unknown key: ok=%v err=%v, want false, nil", ok, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("journal file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
}

func TestInFlightRenewalSurvivesReopen(t *testing.T) {
	j := openT(t, filepath.Join(t.TempDir(), "runner.db"))
	begin(t, j, "id:1", t0)
	if err := j.CompleteRenewal("id:1", 11, 0, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// The next year's renewal is begun, and then the process dies.
	begin(t, j, "id:1", t0.AddDate(1, 0, 0))

	j = reopen(t, j)
	got := latest(t, j, "id:1")
	if !got.InFlight() || !got.RenewedAt.IsZero() || got.NewCertificateID != 0 {
		t.Errorf("latest = %+v, want in flight with zero RenewedAt and no new id", got)
	}
	if !got.StartedAt.Equal(t0.AddDate(1, 0, 0)) {
		t.Errorf("StartedAt = %v", got.StartedAt)
	}
	hist, err := j.History("id:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].NewCertificateID != 11 {
		t.Errorf("history = %+v, want the completed renewal then the in-flight one", hist)
	}
}

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runner.db")
	j := openT(t, path)

	_, err := Open(path)
	t.Log(err)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}

	// Closing releases the lock.
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	openT(t, path)
}

func TestChangesNeedARenewal(t *testing.T) {
	j := openT(t, filepath.Join(t.TempDir(), "runner.db"))
	tests := []struct {
		name string
		do   func() error
		want string
	}{
		{"complete", func() error { return j.CompleteRenewal("id:7", 8, 0, t0) }, "complete renewal of id:7: no renewal recorded"},
		{"record store", func() error { return j.RecordStore("id:7", "s", StoreState{Status: "failed"}) }, "record store s for id:7: no renewal recorded"},
		{"begin without key", func() error { return j.BeginRenewal(Renewal{StartedAt: t0}) }, "empty job key"},
		{"begin without time", func() error { return j.BeginRenewal(Renewal{Key: "id:7"}) }, "begin renewal of id:7: no start time"},
		{"complete without time", func() error { return j.CompleteRenewal("id:7", 8, 0, time.Time{}) }, "no renewal time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, ok, _ := j.Renewal("id:7"); ok {
		t.Error("a failed change left a renewal behind")
	}
}

func TestAbandonRenewal(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t testing.TB, j *Journal)
		wantErr   bool
		wantOK    bool
		wantNewID int
	}{
		{
			name:  "nothing recorded",
			setup: func(t testing.TB, j *Journal) {},
		},
		{
			name:  "only an in-flight renewal",
			setup: func(t testing.TB, j *Journal) { begin(t, j, "k", t0) },
		},
		{
			name: "in flight after a completed one",
			setup: func(t testing.TB, j *Journal) {
				begin(t, j, "k", t0)
				if err := j.CompleteRenewal("k", 42, 0, t0); err != nil {
					t.Fatal(err)
				}
				begin(t, j, "k", t0.AddDate(1, 0, 0))
			},
			wantOK: true, wantNewID: 42,
		},
		{
			name: "latest completed is kept",
			setup: func(t testing.TB, j *Journal) {
				begin(t, j, "k", t0)
				if err := j.CompleteRenewal("k", 42, 0, t0); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: true, wantOK: true, wantNewID: 42,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := openT(t, filepath.Join(t.TempDir(), "runner.db"))
			tt.setup(t, j)
			if err := j.AbandonRenewal("k"); (err != nil) != tt.wantErr {
				t.Fatalf("AbandonRenewal: %v, want error %v", err, tt.wantErr)
			}
			r, ok, err := j.Renewal("k")
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.wantOK || r.NewCertificateID != tt.wantNewID {
				t.Errorf("latest = %+v (ok %v), want ok %v with new id %d", r, ok, tt.wantOK, tt.wantNewID)
			}
		})
	}
}

func TestForget(t *testing.T) {
	j := openT(t, filepath.Join(t.TempDir(), "runner.db"))
	begin(t, j, "id:1", t0)
	begin(t, j, "id:1", t0.Add(time.Hour))
	begin(t, j, "id:2", t0)
	if err := j.Forget("id:1"); err != nil {
		t.Fatal(err)
	}
	if err := j.Forget("id:never"); err != nil {
		t.Errorf("forgetting an unknown key: %v", err)
	}
	j = reopen(t, j)
	if hist, err := j.History("id:1"); err != nil || len(hist) != 0 {
		t.Errorf("id:1 history after Forget = %+v, %v; want none", hist, err)
	}
	if _, ok, _ := j.Renewal("id:2"); !ok {
		t.Error("Forget of id:1 removed id:2")
	}
	// A new lineage starts cleanly.
	begin(t, j, "id:1", t0.Add(2*time.Hour))
	if hist, _ := j.History("id:1"); len(hist) != 1 {
		t.Errorf("new lineage has %d renewals, want 1", len(hist))
	}
}

func TestRuns(t *testing.T) {
	j := openT(t, filepath.Join(t.TempDir(), "runner.db"))
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
	j := openT(t, filepath.Join(t.TempDir(), "runner.db"))
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

func TestNotAJournal(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t testing.TB, path string)
		want  string
	}{
		{
			name: "text file",
			setup: func(t testing.TB, path string) {
				writeFile(t, path, []byte("certificate_id,store_id\n1234,abc\n"))
			},
			want: "not a journal or corrupted",
		},
		{
			name: "zeroed file",
			setup: func(t testing.TB, path string) {
				writeFile(t, path, make([]byte, 64<<10))
			},
			want: "not a journal or corrupted",
		},
		{
			name: "another program's bbolt file",
			setup: func(t testing.TB, path string) {
				db, err := bolt.Open(path, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if err := db.Update(func(tx *bolt.Tx) error {
					_, err := tx.CreateBucket([]byte("widgets"))
					return err
				}); err != nil {
					t.Fatal(err)
				}
			},
			want: "not a runner journal",
		},
		{
			name: "a later journal format",
			setup: func(t testing.TB, path string) {
				db, err := bolt.Open(path, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if err := db.Update(func(tx *bolt.Tx) error {
					b, err := tx.CreateBucket(bucketMeta)
					if err != nil {
						return err
					}
					return b.Put(keySchema, []byte("runner.journal/v2"))
				}); err != nil {
					t.Fatal(err)
				}
			},
			want: `journal format "runner.journal/v2"`,
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
				j, err := Open(path)
				if err != nil {
					t.Fatal(err)
				}
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
			path := filepath.Join(t.TempDir(), "runner.db")
			tt.setup(t, path)
			j, err := Open(path)
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
		})
	}
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
