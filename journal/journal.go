// Package journal is the runner's durable state, kept in one bbolt file:
// each plan job's lineage of renewals (including the in-flight marker
// written before Renew is sent, so a lost response or a crash never leads to
// a second renewal), what happened in each store, and the history of runs.
// Holding the file open is also the lock that keeps two runs from
// overlapping. It makes no network calls and decides nothing; the runner
// reads and writes it. It never stores secrets: no type here has a field for
// one.
package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrLocked is wrapped by Open's error when another run holds the journal.
var ErrLocked = errors.New("journal is locked by another run")

// lockTimeout is how long Open waits for another run to let go of the file:
// long enough to ride out a run that is just closing, short enough that an
// overlapping cron run gives up at once.
const lockTimeout = time.Second

// maxRuns bounds the run history; older records are dropped.
const maxRuns = 1000

// schema is written into the meta bucket so that a bbolt file belonging to
// something else is refused rather than written into.
const schema = "runner.journal/v1"

var (
	bucketMeta     = []byte("meta")
	bucketRenewals = []byte("renewals")
	bucketRuns     = []byte("runs")
	keySchema      = []byte("schema")
)

// Journal is an open journal file. Its methods are safe for concurrent use;
// every change is committed (and synced to disk) before the method returns.
type Journal struct {
	db   *bolt.DB
	path string
}

// Renewal is one renewal of a plan job's certificate.
type Renewal struct {
	Key              string // plan job key, e.g. "id:1234"
	OldCertificateID int
	Subject          string    // IssuedDN of the old certificate
	StartedAt        time.Time // written (and synced) before POST /Enrollment/Renew is sent
	NewCertificateID int
	RequestID        int
	RenewedAt        time.Time // zero while the outcome is unknown
	Stores           map[string]StoreState
}

// InFlight reports whether the renewal was started but its outcome is not
// known: Renew may or may not have been processed by Command.
func (r Renewal) InFlight() bool { return r.RenewedAt.IsZero() }

// StoreState is what happened to a renewal in one certificate store.
type StoreState struct {
	Status string // "job-created", "failed", "verified"
	At     time.Time
	Detail string
}

// RunRecord is the summary of one run.
type RunRecord struct {
	Start, End  time.Time
	PlanFile    string
	Counts      map[string]int // rows per report status
	Interrupted bool
}

// The stored shapes are kept apart from the exported types so the file
// format is fixed here and the Go types stay free of storage tags.
type storedRenewal struct {
	Key              string                 `json:"key"`
	OldCertificateID int                    `json:"old_certificate_id,omitempty"`
	Subject          string                 `json:"subject,omitempty"`
	StartedAt        time.Time              `json:"started_at"`
	NewCertificateID int                    `json:"new_certificate_id,omitempty"`
	RequestID        int                    `json:"request_id,omitempty"`
	RenewedAt        time.Time              `json:"renewed_at,omitzero"`
	Stores           map[string]storedStore `json:"stores,omitempty"`
}

type storedStore struct {
	Status string    `json:"status"`
	At     time.Time `json:"at,omitzero"`
	Detail string    `json:"detail,omitempty"`
}

type storedRun struct {
	Start       time.Time      `json:"start,omitzero"`
	End         time.Time      `json:"end,omitzero"`
	PlanFile    string         `json:"plan_file,omitempty"`
	Counts      map[string]int `json:"counts,omitempty"`
	Interrupted bool           `json:"interrupted,omitempty"`
}

// Open opens the journal at path, creating the file and its directory if
// they do not exist, and holds it locked until Close. If another run (or
// another Open in this process) holds it, Open gives up after a second with
// an error wrapping ErrLocked.
func Open(path string) (*Journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	db, err := openDB(path)
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("open journal %s: %w", path, ErrLocked)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch),
		errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, errDamaged):
		return nil, fmt.Errorf("open journal %s: not a journal or corrupted (move it aside to start afresh): %w", path, err)
	case err != nil:
		// os errors name the path again; once is enough.
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Path == path {
			err = pe.Err
		}
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	if err := initialize(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	return &Journal{db: db, path: path}, nil
}

// errDamaged is wrapped when bbolt panicked on a damaged page.
var errDamaged = errors.New("damaged page")

// openDB opens the bbolt file. bbolt checksums only its two meta pages and
// panics when it meets a damaged page (the freelist is read while opening);
// the panic becomes an error so the caller can name the file. The file
// descriptor of such a failed open is not closed: bbolt does not hand it out.
func openDB(path string) (db *bolt.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("%w: %v", errDamaged, p)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
}

