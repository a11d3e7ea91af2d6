package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"runner/report"
)

// outputs are the files a run writes besides the journal.
type outputs struct {
	reports    []string
	failedPlan string
	metrics    string
}

// timeToken in an output path becomes the run's start time, so a
// schedule keeps one report per run.
const timeToken = "{time}"

// at replaces {time} by start in UTC, as 20261124T021500Z.
func (o outputs) at(start time.Time) outputs {
	stamp := start.UTC().Format("20060102T150405Z")
	sub := func(p string) string { return strings.ReplaceAll(p, timeToken, stamp) }
	out := outputs{failedPlan: sub(o.failedPlan), metrics: sub(o.metrics)}
	for _, p := range o.reports {
		out.reports = append(out.reports, sub(p))
	}
	return out
}

// checkFormats refuses, before anything is contacted, an output whose name
// does not say a format runner writes there.
func (o outputs) checkFormats() error {
	for _, p := range o.reports {
		if err := report.CheckPath(p); err != nil {
			return usageError{msg: "--report " + p + ": " + err.Error(), hint: "name the report with one of the known extensions"}
		}
	}
	if o.failedPlan != "" && !strings.EqualFold(filepath.Ext(o.failedPlan), ".csv") {
		return usageError{msg: fmt.Sprintf("--failed-plan %s: a failed plan is a CSV plan; its name must end in .csv", o.failedPlan)}
	}
	if o.metrics != "" && filepath.Ext(o.metrics) != ".prom" {
		return usageError{msg: fmt.Sprintf("--metrics-file %s: node_exporter's textfile collector reads only files ending in .prom", o.metrics)}
	}
	return nil
}

// check refuses outputs that would destroy an input or each other: an
// output path that is the plan, the state file or another output (compared
// resolved, so ./x and x are one), a state file named like a report, and
// outputs whose directory does not exist.
func (o outputs) check(planPath, statePath string) error {
	type named struct{ flag, path string }
	var all []named
	for _, p := range o.reports {
		all = append(all, named{"--report", p})
	}
	if o.failedPlan != "" {
		all = append(all, named{"--failed-plan", o.failedPlan})
	}
	if o.metrics != "" {
		all = append(all, named{"--metrics-file", o.metrics})
	}
	seen := map[string]named{}
	planID, stateID := resolved(planPath), ""
	if statePath != "" {
		stateID = resolved(statePath)
		// A name that says a report, a plan or metrics is a mistake: the
		// journal would be written over it.
		if ext := strings.ToLower(filepath.Ext(statePath)); report.CheckPath(statePath) == nil || ext == ".csv" || ext == ".prom" {
			return usageError{msg: fmt.Sprintf("--state %s: a state file is a database, not a %s file", statePath, filepath.Ext(statePath)), hint: "name it e.g. runner.db"}
		}
		if stateID == planID {
			return usageError{msg: fmt.Sprintf("--state %s is the plan itself: the journal would be written over the plan", statePath), hint: "leave --state out (one state file per Command in the state directory), or name a file of its own, e.g. runner.db"}
		}
	}
	for _, n := range all {
		id := resolved(n.path)
		switch {
		case id == planID:
			return usageError{msg: fmt.Sprintf("%s %s is the plan itself: writing it would replace the plan", n.flag, n.path), hint: "write outputs to other files, e.g. --failed-plan failed.csv"}
		case stateID != "" && id == stateID:
			return usageError{msg: fmt.Sprintf("%s %s is the state file: writing it would destroy the journal", n.flag, n.path)}
		}
		if first, dup := seen[id]; dup {
			return usageError{msg: fmt.Sprintf("%s %s and %s %s are the same file: one would overwrite the other", first.flag, first.path, n.flag, n.path)}
		}
		seen[id] = n
		if err := dirExists(n.path); err != nil {
			return usageError{msg: fmt.Sprintf("%s %s: %v", n.flag, n.path, err)}
		}
	}
	return nil
}

// resolved is the absolute, cleaned path with symlinks followed where the
// file exists, so two spellings of one file compare equal.
func resolved(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = filepath.Clean(path)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	// The file does not exist yet: resolve its directory.
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(dir, filepath.Base(abs))
	}
	return abs
}

func dirExists(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory %s does not exist", dir)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}
