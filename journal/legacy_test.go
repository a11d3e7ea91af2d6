package journal

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// writeV1 writes a state file as runner.journal/v1 did (journal.go before
// the per-Command layout): meta/schema, "renewals" with one JSON list per
// plan job key, and "runs" keyed by bucket sequence. The JSON is spelled
// out, so the test does not depend on this package's own types.
func writeV1(t testing.TB, path string, renewals map[string]string, runs ...string) {
	t.Helper()
	boltFile(t, path, func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("schema"), []byte("runner.journal/v1")); err != nil {
			return err
		}
		rb, err := tx.CreateBucket([]byte("renewals"))
		if err != nil {
			return err
		}
		for k, v := range renewals {
			if err := rb.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		runb, err := tx.CreateBucket([]byte("runs"))
		if err != nil {
			return err
		}
		for _, v := range runs {
			seq, _ := runb.NextSequence()
			if err := runb.Put(binary.BigEndian.AppendUint64(nil, seq), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
}

// A plan's v1 file after two nights: certificate 100 renewed into 200 and
// deployed, then 200's renewal begun and the process killed; a job keyed by
// thumbprint renewed 300 into 301; 400's renewal awaiting approval.
var v1Plan = map[string]string{
	"id:100": `[{"key":"id:100","old_certificate_id":100,"subject":"CN=a.example.com","started_at":"2025-11-24T02:00:00Z","new_certificate_id":200,"request_id":91,"renewed_at":"2025-11-24T02:00:02Z","stores":{"store-a":{"status":"job-created","at":"2025-11-24T02:00:03Z"},"store-b":{"status":"failed","at":"2025-11-24T02:00:03Z","detail":"access denied"}}},` +
		`{"key":"id:100","old_certificate_id":200,"subject":"CN=a.example.com","started_at":"2026-11-24T02:00:00Z"}]`,
	"thumbprint:AB12CD": `[{"key":"thumbprint:AB12CD","old_certificate_id":300,"subject":"CN=b.example.com","started_at":"2026-11-23T02:00:00Z","new_certificate_id":301,"renewed_at":"2026-11-23T02:00:01Z"}]`,
	"id:400":            `[{"key":"id:400","old_certificate_id":400,"subject":"CN=c.example.com","started_at":"2026-11-22T02:00:00Z","request_id":77,"renewed_at":"2026-11-22T02:00:01Z"}]`,
}

var v1Runs = []string{
	`{"start":"2025-11-24T02:00:00Z","end":"2025-11-24T02:01:00Z","plan_file":"plan.csv","counts":{"succeeded":3}}`,
	`{"start":"2026-11-24T02:00:00Z","end":"2026-11-24T02:00:30Z","plan_file":"plan.csv","counts":{"failed":1},"interrupted":true}`,
}

var day1 = time.Date(2025, 11, 24, 2, 0, 0, 0, time.UTC)

// checkV1Plan checks what v1Plan became, whichever way it was imported.
func checkV1Plan(t *testing.T, j *Journal) {
	t.Helper()
	want := map[int]Lineage{
		100: {Root: 100, Renewals: []Renewal{
			{Kind: KindRenewal, State: StateRenewed, OldCertificateID: 100, Subject: "CN=a.example.com", StartedAt: day1,
				NewCertificateID: 200, RequestID: 91, RenewedAt: day1.Add(2 * time.Second),
				Stores: map[string]StoreState{
					"store-a": {Status: StoreJobCreated, At: day1.Add(3 * time.Second)},
					"store-b": {Status: StoreFailed, At: day1.Add(3 * time.Second), Detail: "access denied"},
				}},
			{Kind: KindRenewal, State: StateInFlight, OldCertificateID: 200, Subject: "CN=a.example.com", StartedAt: day1.AddDate(1, 0, 0)},
		}},
		300: {Root: 300, Renewals: []Renewal{
			{Kind: KindRenewal, State: StateRenewed, OldCertificateID: 300, Subject: "CN=b.example.com", StartedAt: t0.Add(-24 * time.Hour),
				NewCertificateID: 301, RenewedAt: t0.Add(-24*time.Hour + time.Second)},
		}},
		400: {Root: 400, Renewals: []Renewal{
			{Kind: KindRenewal, State: StatePending, OldCertificateID: 400, Subject: "CN=c.example.com", StartedAt: t0.Add(-48 * time.Hour),
				RequestID: 77, RenewedAt: t0.Add(-48*time.Hour + time.Second)},
		}},
	}
	lookups := map[int]int{100: 100, 200: 100, 300: 300, 301: 300, 400: 400}
	seqs := map[uint64]bool{}
	for id, root := range lookups {
		got := lineage(t, j, id)
		for i := range got.Renewals {
			seqs[got.Renewals[i].Seq] = true
			got.Renewals[i].Seq = 0
		}
		if !reflect.DeepEqual(got, want[root]) {
			t.Errorf("Lineage(%d)\n got %+v\nwant %+v", id, got, want[root])
		}
	}
	if len(seqs) != 4 || seqs[0] {
		t.Errorf("sequence numbers %v, want 4 distinct non-zero ones", seqs)
	}
	// The renewal killed in flight stays in flight: nothing renews 200 again
	// until it is settled.
	if _, err := j.Begin(100, Renewal{OldCertificateID: 200}); !errors.Is(err, ErrInFlight) {
		t.Errorf("Begin on the migrated in-flight lineage: %v, want ErrInFlight", err)
	}
}

func runFiles(t testing.TB, j *Journal) []string {
	t.Helper()
	runs, err := j.Runs(0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range runs {
		out = append(out, r.PlanFile+"@"+r.Start.Format("2006"))
	}
	return out
}

func TestMigrateLegacy(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "plan.csv.state")
	writeV1(t, legacy, v1Plan, v1Runs...)
	j := openT(t, filepath.Join(dir, "command.db"))
	if err := j.RecordRun(RunRecord{Start: t0, PlanFile: "other.csv"}); err != nil {
		t.Fatal(err)
	}

	n, err := MigrateLegacy(j, legacy)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("imported %d lineages, want 3", n)
	}
	if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("legacy file still there: %v", err)
	}
	if _, err := os.Stat(legacy + ".migrated"); err != nil {
		t.Errorf("legacy file not renamed: %v", err)
	}
	wantRuns := []string{"plan.csv@2026", "plan.csv@2025", "other.csv@2026"}
	t.Run("after migration", func(t *testing.T) {
		checkV1Plan(t, j)
		if got := runFiles(t, j); !reflect.DeepEqual(got, wantRuns) {
			t.Errorf("runs = %v, want %v", got, wantRuns)
		}
	})
	j = reopen(t, j)
	t.Run("after reopen", func(t *testing.T) { checkV1Plan(t, j) })

	// Renamed, it is not imported again.
	if n, err := MigrateLegacy(j, legacy); n != 0 || err != nil {
		t.Errorf("second MigrateLegacy = %d, %v; want 0, nil", n, err)
	}
	// A copy of it (a crash between the import and the rename, or an old
	// backup put back) adds nothing.
	if err := os.Rename(legacy+".migrated", legacy); err != nil {
		t.Fatal(err)
	}
	if n, err := MigrateLegacy(j, legacy); n != 0 || err != nil {
		t.Errorf("MigrateLegacy of a copy = %d, %v; want 0, nil", n, err)
	}
	t.Run("after importing a copy", func(t *testing.T) {
		checkV1Plan(t, j)
		if got := runFiles(t, j); !reflect.DeepEqual(got, wantRuns) {
			t.Errorf("runs = %v, want %v", got, wantRuns)
		}
	})
}

// The failed plan written beside the plan had its own v1 file; rerun, it
// renewed the certificate the plan's night had issued. Both files become
// one lineage, found from any of its certificates.
func TestMigrateFailedPlanJoinsTheLineage(t *testing.T) {
	for _, order := range []string{"plan first", "failed plan first"} {
		t.Run(order, func(t *testing.T) {
			dir := t.TempDir()
			plan, failed := filepath.Join(dir, "plan.csv.state"), filepath.Join(dir, "failed.csv.state")
			writeV1(t, plan, map[string]string{
				"id:100": `[{"key":"id:100","old_certificate_id":100,"started_at":"2025-11-24T02:00:00Z","new_certificate_id":200,"renewed_at":"2025-11-24T02:00:02Z"}]`,
			})
			writeV1(t, failed, map[string]string{
				"id:200": `[{"key":"id:200","old_certificate_id":200,"started_at":"2025-11-25T02:00:00Z","new_certificate_id":300,"renewed_at":"2025-11-25T02:00:02Z"}]`,
			})
			files := []string{plan, failed}
			if order != "plan first" {
				files = []string{failed, plan}
			}
			j := newJournal(t)
			for _, f := range files {
				if n, err := MigrateLegacy(j, f); n != 1 || err != nil {
					t.Fatalf("MigrateLegacy(%s) = %d, %v", f, n, err)
				}
			}
			root := lineage(t, j, 100).Root
			for _, id := range []int{100, 200, 300} {
				l := lineage(t, j, id)
				if l.Root != root || len(l.Renewals) != 2 || l.Renewals[0].NewCertificateID != 200 || l.Renewals[1].NewCertificateID != 300 {
					t.Errorf("Lineage(%d) = %+v, want one lineage 100→200→300", id, l)
				}
			}
		})
	}
}

func TestMigrateLegacyRefuses(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t testing.TB, j *Journal, path string)
		want   string
		wantIs error
	}{
		{
			name:  "not a journal",
			setup: func(t testing.TB, j *Journal, path string) { writeFile(t, path, []byte("certificate_id\n1\n")) },
			want:  "not a journal or corrupted",
		},
		{
			name: "another program's bbolt file",
			setup: func(t testing.TB, j *Journal, path string) {
				boltFile(t, path, func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err })
			},
			want: "not a runner journal",
		},
		{
			name: "a current state file",
			setup: func(t testing.TB, j *Journal, path string) {
				k, err := Open(path, testOptions())
				if err != nil {
					t.Fatal(err)
				}
				k.Close()
			},
			want: "already a runner.journal/v2 state file",
		},
		{
			name: "the journal itself",
			setup: func(t testing.TB, j *Journal, path string) {
				if err := os.Link(j.Path(), path); err != nil {
					t.Fatal(err)
				}
			},
			want: "it is the journal itself",
		},
		{
			name: "a bad key",
			setup: func(t testing.TB, j *Journal, path string) {
				writeV1(t, path, map[string]string{"serial:9": `[{"key":"serial:9","old_certificate_id":9,"started_at":"2025-11-24T02:00:00Z"}]`})
			},
			want: `key "serial:9": want id:N or thumbprint:HEX`,
		},
		{
			name: "certificates of two lineages",
			setup: func(t testing.TB, j *Journal, path string) {
				r := begin(t, j, 100, 100)
				renewed(t, j, 100, r.Seq, 200)
				r = begin(t, j, 500, 500)
				renewed(t, j, 500, r.Seq, 600)
				writeV1(t, path, map[string]string{
					"id:7":   `[{"key":"id:7","old_certificate_id":7,"started_at":"2025-11-24T02:00:00Z"}]`,
					"id:200": `[{"key":"id:200","old_certificate_id":200,"started_at":"2025-11-24T02:00:00Z","new_certificate_id":600,"renewed_at":"2025-11-24T02:00:01Z"}]`,
				})
			},
			want: `key "id:200": its certificates [200 600] belong to more than one lineage ([100 500])`,
		},
		{
			name: "in use by an older runner",
			setup: func(t testing.TB, j *Journal, path string) {
				writeV1(t, path, v1Plan)
				db, err := bolt.Open(path, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
			},
			want:   "is locked by another run",
			wantIs: ErrLocked,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newJournal(t)
			path := filepath.Join(t.TempDir(), "plan.csv.state")
			tt.setup(t, j, path)
			before := j.index.len()
			n, err := MigrateLegacy(j, path)
			t.Log(err)
			if err == nil || n != 0 || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) ||
				(tt.wantIs != nil && !errors.Is(err, tt.wantIs)) {
				t.Fatalf("MigrateLegacy = %d, %v; want an error naming %s and containing %q", n, err, path, tt.want)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("refused file moved: %v", err)
			}
			if _, ok := j.ClaimedBy(7); ok || j.index.len() != before {
				t.Error("a refused import claimed certificates")
			}
		})
	}
}

