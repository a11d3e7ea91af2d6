// Package journal is the runner's durable state: one bbolt file per Keyfactor
// Command, shared by every plan that is run against it. It owns
//
//   - each certificate's lineage: the renewals that followed one another from
//     a root certificate, with the in-flight marker written (and synced)
//     before Renew is sent, so a lost answer or a crash never leads to a
//     second renewal, and what happened in each store;
//   - an index from every certificate of a lineage to its root, so a plan
//     naming any of them (the nightly plan, a failed plan, a one-off plan
//     naming the newest certificate) finds the same lineage, and the claims
//     that keep one lineage from taking another's certificate;
//   - the history of runs;
//   - where the file lives (StateDir, DefaultPath), the lock that keeps two
//     runs off one file, and the import of the older layout of one file per
//     plan (MigrateLegacy).
//
// Writes are group-committed by one writer goroutine: every write queued
// while a transaction is syncing goes into the next one. It makes no network
// calls and decides nothing; the runner reads and writes it. It never stores
// secrets: no type here has a field for one, and the Command URL is recorded
// without any user information it carried.
package journal

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	// ErrLocked is wrapped by Open's *LockedError when another run holds
	// the file.
	ErrLocked = errors.New("journal is locked by another run")
	// ErrOtherCommand is wrapped by Open's error when the file belongs to
	// another Command than Options.Command.
	ErrOtherCommand = errors.New("journal belongs to another Command")
	// ErrClaimed is wrapped when a change would give a lineage a
	// certificate that belongs to another lineage.
	ErrClaimed = errors.New("certificate belongs to another lineage")
	// ErrInFlight is wrapped when a renewal or adoption is begun in a
	// lineage whose earlier renewal's outcome is still unknown: it must be
	// settled (Update or Abandon) first, so no certificate is renewed twice.
	ErrInFlight = errors.New("a renewal of this lineage is still in flight")
)

// DefaultWaitLock is how long Open waits for another holder of the file when
// Options.WaitLock is zero: long enough to ride out a run that is just
// closing, short enough that an overlapping cron run gives up at once.
const DefaultWaitLock = time.Second

// maxRuns bounds the run history; older records are dropped.
const maxRuns = 1000

// The schema is written into the meta bucket so that a bbolt file belonging
// to something else, or to another version, is refused rather than written
// into. v1 was one file per plan keyed by plan job; v2 is one file per
// Command keyed by certificate.
const (
	schemaV1 = "runner.journal/v1"
	schema   = "runner.journal/v2"
)

var (
	bucketMeta     = []byte("meta")
	bucketLineages = []byte("lineages") // root id → storedLineage
	bucketIndex    = []byte("index")    // certificate id → root id
	bucketRuns     = []byte("runs")     // sequence → storedRun
	bucketV1       = []byte("renewals") // v1: plan job key → []storedV1Renewal
	keySchema      = []byte("schema")
	keyCommand     = []byte("command")
	keySeq         = []byte("seq") // the highest Renewal.Seq handed out
)

// Options tell Open which Command the file belongs to and how to open it.
type Options struct {
	// Command is the base URL of the Command API, e.g.
	// "https://command.example.com/KeyfactorAPI". A new file records it;
	// an existing file of another Command is refused. Required.
	Command string
	// WaitLock is how long Open waits while another run holds the file:
	// 0 means DefaultWaitLock, a negative value means not at all.
	WaitLock time.Duration
	// Done, when closed, ends the wait for the lock early (pass the run's
	// ctx.Done(), so an interrupt is not held up by --wait-lock).
	Done <-chan struct{}
	// Now is the clock for the times the journal fills in (a renewal's
	// start when not given, the lock holder's start); nil means time.Now.
	Now func() time.Time

	// lockRetry, when set (by tests), is called each time Open finds the
	// file locked and is about to wait before trying again.
	lockRetry func()
}

// Kind says how a renewal came to be.
type Kind string

const (
	// KindRenewal is a renewal runner sent to Command.
	KindRenewal Kind = "renewal"
	// KindAdoption is a newer certificate found in the certificate's
	// stores without a journal entry for it (a new machine, a lost file):
	// recorded as the lineage's next certificate, renewed by nobody here.
	KindAdoption Kind = "adoption"
)

// State is where a renewal stands.
type State string

