package runner

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	from := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		spec, zone string
		want       []string // next three runs, RFC 3339
		err        string
	}{
		{spec: "15 2 * * *", zone: "UTC", want: []string{"2026-11-24T02:15:00Z", "2026-11-25T02:15:00Z", "2026-11-26T02:15:00Z"}},
		{spec: "@daily", zone: "UTC", want: []string{"2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z", "2026-11-27T00:00:00Z"}},
		{spec: "@every 6h", zone: "UTC", want: []string{"2026-11-24T07:00:00Z", "2026-11-24T13:00:00Z", "2026-11-24T19:00:00Z"}},
		{spec: "0 3 * * 1-5", zone: "Europe/Berlin", want: []string{"2026-11-24T03:00:00+01:00", "2026-11-25T03:00:00+01:00", "2026-11-26T03:00:00+01:00"}},
		{spec: "15 2 * *", zone: "UTC", err: "expected five fields"},
		{spec: "61 2 * * *", zone: "UTC", err: "cron spec"},
		{spec: "@nightly", zone: "UTC", err: "cron spec"},
		{spec: "15 2 * * *", zone: "Mars/Olympus", err: "time zone \"Mars/Olympus\""},
	} {
		t.Run(tc.spec+" "+tc.zone, func(t *testing.T) {
			sched, loc, err := ParseSchedule(tc.spec, tc.zone)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			runs := NextRuns(sched, loc, from, 3)
			if len(runs) != len(tc.want) {
				t.Fatalf("%d next runs, want %d: %v", len(runs), len(tc.want), runs)
			}
			for i, next := range runs {
				if got := next.Format(time.RFC3339); got != tc.want[i] {
					t.Errorf("run %d at %s, want %s", i+1, got, tc.want[i])
				}
			}
		})
	}
}

func TestJitterWaitsARandomShareAndHonoursCancellation(t *testing.T) {
	var asked int64
	var waited time.Duration
	randN := func(n int64) int64 { asked = n; return n / 4 }
	wait := func(ctx context.Context, d time.Duration) error { waited = d; return ctx.Err() }
	if err := Jitter(context.Background(), 10*time.Minute, randN, wait); err != nil {
		t.Fatal(err)
	}
	if asked != int64(10*time.Minute) || waited != 150*time.Second {
		t.Errorf("drew from [0, %s) and waited %s, want [0, 10m) and 2m30s", time.Duration(asked), waited)
	}
	waited = -1
	if err := Jitter(context.Background(), 0, randN, wait); err != nil || waited != -1 {
		t.Errorf("no jitter must not wait (waited %s, err %v)", waited, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Jitter(ctx, time.Minute, randN, wait); !errors.Is(err, context.Canceled) {
		t.Errorf("a signal during the jitter must stop the run, got %v", err)
	}
}

// TestSchedulerRecoversAPanicAndStopsOnSignal runs a real cron schedule
// (@every 1s): the first run panics, the next one still happens, and after
// the context ends no run starts.
func TestSchedulerRecoversAPanicAndStopsOnSignal(t *testing.T) {
	sched, loc, err := ParseSchedule("@every 1s", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var runs atomic.Int32
	second := make(chan struct{})
	s := &Scheduler{Schedule: sched, Location: loc, RunNow: true, Job: func(ctx context.Context, _ time.Time) {
		switch runs.Add(1) {
		case 1:
			panic("boom")
		case 2:
			close(second)
			cancel()
			<-ctx.Done() // like a run finishing its in-flight work after the signal
		}
	}}
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-second:
	case <-time.After(10 * time.Second):
		t.Fatal("no run after the panicking one: the panic left the schedule blocked")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the context ended")
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("%d runs, want 2 (none after the signal)", n)
	}
}