// Lists are imported oldest first, whatever order their keys sort in, so
// a lineage is rooted at its oldest certificate.
func TestMigrateRootsAtTheOldestCertificate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plan.csv.state")
	writeV1(t, path, map[string]string{
		// "id:1000" sorts before "id:200", but 200 was renewed into 1000
		// a year before 1000 was renewed.
		"id:1000": `[{"key":"id:1000","old_certificate_id":1000,"started_at":"2026-11-24T02:00:00Z","new_certificate_id":1001,"renewed_at":"2026-11-24T02:00:01Z"}]`,
		"id:200":  `[{"key":"id:200","old_certificate_id":200,"started_at":"2025-11-24T02:00:00Z","new_certificate_id":1000,"renewed_at":"2025-11-24T02:00:01Z"}]`,
	})
	j := newJournal(t)
	if n, err := MigrateLegacy(j, path); n != 2 || err != nil {
		t.Fatalf("MigrateLegacy = %d, %v; want 2 lineages imported", n, err)
	}
	for _, id := range []int{200, 1000, 1001} {
		if l := lineage(t, j, id); l.Root != 200 || len(l.Renewals) != 2 || l.Renewals[0].OldCertificateID != 200 {
			t.Errorf("Lineage(%d) = %+v, want root 200 with 200's renewal first", id, l)
		}
	}
}