// initialize creates the buckets and checks that the file is a journal. A
// damaged page met here panics like in openDB, and is turned into an error
// the same way.
func initialize(db *bolt.DB) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("not a journal or corrupted (move it aside to start afresh): %w: %v", errDamaged, p)
		}
	}()
	return db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			foreign := false
			if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				foreign = foreign || (!bytes.Equal(name, bucketRenewals) && !bytes.Equal(name, bucketRuns))
				return nil
			}); err != nil {
				return err
			}
			if foreign {
				return errors.New("a bbolt database, but not a runner journal")
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keySchema, []byte(schema)); err != nil {
				return err
			}
		} else if got := string(meta.Get(keySchema)); got != schema {
			return fmt.Errorf("journal format %q, want %q (written by another version of runner?)", got, schema)
		}
		for _, name := range [][]byte{bucketRenewals, bucketRuns} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
}

// Path returns the file the journal was opened from.
func (j *Journal) Path() string { return j.path }

// Close releases the lock and closes the file.
func (j *Journal) Close() error {
	if err := j.db.Close(); err != nil {
		return fmt.Errorf("close journal %s: %w", j.path, err)
	}
	return nil
}

// BeginRenewal records that a renewal is about to be sent: r becomes the
// latest renewal of r.Key, with its outcome unknown until CompleteRenewal.
// It returns after the record is synced to disk, so the caller may then send
// Renew knowing that a crash will not make it forget the attempt.
func (j *Journal) BeginRenewal(r Renewal) error {
	if r.Key == "" {
		return errors.New("begin renewal: empty job key")
	}
	if r.StartedAt.IsZero() {
		return fmt.Errorf("begin renewal of %s: no start time", r.Key)
	}
	err := j.update(r.Key, func(list []storedRenewal) ([]storedRenewal, error) {
		return append(list, toStored(r)), nil
	})
	if err != nil {
		return fmt.Errorf("begin renewal of %s: %w", r.Key, err)
	}
	return nil
}

// CompleteRenewal records the outcome of the latest renewal of key: the new
// certificate's id (0 while a request awaits approval), the request id, and
// when it was renewed. It fails if key has no renewal.
func (j *Journal) CompleteRenewal(key string, newID, requestID int, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("complete renewal of %s: no renewal time", key)
	}
	err := j.updateLatest(key, func(r *storedRenewal) {
		r.NewCertificateID, r.RequestID, r.RenewedAt = newID, requestID, at.UTC()
	})
	if err != nil {
		return fmt.Errorf("complete renewal of %s: %w", key, err)
	}
	return nil
}

// AbandonRenewal removes the latest renewal of key if it is still in
// flight, for when Command surely did not process it (the request was
// refused before it was sent, or a search found no certificate it issued);
// the renewal before it, if any, becomes the latest again. It does nothing
// when key has no renewal, and fails when the latest renewal was completed:
// a renewal that took effect must not be forgotten this way.
func (j *Journal) AbandonRenewal(key string) error {
	err := j.update(key, func(list []storedRenewal) ([]storedRenewal, error) {
		if len(list) == 0 {
			return list, nil
		}
		if last := list[len(list)-1]; !last.RenewedAt.IsZero() {
			return nil, fmt.Errorf("the latest renewal completed at %s (new certificate %d)", last.RenewedAt.Format(time.RFC3339), last.NewCertificateID)
		}
		return list[:len(list)-1], nil
	})
	if err != nil {
		return fmt.Errorf("abandon renewal of %s: %w", key, err)
	}
	return nil
}

// RecordStore records what happened in one store to the latest renewal of
// key, replacing what was recorded for that store before.
func (j *Journal) RecordStore(key, storeID string, st StoreState) error {
	if err := j.RecordStores(key, map[string]StoreState{storeID: st}); err != nil {
		return fmt.Errorf("record store %s for %s: %w", storeID, key, errors.Unwrap(err))
	}
	return nil
}

// RecordStores records the outcome of several stores of the latest renewal
// of key in one transaction: one Deploy answers for all of a certificate's
// stores, and one sync to disk is cheaper than one per store.
func (j *Journal) RecordStores(key string, states map[string]StoreState) error {
	err := j.updateLatest(key, func(r *storedRenewal) {
		if r.Stores == nil {
			r.Stores = map[string]storedStore{}
		}
		for storeID, st := range states {
			r.Stores[storeID] = storedStore{Status: st.Status, At: st.At.UTC(), Detail: st.Detail}
		}
	})
	if err != nil {
		return fmt.Errorf("record stores for %s: %w", key, err)
	}
	return nil
}

