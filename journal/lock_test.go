package journal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// holdEnv names the state file a re-executed test binary holds locked: it
// prints "locked", holds the lock until its stdin closes, then closes.
const holdEnv = "JOURNAL_TEST_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(holdEnv); path != "" {
		os.Exit(hold(path))
	}
	os.Exit(m.Run())
}

func hold(path string) int {
	j, err := Open(path, testOptions())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	if err := j.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// holdInChild starts a child process holding path; closing stdin lets it go.
func holdInChild(t *testing.T, path string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("child: %q, %v; want it to say it holds the lock", line, err)
	}
	return cmd, stdin
}

func lockedError(t testing.TB, err error, path string) *LockedError {
	t.Helper()
	t.Log(err)
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("Open: %v, want a *LockedError wrapping ErrLocked", err)
	}
	if le.Path != path || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q: want it to name %s", err, path)
	}
	return le
}

func TestLockInOneProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	j := openT(t, path)

	// bbolt's flock belongs to a file description, so a second Open in the
	// same process is refused like another process.
	_, err := Open(path, Options{Command: testCommand, WaitLock: -1})
	le := lockedError(t, err, path)
	want := Holder{PID: os.Getpid(), Host: hostname(), Started: t0}
	if le.Holder != want {
		t.Errorf("holder = %+v, want %+v", le.Holder, want)
	}
	for _, s := range []string{strconv.Itoa(want.PID), "host " + want.Host, "since 2026-11-24T02:00:00Z"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if fi, err := os.Stat(holderPath(path)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock note: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}

	// Closing releases the lock and removes the note.
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(holderPath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock note after Close: %v, want it removed", err)
	}
	openT(t, path)
}

func TestLockedWithoutANote(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	openT(t, path)
	if err := os.Remove(holderPath(path)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{Command: testCommand, WaitLock: -1})
	if le := lockedError(t, err, path); le.Holder != (Holder{}) || !strings.Contains(err.Error(), "left no note") {
		t.Errorf("holder = %+v, error %q; want no holder, said so", le.Holder, err)
	}
}

func TestWaitLock(t *testing.T) {
	tests := []struct {
		name      string
		wait      time.Duration
		releaseAt int // release the holder at this retry; 0: never
		cancelAt  int // close Options.Done at this retry; 0: never
		want      int // retries
		wantOpen  bool
	}{
		{"no wait", -1, 0, 0, 0, false},
		{"default wait", 0, 0, 0, int(DefaultWaitLock / lockPoll), false},
		{"gives up after the wait", 3 * lockPoll, 0, 0, 3, false},
		{"rounds a short wait up to one retry", lockPoll / 2, 0, 0, 1, false},
		{"opens once the holder lets go", time.Hour, 2, 0, 2, true},
		{"stops waiting when done", time.Hour, 0, 2, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			holder := openT(t, path)
			done := make(chan struct{})
			retries := 0
			opts := testOptions()
			opts.WaitLock, opts.Done = tt.wait, done
			opts.lockRetry = func() {
				retries++
				if retries == tt.releaseAt {
					holder.Close()
				}
				if retries == tt.cancelAt {
					close(done)
				}
			}
			j, err := Open(path, opts)
			if tt.wantOpen {
				if err != nil {
					t.Fatal(err)
				}
				j.Close()
			} else {
				lockedError(t, err, path)
			}
			if retries != tt.want {
				t.Errorf("%d retries, want %d", retries, tt.want)
			}
		})
	}
}

func TestLockHeldByAnotherProcess(t *testing.T) {
	t.Run("released", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		child, stdin := holdInChild(t, path)
		_, err := Open(path, Options{Command: testCommand, WaitLock: -1})
		if le := lockedError(t, err, path); le.Holder.PID != child.Process.Pid || le.Holder.Host != hostname() {
			t.Errorf("holder = %+v, want pid %d on %s", le.Holder, child.Process.Pid, hostname())
		}
		stdin.Close()
		if err := child.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
		openT(t, path)
	})
	t.Run("killed", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		child, _ := holdInChild(t, path)
		if err := child.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		child.Wait()
		// The kernel dropped the flock; the note is stale.
		if h := readHolder(path); h.PID != child.Process.Pid {
			t.Fatalf("note before = %+v, want the killed child's", h)
		}
		openT(t, path)
		if h := readHolder(path); h.PID != os.Getpid() {
			t.Errorf("note after = %+v, want this process's", h)
		}
	})
}