// An explicit --state naming a v1 file: Open upgrades it in place.
func TestOpenUpgradesV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plan.csv.state")
	writeV1(t, path, v1Plan, v1Runs...)
	j := openT(t, path)
	if got := j.UpgradedFrom(); got != "runner.journal/v1" {
		t.Errorf("UpgradedFrom = %q, want runner.journal/v1", got)
	}
	checkV1Plan(t, j)
	if got, want := runFiles(t, j), []string{"plan.csv@2026", "plan.csv@2025"}; !reflect.DeepEqual(got, want) {
		t.Errorf("runs = %v, want %v", got, want)
	}

	j = reopen(t, j)
	if got := j.UpgradedFrom(); got != "" {
		t.Errorf("UpgradedFrom after reopen = %q, want none", got)
	}
	checkV1Plan(t, j)
	j.Close()

	// The file now belongs to the Command that upgraded it.
	if _, err := Open(path, Options{Command: "https://other.example.com/KeyfactorAPI"}); !errors.Is(err, ErrOtherCommand) {
		t.Errorf("Open for another Command: %v, want ErrOtherCommand", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if got := string(tx.Bucket(bucketMeta).Get(keySchema)); got != schema {
			t.Errorf("schema = %q, want %q", got, schema)
		}
		if tx.Bucket(bucketV1) != nil {
			t.Error("the v1 renewals bucket is still there")
		}
		return nil
	})
}

func TestOpenRefusesABadV1File(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plan.csv.state")
	writeV1(t, path, map[string]string{"id:x": `[{"key":"id:x","started_at":"2025-11-24T02:00:00Z"}]`})
	_, err := Open(path, testOptions())
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), `upgrade from runner.journal/v1: key "id:x"`) {
		t.Fatalf("Open = %v, want a failed upgrade naming the key", err)
	}
	// Nothing was changed: the file is still v1.
	boltView(t, path, func(tx *bolt.Tx) {
		if got := string(tx.Bucket(bucketMeta).Get(keySchema)); got != schemaV1 {
			t.Errorf("schema = %q after a failed upgrade", got)
		}
	})
}

func boltView(t testing.TB, path string, view func(*bolt.Tx)) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error { view(tx); return nil })
}
