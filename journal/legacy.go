package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The older layout, runner.journal/v1, was one file per plan (PLAN.csv.state
// beside the plan), with bucket "renewals" holding, per plan job key
// ("id:1234" or "thumbprint:AB12…"), the JSON list of that job's renewals,
// oldest first, and bucket "runs" in the format v2 still uses. Each list
// becomes a lineage here: rooted at the key's certificate id, or for a
// thumbprint key at the first renewal's old certificate.

// storedV1Renewal is one renewal as v1 stored it.
type storedV1Renewal struct {
	Key              string                 `json:"key"`
	OldCertificateID int                    `json:"old_certificate_id,omitempty"`
	Subject          string                 `json:"subject,omitempty"`
	StartedAt        time.Time              `json:"started_at"`
	NewCertificateID int                    `json:"new_certificate_id,omitempty"`
	RequestID        int                    `json:"request_id,omitempty"`
	RenewedAt        time.Time              `json:"renewed_at,omitzero"`
	Stores           map[string]storedStore `json:"stores,omitempty"`
}

// renewal maps a v1 renewal onto v2. v1 had no states: a renewal without a
// renewal time was in flight, and one completed without a new certificate
// awaited approval.
func (s storedV1Renewal) renewal() Renewal {
	r := Renewal{
		Kind: KindRenewal, State: StateRenewed,
		OldCertificateID: s.OldCertificateID, Subject: s.Subject, StartedAt: s.StartedAt,
		NewCertificateID: s.NewCertificateID, RequestID: s.RequestID, RenewedAt: s.RenewedAt,
	}
	switch {
	case s.RenewedAt.IsZero():
		r.State = StateInFlight
	case s.NewCertificateID == 0:
		r.State = StatePending
	}
	if len(s.Stores) > 0 {
		r.Stores = make(map[string]StoreState, len(s.Stores))
		for id, st := range s.Stores {
			r.Stores[id] = StoreState{Status: st.Status, At: st.At, Detail: st.Detail}
		}
	}
	return r.normalized()
}

// legacyLineage is one v1 key's renewals, rooted.
type legacyLineage struct {
	key      string
	root     int
	renewals []Renewal
}

// readV1 reads the renewals bucket of a v1 file.
func readV1(tx *bolt.Tx) ([]legacyLineage, error) {
	b := tx.Bucket(bucketV1)
	if b == nil {
		return nil, nil
	}
	var out []legacyLineage
	err := b.ForEach(func(k, v []byte) error {
		var list []storedV1Renewal
		if err := json.Unmarshal(v, &list); err != nil {
			return fmt.Errorf("key %q: decode renewals: %w", k, err)
		}
		if len(list) == 0 {
			return nil
		}
		ll := legacyLineage{key: string(k)}
		switch {
		case strings.HasPrefix(ll.key, "id:"):
			id, err := strconv.Atoi(strings.TrimPrefix(ll.key, "id:"))
			if err != nil || id <= 0 {
				return fmt.Errorf("key %q: want id:N with N a certificate id", k)
			}
			ll.root = id
		case strings.HasPrefix(ll.key, "thumbprint:"):
			if ll.root = list[0].OldCertificateID; ll.root <= 0 {
				return fmt.Errorf("key %q: its first renewal names no old certificate to root the lineage at", k)
			}
		default:
			return fmt.Errorf("key %q: want id:N or thumbprint:HEX", k)
		}
		for _, s := range list {
			ll.renewals = append(ll.renewals, s.renewal())
		}
		out = append(out, ll)
		return nil
	})
	return out, err
}

// importLineages merges legacy lineages into the v2 buckets of tx, oldest
// first, so that when one plan's file renewed 100 into 200 and a failed
// plan's file then renewed 200 into 300, 200's list joins lineage 100
// rather than starting its own. A list whose certificates already belong to
// a lineage joins it; a renewal already there (same kind, old certificate
// and start) is skipped, so importing a file twice imports nothing twice.
// It returns how many lineages gained a renewal, and the index entries it
// wrote.
func importLineages(tx *bolt.Tx, legacy []legacyLineage, nextSeq func() uint64) (int, map[int]int, error) {
	first := func(ll legacyLineage) time.Time { return ll.renewals[0].StartedAt }
	legacy = slices.Clone(legacy)
	slices.SortStableFunc(legacy, func(a, b legacyLineage) int {
		if c := first(a).Compare(first(b)); c != 0 {
			return c
		}
		return a.root - b.root
	})
	lineages, index := tx.Bucket(bucketLineages), tx.Bucket(bucketIndex)
	claims := map[int]int{}
	imported := 0
	for _, ll := range legacy {
		ids := Lineage{Root: ll.root, Renewals: ll.renewals}.certificates()
		var owners []int
		for _, id := range ids {
			if v := index.Get(itob(id)); v != nil && !slices.Contains(owners, btoi(v)) {
				owners = append(owners, btoi(v))
			}
		}
		lin := Lineage{Root: ll.root}
		switch len(owners) {
		case 0:
		case 1:
			lin.Root = owners[0]
			if v := lineages.Get(itob(lin.Root)); v != nil {
				var err error
				if lin, err = decodeLineage(lin.Root, v); err != nil {
					return 0, nil, err
				}
			}
		default:
			slices.Sort(owners)
			return 0, nil, fmt.Errorf("key %q: its certificates %v belong to more than one lineage (%v); move one of the files aside", ll.key, ids, owners)
		}
		added := 0
		for _, r := range ll.renewals {
			if slices.ContainsFunc(lin.Renewals, func(have Renewal) bool {
				return have.Kind == r.Kind && have.OldCertificateID == r.OldCertificateID && have.StartedAt.Equal(r.StartedAt)
			}) {
				continue
			}
			r.Seq = nextSeq()
			lin.Renewals = append(lin.Renewals, r)
			added++
		}
		if added == 0 {
			continue
		}
		slices.SortStableFunc(lin.Renewals, func(a, b Renewal) int { return a.StartedAt.Compare(b.StartedAt) })
		v, err := encodeLineage(lin)
		if err != nil {
			return 0, nil, err
		}
		if err := lineages.Put(itob(lin.Root), v); err != nil {
			return 0, nil, err
		}
		for _, id := range lin.certificates() {
			if err := index.Put(itob(id), itob(lin.Root)); err != nil {
				return 0, nil, err
			}
			claims[id] = lin.Root
		}
		imported++
	}
	return imported, claims, nil
}

// upgradeV1 turns a v1 file into a v2 file of cmd in the transaction of
// Open (initialize, which has created the v2 buckets), so a crash leaves
// either the old file or the new one. Its runs bucket is already in the v2
// format.
func upgradeV1(tx *bolt.Tx, cmd commandURL) error {
	legacy, err := readV1(tx)
	if err != nil {
		return err
	}
	var seq uint64
	if _, _, err := importLineages(tx, legacy, func() uint64 { seq++; return seq }); err != nil {
		return err
	}
	if tx.Bucket(bucketV1) != nil {
		if err := tx.DeleteBucket(bucketV1); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	for k, v := range map[string][]byte{
		string(keySchema): []byte(schema), string(keyCommand): []byte(cmd.String()), string(keySeq): binary.BigEndian.AppendUint64(nil, seq),
	} {
		if err := meta.Put([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

// MigrateLegacy imports the v1 state file at legacyPath (the older
// PLAN.csv.state beside a plan, written against j's Command: the caller
// vouches for that, as v1 did not record it) into j: each job's renewals
// become a lineage, in-flight ones stay in flight, and its run history is
// added. Then it renames the file to <legacyPath>.migrated, so it is not
// imported again. It returns how many lineages gained a renewal; a missing
// file imports nothing and is not an error. The import is one transaction:
// on an error nothing was imported and the file is left where it was.
// Call it before the run's workers start: it waits for queued writes.
func MigrateLegacy(j *Journal, legacyPath string) (int, error) {
	fi, err := os.Stat(legacyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if self, err := os.Stat(j.path); err == nil && fi != nil && os.SameFile(fi, self) {
		return 0, fmt.Errorf("migrate %s: it is the journal itself", legacyPath)
	}
	legacy, runs, err := readLegacyFile(legacyPath)
	var locked *LockedError
	if errors.As(err, &locked) {
		return 0, err // it names the file already
	}
	if err != nil {
		return 0, fmt.Errorf("migrate %s: %w", legacyPath, err)
	}
	n, err := j.importLegacy(legacy, runs)
	if err != nil {
		return 0, fmt.Errorf("migrate %s into %s: %w", legacyPath, j.path, err)
	}
	if err := os.Rename(legacyPath, legacyPath+".migrated"); err != nil {
		return n, fmt.Errorf("migrate %s: imported, but not renamed (importing it again adds nothing): %w", legacyPath, unwrapPath(err, legacyPath))
	}
	return n, nil
}

// readLegacyFile reads a v1 file's lineages and run records.
func readLegacyFile(path string) (legacy []legacyLineage, runs [][]byte, err error) {
	db, err := openDB(path, true)
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		// An older runner is using it; it leaves no note.
		return nil, nil, &LockedError{Path: path}
	case damaged(err):
		return nil, nil, fmt.Errorf("not a journal or corrupted: %w", err)
	case err != nil:
		return nil, nil, unwrapPath(err, path)
	}
	defer db.Close()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("not a journal or corrupted: %w: %v", errDamaged, p)
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.New("not a runner journal")
		}
		switch got := string(meta.Get(keySchema)); got {
		case schemaV1:
		case schema:
			return fmt.Errorf("already a %s state file, not an older one: open it as the state file instead", schema)
		default:
			return fmt.Errorf("journal format %q, want %q", got, schemaV1)
		}
		var err error
		if legacy, err = readV1(tx); err != nil {
			return err
		}
		if b := tx.Bucket(bucketRuns); b != nil {
			return b.ForEach(func(_, v []byte) error {
				runs = append(runs, bytes.Clone(v))
				return nil
			})
		}
		return nil
	})
	return legacy, runs, err
}

// importLegacy writes legacy lineages and runs into j in one transaction of
// its own, once the writer is idle: with j.mu held and nothing queued, no
// lineage is live and no claim can change meanwhile.
func (j *Journal) importLegacy(legacy []legacyLineage, runs [][]byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for len(j.next.writes) > 0 || j.committing != nil {
		j.cond.Wait()
	}
	if err := j.usableLocked(); err != nil {
		return 0, err
	}
	seq := j.seq
	var n int
	var claims map[int]int
	err := j.db.Update(func(tx *bolt.Tx) error {
		var err error
		if n, claims, err = importLineages(tx, legacy, func() uint64 { seq++; return seq }); err != nil {
			return err
		}
		if err := importRuns(tx.Bucket(bucketRuns), runs); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySeq, binary.BigEndian.AppendUint64(nil, seq))
	})
	if err != nil {
		return 0, err
	}
	j.commits.Add(1)
	j.recent = newRecentLineages(recentCapacity) // imported lineages may have merged into kept ones
	j.seq = seq
	for id, root := range claims {
		j.index.set(id, root)
	}
	return n, nil
}

// importRuns appends run records not already in the history (same start,
// end and plan file), then prunes it.
func importRuns(b *bolt.Bucket, runs [][]byte) error {
	if len(runs) == 0 {
		return nil
	}
	type runKey struct {
		start, end time.Time
		plan       string
	}
	keyOf := func(v []byte) (runKey, error) {
		var s storedRun
		err := json.Unmarshal(v, &s)
		return runKey{s.Start.UTC(), s.End.UTC(), s.PlanFile}, err
	}
	have := map[runKey]bool{}
	if err := b.ForEach(func(_, v []byte) error {
		if k, err := keyOf(v); err == nil {
			have[k] = true
		}
		return nil
	}); err != nil {
		return err
	}
	for _, v := range runs {
		k, err := keyOf(v)
		if err != nil {
			return fmt.Errorf("decode run record: %w", err)
		}
		if have[k] {
			continue
		}
		have[k] = true
		if err := appendRun(b, v); err != nil {
			return err
		}
	}
	return pruneRuns(b)
}