const (
	// StateInFlight: Renew may or may not have been processed by Command.
	StateInFlight State = "in-flight"
	// StateRenewed: Command issued NewCertificateID.
	StateRenewed State = "renewed"
	// StatePending: request RequestID awaits approval in Command.
	StatePending State = "pending"
	// StateDenied: Command (or an approver) denied request RequestID.
	StateDenied State = "denied"
	// StateFailed: Command answered the renewal with a failure.
	StateFailed State = "failed"
	// StateAbandoned: Command surely did not process the renewal; kept as
	// history, never current (see Lineage.Latest).
	StateAbandoned State = "abandoned"
)

// Store statuses the runner records in StoreState.Status.
const (
	StoreJobCreated = "job-created"
	StoreFailed     = "failed"
	StoreVerified   = "verified"
	StoreOrphaned   = "orphaned" // the staging window passed before a job was created
)

// Renewal is one step of a lineage: a renewal of OldCertificateID, or the
// adoption of a certificate found in its stores.
type Renewal struct {
	Seq              uint64 // assigned by Begin or Adopt, unique in the file
	Kind             Kind
	State            State
	OldCertificateID int
	Subject          string    // IssuedDN of the old certificate
	StartedAt        time.Time // for a renewal: synced before Renew is sent
	NewCertificateID int       // 0 until known
	RequestID        int
	RenewedAt        time.Time
	Message          string // what Command said (a denial, a failure); never a secret
	Orphaned         bool   // renewed, but its staging window passed undeployed; reported once
	Stores           map[string]StoreState
}

// InFlight reports whether Renew was begun and its outcome is not known.
func (r Renewal) InFlight() bool { return r.State == StateInFlight }

// StoreState is what happened to a renewal in one certificate store, keyed
// in Renewal.Stores by the store id as the plan gives it (lower case).
type StoreState struct {
	Status string // StoreJobCreated, StoreFailed, StoreVerified, StoreOrphaned
	At     time.Time
	Detail string
}

// Lineage is the history of one certificate: Root, the certificate it
// started from, and its renewals and adoptions, oldest first.
type Lineage struct {
	Root     int
	Renewals []Renewal
}

// Latest returns the newest renewal that was not abandoned, and false when
// there is none.
func (l Lineage) Latest() (Renewal, bool) {
	for i := len(l.Renewals) - 1; i >= 0; i-- {
		if l.Renewals[i].State != StateAbandoned {
			return l.Renewals[i], true
		}
	}
	return Renewal{}, false
}

// RunRecord is the summary of one run.
type RunRecord struct {
	Start, End  time.Time
	PlanFile    string
	Counts      map[string]int // rows per report status
	Interrupted bool
}

// Journal is an open state file, locked until Close. Its methods are safe
// for concurrent use.
type Journal struct {
	db           *bolt.DB
	path         string
	command      string // as recorded in the file
	now          func() time.Time
	upgradedFrom string
	commits      atomic.Uint64
	fileReads    atomic.Uint64 // lineages read from the file, for tests

	// beforeCommit, when set (by tests), runs inside every write
	// transaction before the writes; an error fails the transaction.
	beforeCommit func() error

	mu    sync.RWMutex
	cond  *sync.Cond           // on mu: a batch was queued or committed, or Close began
	index certIndex            // every certificate id of a lineage → its root
	live  map[int]*liveLineage // lineages with writes not yet committed, by root
	// recent are lineages committed lately, kept so the next write or read
	// of one needs no read of the file.
	recent recentLineages
	seq    uint64 // the highest Renewal.Seq handed out
	next   *batch // writes waiting for the writer
	// committing is the batch the writer is committing, nil when idle.
	committing *batch
	// failed is the first failed commit: once the disk refused a write,
	// what callers were told no longer matches the file, so nothing more
	// is written.
	failed     error
	closing    bool
	writerDone chan struct{}
}

// liveLineage is the newest state of a lineage with writes in the queue or
// being committed; pending counts them. Other lineages are read from the
// file, so memory stays flat however many lineages the file holds.
type liveLineage struct {
	lin     Lineage
	pending int
}

// The stored shapes are kept apart from the exported types so the file
// format is fixed here and the Go types stay free of storage tags.
type storedLineage struct {
	Renewals []storedRenewal `json:"renewals"`
}