// Renewal returns the latest renewal of key, and false if there is none.
func (j *Journal) Renewal(key string) (Renewal, bool, error) {
	list, err := j.History(key)
	if err != nil || len(list) == 0 {
		return Renewal{}, false, err
	}
	return list[len(list)-1], true, nil
}

// History returns every renewal of key, oldest first.
func (j *Journal) History(key string) ([]Renewal, error) {
	var list []storedRenewal
	err := j.db.View(func(tx *bolt.Tx) error {
		var err error
		list, err = decodeRenewals(tx.Bucket(bucketRenewals).Get([]byte(key)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read renewals of %s: %w", key, err)
	}
	out := make([]Renewal, len(list))
	for i, s := range list {
		out[i] = fromStored(s)
	}
	return out, nil
}

// Forget removes every renewal of key, so the next renewal starts a new
// lineage (after --force). Forgetting a key with no renewals is not an error.
func (j *Journal) Forget(key string) error {
	err := j.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRenewals).Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("forget renewals of %s: %w", key, err)
	}
	return nil
}

// RecordRun appends r to the run history, dropping the oldest records
// beyond the last 1000.
func (j *Journal) RecordRun(r RunRecord) error {
	v, err := json.Marshal(storedRun{
		Start: r.Start.UTC(), End: r.End.UTC(), PlanFile: r.PlanFile, Counts: r.Counts, Interrupted: r.Interrupted,
	})
	if err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	err = j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
			return err
		}
		// Keys are sequence numbers, so the oldest records come first.
		c := b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k)+maxRuns <= seq; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	return nil
}

// Runs returns up to limit recorded runs, the most recently recorded first;
// limit <= 0 returns them all.
func (j *Journal) Runs(limit int) ([]RunRecord, error) {
	var out []RunRecord
	err := j.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRuns).Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var s storedRun
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("run record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, RunRecord{Start: s.Start, End: s.End, PlanFile: s.PlanFile, Counts: s.Counts, Interrupted: s.Interrupted})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	return out, nil
}

// update rewrites the renewal list of key in one transaction.
func (j *Journal) update(key string, change func([]storedRenewal) ([]storedRenewal, error)) error {
	return j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRenewals)
		list, err := decodeRenewals(b.Get([]byte(key)))
		if err != nil {
			return err
		}
		if list, err = change(list); err != nil {
			return err
		}
		if len(list) == 0 {
			return b.Delete([]byte(key))
		}
		v, err := json.Marshal(list)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), v)
	})
}

// errNoRenewal is returned when a change needs a renewal that is not there.
var errNoRenewal = errors.New("no renewal recorded")

// updateLatest changes the latest renewal of key; it fails if there is none.
func (j *Journal) updateLatest(key string, change func(*storedRenewal)) error {
	return j.update(key, func(list []storedRenewal) ([]storedRenewal, error) {
		if len(list) == 0 {
			return nil, errNoRenewal
		}
		change(&list[len(list)-1])
		return list, nil
	})
}

func decodeRenewals(v []byte) ([]storedRenewal, error) {
	if v == nil {
		return nil, nil
	}
	var list []storedRenewal
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, fmt.Errorf("decode renewals: %w", err)
	}
	return list, nil
}

func toStored(r Renewal) storedRenewal {
	s := storedRenewal{
		Key:              r.Key,
		OldCertificateID: r.OldCertificateID,
		Subject:          r.Subject,
		StartedAt:        r.StartedAt.UTC(),
		NewCertificateID: r.NewCertificateID,
		RequestID:        r.RequestID,
		RenewedAt:        r.RenewedAt.UTC(),
	}
	if len(r.Stores) > 0 {
		s.Stores = make(map[string]storedStore, len(r.Stores))
		for id, st := range r.Stores {
			s.Stores[id] = storedStore{Status: st.Status, At: st.At.UTC(), Detail: st.Detail}
		}
	}
	return s
}

func fromStored(s storedRenewal) Renewal {
	r := Renewal{
		Key:              s.Key,
		OldCertificateID: s.OldCertificateID,
		Subject:          s.Subject,
		StartedAt:        s.StartedAt,
		NewCertificateID: s.NewCertificateID,
		RequestID:        s.RequestID,
		RenewedAt:        s.RenewedAt,
	}
	if len(s.Stores) > 0 {
		r.Stores = make(map[string]StoreState, len(s.Stores))
		for id, st := range s.Stores {
			r.Stores[id] = StoreState{Status: st.Status, At: st.At, Detail: st.Detail}
		}
	}
	return r
}
