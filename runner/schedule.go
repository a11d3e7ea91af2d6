package runner

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"runner/keyfactor"
)

// cronParser reads standard five-field specs and the descriptors (@daily,
// @every 6h), like crontab.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule reads a cron spec and a time zone name ("" is the local
// zone, "UTC", "Europe/Berlin"). A CRON_TZ= or TZ= prefix in the spec is
// refused in favour of zone, so there is one way to say it.
func ParseSchedule(spec, zone string) (cron.Schedule, *time.Location, error) {
	loc := time.Local
	if zone != "" {
		var err error
		if loc, err = time.LoadLocation(zone); err != nil {
			return nil, nil, fmt.Errorf("time zone %q: %v (expected an IANA name such as UTC or Europe/Berlin)", zone, err)
		}
	}
	sched, err := cronParser.Parse(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("cron spec %q: %v (expected five fields, minute hour day-of-month month day-of-week, e.g. \"15 2 * * *\", or @daily, @hourly, @every 6h)", spec, err)
	}
	return sched, loc, nil
}

// NextRuns lists the n run times of sched after from, in loc.
func NextRuns(sched cron.Schedule, loc *time.Location, from time.Time, n int) []time.Time {
	out := make([]time.Time, 0, n)
	t := from.In(loc)
	for range n {
		t = sched.Next(t)
		out = append(out, t)
	}
	return out
}

// Scheduler runs a job on a cron schedule (robfig/cron/v3) until its
// context ends. A run that is still going when the next one is due is
// skipped, not stacked; a panic in a run is logged and the next run
// happens. When ctx ends (the first SIGTERM or SIGINT), no run starts any
// more, the running one sees its context cancelled, and Run returns once it
// has finished.
type Scheduler struct {
	Schedule cron.Schedule
	Location *time.Location
	// RunNow starts a run at once, then follows the schedule.
	RunNow bool
	// Jitter delays each start by a random amount up to Jitter.
	Jitter time.Duration
	Logger *slog.Logger
	// Job is one run; start is when the schedule fired.
	Job func(ctx context.Context, start time.Time)
}

// Run schedules Job and blocks until ctx ends and the last run returned.
func (s *Scheduler) Run(ctx context.Context) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clog := cronLogger{log}
	one := cron.FuncJob(func() {
		if ctx.Err() != nil {
			return
		}
		start := time.Now()
		if err := Jitter(ctx, s.Jitter, nil, nil); err != nil {
			return // interrupted during the jitter: no run starts after a signal
		}
		s.Job(ctx, start)
	})
	// SkipIfStillRunning must wrap Recover (cron v3.0.1): the other way
	// round, a panic leaves SkipIfStillRunning's lock taken and every later
	// run is skipped for ever.
	job := cron.NewChain(cron.SkipIfStillRunning(clog), cron.Recover(clog)).Then(one)
	c := cron.New(cron.WithLocation(s.Location), cron.WithLogger(clog))
	c.Schedule(s.Schedule, job)
	c.Start()
	var first sync.WaitGroup // cron waits for the runs it started, this for the one started here
	if s.RunNow {
		first.Go(job.Run)
	}
	<-ctx.Done()
	<-c.Stop().Done()
	first.Wait()
	return nil
}

// Jitter waits a random duration in [0, max), or until ctx ends. randN and
// wait default to math/rand and keyfactor.Sleep. It spreads the nightly
// start of many machines so they do not hit Command at the same second.
func Jitter(ctx context.Context, max time.Duration, randN func(int64) int64, wait func(context.Context, time.Duration) error) error {
	if max <= 0 {
		return nil
	}
	if randN == nil {
		randN = rand.Int64N
	}
	if wait == nil {
		wait = keyfactor.Sleep
	}
	return wait(ctx, time.Duration(randN(int64(max))))
}

// cronLogger routes robfig/cron's logs to slog.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(kv, "err", err)...)
}