type storedRenewal struct {
	Seq              uint64                 `json:"seq"`
	Kind             string                 `json:"kind"`
	State            string                 `json:"state"`
	OldCertificateID int                    `json:"old_certificate_id,omitempty"`
	Subject          string                 `json:"subject,omitempty"`
	StartedAt        time.Time              `json:"started_at,omitzero"`
	NewCertificateID int                    `json:"new_certificate_id,omitempty"`
	RequestID        int                    `json:"request_id,omitempty"`
	RenewedAt        time.Time              `json:"renewed_at,omitzero"`
	Message          string                 `json:"message,omitempty"`
	Orphaned         bool                   `json:"orphaned,omitempty"`
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

// Open opens the state file at path for opts.Command, creating the file
// (0600) and its directory (0700) when they do not exist, and holds it
// locked until Close. While another run holds it, Open waits up to
// opts.WaitLock and then returns a *LockedError naming the holder. A file of
// another Command is refused (ErrOtherCommand). A file of the older
// one-per-plan layout (runner.journal/v1) is upgraded in place in one
// transaction and bound to opts.Command (see UpgradedFrom).
func Open(path string, opts Options) (*Journal, error) {
	cmd, err := parseCommand(opts.Command)
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, unwrapPath(err, filepath.Dir(path)))
	}
	db, err := lock(path, opts.WaitLock, opts.Done, opts.lockRetry)
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, &LockedError{Path: path, Holder: readHolder(path)}
	case damaged(err):
		return nil, fmt.Errorf("open journal %s: not a journal or corrupted (move it aside to start afresh): %w", path, err)
	case err != nil:
		return nil, fmt.Errorf("open journal %s: %w", path, unwrapPath(err, path))
	}
	j := &Journal{
		db: db, path: path, now: now,
		index: newCertIndex(), live: map[int]*liveLineage{}, recent: newRecentLineages(recentCapacity),
		next: newBatch(), writerDone: make(chan struct{}),
	}
	j.cond = sync.NewCond(&j.mu)
	fail := func(err error) (*Journal, error) {
		os.Remove(holderPath(path))
		db.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	if err := writeHolder(path, Holder{PID: os.Getpid(), Host: hostname(), Started: now().UTC()}); err != nil {
		return fail(err)
	}
	if j.command, j.upgradedFrom, err = initialize(db, cmd); err != nil {
		return fail(err)
	}
	if err := j.load(); err != nil {
		return fail(err)
	}
	go j.write()
	return j, nil
}

// unwrapPath drops an *fs.PathError naming path: the caller names it once.
func unwrapPath(err error, path string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		return pe.Err
	}
	return err
}

// errDamaged is wrapped when bbolt panicked on a damaged page.
var errDamaged = errors.New("damaged page")

// damaged reports whether openDB failed because the file is not a bbolt
// file of this format or is corrupted.
func damaged(err error) bool {
	return errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrVersionMismatch) ||
		errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, errDamaged)
}

// openDB opens the bbolt file, trying its lock once. bbolt checksums only
// its two meta pages and panics when it meets a damaged page (the freelist
// is read while opening); the panic becomes an error so the caller can name
// the file. The file descriptor of such a failed open is not closed: bbolt
// does not hand it out.
func openDB(path string, readOnly bool) (db *bolt.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("%w: %v", errDamaged, p)
		}
	}()
	// Any timeout shorter than bbolt's 50 ms retry interval makes it try
	// the lock exactly once; lock does the waiting.
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Nanosecond, ReadOnly: readOnly})
}

// initialize creates the buckets of a new file, checks an existing one
// (schema and Command), and upgrades a v1 file in place. It returns the
// Command as recorded in the file and the schema it upgraded from ("" when
// none). A damaged page met here panics like in openDB, and is turned into
// an error the same way.
func initialize(db *bolt.DB, cmd commandURL) (recorded, upgradedFrom string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("not a journal or corrupted (move it aside to start afresh): %w: %v", errDamaged, p)
		}
	}()
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			empty := true
			if err := tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil }); err != nil {
				return err
			}
			if !empty {
				return errors.New("a bbolt database, but not a runner journal")
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keySchema, []byte(schema)); err != nil {
				return err
			}
			if err := meta.Put(keyCommand, []byte(cmd.String())); err != nil {
				return err
			}
		}
		// The v2 buckets, which an upgrade writes into; a refused file
		// keeps none of them, as the transaction is rolled back.
		for _, name := range [][]byte{bucketLineages, bucketIndex, bucketRuns} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		switch got := string(meta.Get(keySchema)); got {
		case schema:
			recorded = string(meta.Get(keyCommand))
			if !cmd.same(recorded) {
				return fmt.Errorf("the file belongs to Command %s, not %s: %w", recorded, cmd, ErrOtherCommand)
			}
		case schemaV1:
			if err := upgradeV1(tx, cmd); err != nil {
				return fmt.Errorf("upgrade from %s: %w", schemaV1, err)
			}
			recorded, upgradedFrom = cmd.String(), schemaV1
		default:
			return fmt.Errorf("journal format %q, want %q (written by another version of runner?)", got, schema)
		}
		return nil
	})
	return recorded, upgradedFrom, err
}

