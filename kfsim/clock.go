package kfsim

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Clock tells the simulator what time it is. Staging windows, job run times
// and certificate validity all follow it, so tests can drive them without
// sleeping.
type Clock interface {
	Now() time.Time
}

// realClock is the wall clock, used when Options.Clock is nil.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// ManualClock is a Clock that only moves when told to. It is safe for
// concurrent use, because the simulator reads it from request goroutines
// while a test advances it.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a ManualClock standing at t.
func NewManualClock(t time.Time) *ManualClock {
	return &ManualClock{now: t}
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (backward if d is negative).
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set puts the clock at t.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// errRestarted is what sleep returns when the simulator restarted during
// the wait.
var errRestarted = errors.New("kfsim restarted")

// sleep waits d of real time, or until ctx is done (its error) or the
// simulator restarts (errRestarted). Fault delays are physical time, like
// the client's timeouts they are measured against; the simulator's Clock
// is for the world's time.
func sleep(ctx context.Context, restarted <-chan struct{}, d time.Duration) error {
	if d <= 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-restarted:
			return errRestarted
		default:
			return nil
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-restarted:
		return errRestarted
	case <-t.C:
		return nil
	}
}
