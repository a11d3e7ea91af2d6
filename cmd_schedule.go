package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"runner/report"
	"runner/runner"
)

func scheduleCommand() *cli.Command {
	flags := append(connectionFlags(), runFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "cron", Category: catFleet, EnvVars: []string{"RUNNER_CRON"}, Usage: `when to run: five cron fields ("15 2 * * *") or @daily, @hourly, @every 6h`},
		&cli.StringFlag{Name: "tz", Category: catFleet, EnvVars: []string{"RUNNER_TZ"}, Usage: "time zone of the schedule (IANA name, e.g. Europe/Berlin; default: the machine's)"},
		&cli.BoolFlag{Name: "run-now", Category: catFleet, EnvVars: []string{"RUNNER_RUN_NOW"}, Usage: "run once at start, then follow the schedule"},
	)
	return &cli.Command{
		Name:      "schedule",
		Usage:     "stay running and run the plan on a cron schedule (for machines without cron)",
		ArgsUsage: "PLAN.csv",
		Description: "Runs the plan on a cron schedule until SIGTERM or SIGINT. Each run reads the plan again,\n" +
			"takes the state lock, writes its reports and logs a one-line summary; a failing run\n" +
			"(even a plan error) is reported and the schedule goes on. {time} in a report path\n" +
			"becomes the run's start time in UTC (20261124T021500Z), so every run keeps its own.\n" +
			"The first signal lets the running renewals finish, writes the report and exits 0;\n" +
			"a second one exits at once. At start it prints the next three run times.\n\n" +
			"Example:\n" +
			"   runner schedule --cron '15 2 * * *' --tz Europe/Berlin --jitter 10m \\\n" +
			"     --report '/var/log/runner/{time}.json' --metrics-file /var/lib/node_exporter/runner.prom \\\n" +
			"     /etc/runner/plan.csv\n" +
			"   runner schedule: \"15 2 * * *\" in Europe/Berlin; next runs 2026-11-24 02:15 CET, 2026-11-25 02:15 CET, 2026-11-26 02:15 CET",
		Flags:  flags,
		Action: scheduleAction,
	}
}

func scheduleAction(c *cli.Context) error {
	spec := c.String("cron")
	if spec == "" {
		return usageError{msg: "schedule needs --cron", hint: `e.g. --cron "15 2 * * *" (02:15 every day) or --cron @daily`}
	}
	sched, loc, err := runner.ParseSchedule(spec, c.String("tz"))
	if err != nil {
		return usageError{msg: err.Error(), hint: "see runner schedule --help"}
	}
	inv, err := readInvocation(c, false)
	if err != nil {
		return err
	}
	var next []string
	for _, t := range runner.NextRuns(sched, loc, time.Now(), 3) {
		next = append(next, t.Format("2006-01-02 15:04 MST"))
	}
	fmt.Fprintf(c.App.Writer, "runner schedule: %q in %s; next runs %s\n", spec, loc, strings.Join(next, ", "))
	s := &runner.Scheduler{
		Schedule: sched, Location: loc, RunNow: c.Bool("run-now"), Jitter: inv.jitter, Logger: inv.log,
		Job: func(ctx context.Context, start time.Time) { inv.scheduledRun(ctx, start) },
	}
	return s.Run(c.Context)
}

// scheduledRun is one run of the schedule: like a one-off run, but its
// errors are logged and the schedule lives on.
func (inv *invocation) scheduledRun(ctx context.Context, start time.Time) {
	inv.logGate.close()
	rep, err := inv.runOnce(ctx, start)
	code := exitCode(err)
	if err != nil && !saidAlready(err) {
		printError(inv.stderr, err)
	}
	args := []any{"exit_code", code, "started", start.UTC().Format(time.RFC3339)}
	if rep != nil {
		c := rep.Counts()
		args = append(args, "rows", len(rep.Rows), "succeeded", c[report.Succeeded], "failed", c[report.Failed], "skipped", c[report.Skipped])
	}
	// One line per run, quiet night or not: a daemon's log is read, not
	// mailed.
	if code == exitOK {
		inv.logGate.direct.Info("scheduled run finished", args...)
	} else {
		inv.logGate.direct.Error("scheduled run finished", args...)
	}
}
