package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The lock is bbolt's flock on the state file. The kernel drops it when its
// holder dies, so a killed run never leaves the file locked; and it belongs
// to an open file description (flock(2)), so a second Open in the same
// process is refused like another process. A flock cannot say who holds it,
// so the holder also writes a note beside the file (<path>.lock, JSON
// {"pid", "host", "started"}) once it has the lock, and removes it on Close;
// a note left by a killed run is simply overwritten by the next holder. The
// note is only ever read to explain a refusal.

// lockPoll is how often Open tries the lock again while it waits.
const lockPoll = 50 * time.Millisecond

// Holder is who holds a state file, from its lock note.
type Holder struct {
	PID     int
	Host    string
	Started time.Time // when it took the lock
}

// LockedError is Open's error when another run holds the file; Holder is
// zero when the holder left no readable note. It wraps ErrLocked.
type LockedError struct {
	Path   string
	Holder Holder
}

func (e *LockedError) Error() string {
	if e.Holder.PID == 0 {
		return fmt.Sprintf("journal %s is locked by another run (which left no note of who it is)", e.Path)
	}
	return fmt.Sprintf("journal %s is locked by pid %d on host %s since %s",
		e.Path, e.Holder.PID, e.Holder.Host, e.Holder.Started.UTC().Format(time.RFC3339))
}

func (e *LockedError) Unwrap() error { return ErrLocked }

type storedHolder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
}

func holderPath(path string) string { return path + ".lock" }

// lock opens path, trying its flock until it is free, wait has passed (0:
// DefaultWaitLock; < 0: try once) or done is closed. It counts tries rather
// than reading a clock, so the wait is as long as the pauses between them.
func lock(path string, wait time.Duration, done <-chan struct{}, retry func()) (*bolt.DB, error) {
	if wait == 0 {
		wait = DefaultWaitLock
	}
	tries := 1
	if wait > 0 {
		tries += int((wait + lockPoll - 1) / lockPoll)
	}
	for try := 1; ; try++ {
		db, err := openDB(path, false)
		if !errors.Is(err, bolterrors.ErrTimeout) || try == tries {
			return db, err
		}
		if retry != nil {
			retry()
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-done:
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// writeHolder writes the lock note for h, replacing any stale one. It goes
// through a temporary file and a rename so a refused Open never reads half
// a note.
func writeHolder(path string, h Holder) error {
	v, err := json.Marshal(storedHolder{PID: h.PID, Host: h.Host, Started: h.Started})
	if err != nil {
		return err
	}
	note := holderPath(path)
	tmp := note + ".tmp"
	if err := os.WriteFile(tmp, append(v, '\n'), 0o600); err != nil {
		return fmt.Errorf("write lock note: %w", err)
	}
	if err := os.Rename(tmp, note); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write lock note: %w", err)
	}
	return nil
}

// readHolder reads the lock note of path; a missing or unreadable note
// gives the zero Holder.
func readHolder(path string) Holder {
	v, err := os.ReadFile(holderPath(path))
	if err != nil {
		return Holder{}
	}
	var s storedHolder
	if json.Unmarshal(v, &s) != nil {
		return Holder{}
	}
	return Holder{PID: s.PID, Host: s.Host, Started: s.Started}
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}