// load reads the certificate index into memory, so ClaimedBy and Lineage
// find a root without a read transaction.
func (j *Journal) load() error {
	return j.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keySeq); len(v) == 8 {
			j.seq = binary.BigEndian.Uint64(v)
		}
		index := tx.Bucket(bucketIndex)
		// Stats reads page headers only; sizing the slice once saves
		// copying it while it grows.
		j.index.loaded = make([]indexEntry, 0, index.Stats().KeyN)
		c := index.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 || len(v) != 8 {
				return fmt.Errorf("index entry %x: want 8-byte ids", k)
			}
			j.index.load(btoi(k), btoi(v))
		}
		return nil
	})
}

// Path returns the file the journal was opened from.
func (j *Journal) Path() string { return j.path }

// Command returns the Command URL the file belongs to, as recorded in it.
func (j *Journal) Command() string { return j.command }

// UpgradedFrom returns the schema Open upgraded the file from
// ("runner.journal/v1"), or "" when the file needed no upgrade; the runner
// logs it.
func (j *Journal) UpgradedFrom() string { return j.upgradedFrom }

// CommitCount returns how many write transactions were committed since
// Open: each costs two syncs to disk.
func (j *Journal) CommitCount() uint64 { return j.commits.Load() }

// Close commits what is still queued, releases the lock and closes the file.
// It also returns a failed commit of an earlier write, so a failure of
// UpdateAsync is never lost.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closing {
		j.mu.Unlock()
		return nil
	}
	j.closing = true
	j.cond.Broadcast()
	j.mu.Unlock()
	<-j.writerDone

	var errs []error
	if j.failed != nil {
		errs = append(errs, j.failed)
	}
	// The note goes before the lock: removed after, it could be the next
	// holder's.
	if err := os.Remove(holderPath(j.path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("close journal %s: remove lock note: %w", j.path, err))
	}
	if err := j.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close journal %s: %w", j.path, err))
	}
	return errors.Join(errs...)
}

// ClaimedBy returns the root of the lineage certID belongs to. It answers
// from memory and sees a claim as soon as Begin, Adopt or Update (or
// UpdateAsync) is called, before the commit, so concurrent workers searching
// for a lost renewal can exclude every certificate already claimed.
func (j *Journal) ClaimedBy(certID int) (root int, ok bool) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return j.index.get(certID)
}

// Lineage returns the lineage certID belongs to, found by any of its
// certificates: the root, the old or new certificate of any renewal, or an
// adopted certificate. It sees every change already made through this
// Journal, committed or not.
func (j *Journal) Lineage(certID int) (Lineage, bool, error) {
	j.mu.RLock()
	root, ok := j.index.get(certID)
	var lin Lineage
	inMemory := false
	if ok {
		lin, inMemory = j.inMemoryLocked(root)
	}
	j.mu.RUnlock()
	if !ok {
		return Lineage{}, false, nil
	}
	if inMemory {
		return lin, true, nil
	}
	lin, found, err := j.read(root)
	if err != nil {
		return Lineage{}, false, fmt.Errorf("read lineage %d of certificate %d: %w", root, certID, err)
	}
	return lin, found, nil
}

// inMemoryLocked returns a copy of root's lineage when memory holds it: live
// (with writes queued) or committed lately. j.mu is held, for reading at
// least.
func (j *Journal) inMemoryLocked(root int) (Lineage, bool) {
	if l := j.live[root]; l != nil {
		return l.lin.clone(), true
	}
	if l, ok := j.recent.get(root); ok {
		return l.clone(), true
	}
	return Lineage{}, false
}

