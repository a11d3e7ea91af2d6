package journal

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkCertificates measures the journal's writes per certificate as
// the runner's workers make them, concurrently, on the real disk: Begin
// (synced before Renew), then the Renew answer, waited for (Update) or not
// (UpdateAsync), then in the last two flows the deploy outcome: waited for
// ("deploy-synced") or, as the runner writes it, not ("runner").
// It reports certificates per second and commits (each two fdatasyncs) per
// certificate.
//
//	go test -run '^$' -bench BenchmarkCertificates -benchtime 2000x ./journal/
func BenchmarkCertificates(b *testing.B) {
	flows := []struct {
		name  string
		after func(j *Journal, id int, seq uint64) error // after Begin
	}{
		{"begin+update", func(j *Journal, id int, seq uint64) error {
			return j.Update(id, seq, renewedAs(id))
		}},
		{"begin+async", func(j *Journal, id int, seq uint64) error {
			return j.UpdateAsync(id, seq, renewedAs(id))
		}},
		{"deploy-synced", func(j *Journal, id int, seq uint64) error {
			if err := j.UpdateAsync(id, seq, renewedAs(id)); err != nil {
				return err
			}
			return j.Update(id, seq, func(r *Renewal) {
				r.Stores = map[string]StoreState{"6b3c6f0e-1f4e-4d5a-9d53-0d8f2a7f1c11": {Status: StoreJobCreated, At: t0}}
			})
		}},
		// The deploy outcome not waited for either: only Begin waits.
		{"runner", func(j *Journal, id int, seq uint64) error {
			if err := j.UpdateAsync(id, seq, renewedAs(id)); err != nil {
				return err
			}
			return j.UpdateAsync(id, seq, func(r *Renewal) {
				r.Stores = map[string]StoreState{"6b3c6f0e-1f4e-4d5a-9d53-0d8f2a7f1c11": {Status: StoreJobCreated, At: t0}}
			})
		}},
	}
	for _, flow := range flows {
		for _, workers := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", flow.name, workers), func(b *testing.B) {
				j, err := Open(filepath.Join(b.TempDir(), "state.db"), testOptions())
				if err != nil {
					b.Fatal(err)
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for id := int(next.Add(1)); id <= b.N; id = int(next.Add(1)) {
							r, err := j.Begin(id, Renewal{OldCertificateID: id, Subject: "CN=app.example.com, O=Example"})
							if err == nil {
								err = flow.after(j, id, r.Seq)
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				if err := j.Close(); err != nil { // commits what UpdateAsync left queued
					b.Fatal(err)
				}
				b.StopTimer()
				commits := j.CommitCount()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
				b.ReportMetric(float64(commits)/float64(b.N), "commits/cert")
			})
		}
	}
}

func renewedAs(id int) func(*Renewal) {
	return func(r *Renewal) {
		r.State, r.NewCertificateID, r.RequestID, r.RenewedAt = StateRenewed, id+1<<30, id, t0
	}
}

// fillLineages writes n lineages of two renewals each (root → 1<<30+root →
// 1<<31+root: three certificates in the index) straight into the file, the
// shape of a large estate after a few years of nights.
func fillLineages(b *testing.B, path string, n int) {
	b.Helper()
	j, err := Open(path, testOptions())
	if err != nil {
		b.Fatal(err)
	}
	const chunk = 10000
	for start := 1; start <= n; start += chunk {
		err := j.db.Update(func(tx *bolt.Tx) error {
			lineages, index := tx.Bucket(bucketLineages), tx.Bucket(bucketIndex)
			for root := start; root < start+chunk && root <= n; root++ {
				mid, last := 1<<30+root, 1<<31+root
				lin := Lineage{Root: root, Renewals: []Renewal{
					{Seq: uint64(2 * root), Kind: KindRenewal, State: StateRenewed, OldCertificateID: root, NewCertificateID: mid,
						Subject: "CN=app.example.com, O=Example", StartedAt: t0, RenewedAt: t0,
						Stores: map[string]StoreState{"6b3c6f0e-1f4e-4d5a-9d53-0d8f2a7f1c11": {Status: StoreVerified, At: t0}}},
					{Seq: uint64(2*root + 1), Kind: KindRenewal, State: StateRenewed, OldCertificateID: mid, NewCertificateID: last,
						Subject: "CN=app.example.com, O=Example", StartedAt: t0, RenewedAt: t0,
						Stores: map[string]StoreState{"6b3c6f0e-1f4e-4d5a-9d53-0d8f2a7f1c11": {Status: StoreJobCreated, At: t0}}},
				}}
				v, err := encodeLineage(lin)
				if err != nil {
					return err
				}
				if err := lineages.Put(itob(root), v); err != nil {
					return err
				}
				for _, id := range lin.certificates() {
					if err := index.Put(itob(id), itob(root)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOpen measures Open (lock, checks, loading the certificate index
// into memory) and Close of a file with many lineages.
//
//	go test -run '^$' -bench BenchmarkOpen ./journal/
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("lineages=%d", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "state.db")
			fillLineages(b, path, n)
			b.ResetTimer()
			for b.Loop() {
				j, err := Open(path, testOptions())
				if err != nil {
					b.Fatal(err)
				}
				if got := j.index.len(); got != 3*n {
					b.Fatalf("%d index entries, want %d", got, 3*n)
				}
				j.Close()
			}
		})
	}
}

// BenchmarkLineage measures finding a committed lineage by a certificate
// that is not its root, in a file of 100,000 lineages: the due check's read
// for every plan job.
//
//	go test -run '^$' -bench BenchmarkLineage ./journal/
func BenchmarkLineage(b *testing.B) {
	const n = 100000
	path := filepath.Join(b.TempDir(), "state.db")
	fillLineages(b, path, n)
	j, err := Open(path, testOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	i := 0
	for b.Loop() {
		i = i%n + 1
		if l, ok, err := j.Lineage(1<<31 + i); err != nil || !ok || l.Root != i {
			b.Fatalf("Lineage(%d) = %+v, %v, %v", 1<<31+i, l, ok, err)
		}
	}
}
