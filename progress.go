package main

import (
	"fmt"
	"time"

	"github.com/schollz/progressbar/v3"

	"runner/report"
)

// progress is the live bar on a terminal: rows done of all, counts by
// status, rate and time left. A nil *progress does nothing.
type progress struct {
	gate   *logGate // every bar update happens under the log's lock
	bar    *progressbar.ProgressBar
	counts map[report.Status]int
}

// startProgress shows the bar when --progress says so: always, or (auto) when
// stderr is a terminal and the run is not quiet.
func (inv *invocation) startProgress(total int) *progress {
	on := inv.progress == "always" || ((inv.progress == "" || inv.progress == "auto") && isTerminal(inv.stderr) && !inv.quiet)
	if !on || total == 0 {
		return nil
	}
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(inv.stderr),
		progressbar.OptionSetDescription("starting"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("rows"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	p := &progress{gate: inv.logGate, bar: bar, counts: map[report.Status]int{}}
	inv.logGate.beforeEachLine(func() { _ = bar.Clear() })
	return p
}

// add counts a row that reached its final status.
func (p *progress) add(row report.Row) {
	if p == nil {
		return
	}
	p.gate.withOutput(func() {
		p.counts[row.Status]++
		p.bar.Describe(fmt.Sprintf("%d succeeded, %d failed, %d skipped", p.counts[report.Succeeded], p.counts[report.Failed], p.counts[report.Skipped]))
		_ = p.bar.Add(1)
	})
}

// finish removes the bar before the summary is printed.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.gate.withOutput(func() {
		_ = p.bar.Finish()
		_ = p.bar.Clear()
	})
	p.gate.beforeEachLine(nil)
}