// read reads a committed lineage from the file.
func (j *Journal) read(root int) (lin Lineage, found bool, err error) {
	j.fileReads.Add(1)
	err = j.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLineages).Get(itob(root))
		if v == nil {
			return nil
		}
		found = true
		lin, err = decodeLineage(root, v)
		return err
	})
	return lin, found, err
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
		return nil, fmt.Errorf("read runs of %s: %w", j.path, err)
	}
	return out, nil
}

func (l Lineage) clone() Lineage {
	out := Lineage{Root: l.Root, Renewals: make([]Renewal, len(l.Renewals))}
	for i, r := range l.Renewals {
		out.Renewals[i] = r.clone()
	}
	return out
}

func (r Renewal) clone() Renewal {
	if r.Stores != nil {
		stores := make(map[string]StoreState, len(r.Stores))
		for id, st := range r.Stores {
			stores[id] = st
		}
		r.Stores = stores
	}
	return r
}

// normalized is r as it reads back from the file: times in UTC, no empty
// map. Live lineages hold this form so a read does not depend on whether
// the lineage was committed yet.
func (r Renewal) normalized() Renewal {
	r = r.clone()
	r.StartedAt, r.RenewedAt = utc(r.StartedAt), utc(r.RenewedAt)
	if len(r.Stores) == 0 {
		r.Stores = nil
	}
	for id, st := range r.Stores {
		st.At = utc(st.At)
		r.Stores[id] = st
	}
	return r
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// encodeLineage is the stored form of l: exactly what json.Marshal makes of
// its storedLineage (see marshalLineage), written by hand because the
// runner encodes a lineage at every write.
func encodeLineage(l Lineage) ([]byte, error) {
	if b, ok := appendLineage(make([]byte, 0, 256*len(l.Renewals)+16), l); ok {
		return b, nil
	}
	return marshalLineage(l)
}

// marshalLineage encodes l through encoding/json: the definition of the
// format, and the way for values appendLineage leaves to it.
func marshalLineage(l Lineage) ([]byte, error) {
	s := storedLineage{Renewals: make([]storedRenewal, len(l.Renewals))}
	for i, r := range l.Renewals {
		s.Renewals[i] = storedRenewal{
			Seq: r.Seq, Kind: string(r.Kind), State: string(r.State),
			OldCertificateID: r.OldCertificateID, Subject: r.Subject, StartedAt: utc(r.StartedAt),
			NewCertificateID: r.NewCertificateID, RequestID: r.RequestID, RenewedAt: utc(r.RenewedAt),
			Message: r.Message, Orphaned: r.Orphaned,
		}
		if len(r.Stores) > 0 {
			s.Renewals[i].Stores = make(map[string]storedStore, len(r.Stores))
			for id, st := range r.Stores {
				s.Renewals[i].Stores[id] = storedStore{Status: st.Status, At: utc(st.At), Detail: st.Detail}
			}
		}
	}
	return json.Marshal(s)
}

func decodeLineage(root int, v []byte) (Lineage, error) {
	var s storedLineage
	if err := json.Unmarshal(v, &s); err != nil {
		return Lineage{}, fmt.Errorf("decode lineage %d: %w", root, err)
	}
	l := Lineage{Root: root, Renewals: make([]Renewal, len(s.Renewals))}
	for i, sr := range s.Renewals {
		r := Renewal{
			Seq: sr.Seq, Kind: Kind(sr.Kind), State: State(sr.State),
			OldCertificateID: sr.OldCertificateID, Subject: sr.Subject, StartedAt: sr.StartedAt,
			NewCertificateID: sr.NewCertificateID, RequestID: sr.RequestID, RenewedAt: sr.RenewedAt,
			Message: sr.Message, Orphaned: sr.Orphaned,
		}
		if len(sr.Stores) > 0 {
			r.Stores = make(map[string]StoreState, len(sr.Stores))
			for id, st := range sr.Stores {
				r.Stores[id] = StoreState{Status: st.Status, At: st.At, Detail: st.Detail}
			}
		}
		l.Renewals[i] = r
	}
	return l, nil
}

// itob and btoi encode ids as 8-byte big-endian keys, so the file sorts
// them numerically.
func itob(id int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }
func btoi(b []byte) int  { return int(binary.BigEndian.Uint64(b)) }
