// Package report writes the results of a run: one record per plan row, as
// JSON, CSV, Markdown, a terminal summary, or a plan of the failed rows to
// rerun. It owns the report formats and how report files reach the disk
// (temporary file, then rename). It does not decide outcomes: the runner fills
// in every Row, and this package only renders what it is given.
package report

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Status is how a plan row ended.
type Status string

// The statuses a row can end in.
const (
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	Skipped   Status = "skipped"
)

// Stage is where a row ended: the last step the runner took for it.
type Stage string

// The stages of a run, in the order the runner goes through them.
const (
	StagePlan      Stage = "plan"
	StagePreflight Stage = "preflight"
	StageCheck     Stage = "check"
	StageRenew     Stage = "renew"
	StageDeploy    Stage = "deploy"
	StageVerify    Stage = "verify"
)

// Row is the outcome of one plan row.
type Row struct {
	Line          int // 1-based physical line in the plan
	CertificateID int // 0 when the plan named the certificate by thumbprint
	Thumbprint    string
	StoreID       string
	Alias         string

	Status Status
	Stage  Stage
	Detail string // what happened, in words
	Error  string // the underlying error, if any

	NewCertificateID int // 0 = none
	RequestID        int // 0 = none

	RenewedAt, DeployedAt, VerifiedAt time.Time // zero = did not happen

	// PlanValues are the row's cells as written in the plan, in Run.Columns
	// order; the CSV report and the failed plan repeat them so the rows can
	// be filtered and rerun.
	PlanValues []string
}

// Run describes the run as a whole.
type Run struct {
	Start, End  time.Time
	PlanFile    string
	Columns     []string // the plan's canonical column names, in file order
	DryRun      bool
	Interrupted bool
	Command     string // "run" or "plan"
}

// Report is everything a report file holds: the run and one Row per plan row.
type Report struct {
	Run  Run
	Rows []Row
}

// Counts returns the number of rows per status. The three known statuses are
// always present, so callers can print them without checking.
func (r *Report) Counts() map[Status]int {
	c := map[Status]int{Succeeded: 0, Failed: 0, Skipped: 0}
	for _, row := range r.Rows {
		c[row.Status]++
	}
	return c
}

// formats maps a lower-case file extension to its writer. The order of
// knownExtensions is the order error messages list them in.
var (
	formats = map[string]func(io.Writer, *Report) error{
		".json":     WriteJSON,
		".csv":      WriteCSV,
		".md":       WriteMarkdown,
		".markdown": WriteMarkdown,
	}
	knownExtensions = []string{".json", ".csv", ".md", ".markdown"}
)

// CheckPath reports whether WriteFile knows the format of path, so that a
// command line can refuse a bad --report before anything is contacted.
func CheckPath(path string) error {
	_, err := formatOf(path)
	return err
}

func formatOf(path string) (func(io.Writer, *Report) error, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if f, ok := formats[ext]; ok {
		return f, nil
	}
	what := fmt.Sprintf("unknown extension %q", ext)
	if ext == "" {
		what = "no extension"
	}
	return nil, fmt.Errorf("report %s: %s; known extensions: %s", path, what, strings.Join(knownExtensions, ", "))
}

// WriteFile writes r to path in the format its extension names (.json, .csv,
// .md or .markdown). The report is written to a temporary file in the same
// directory and renamed over path, so a failed write never leaves a
// truncated report and never replaces an earlier one.
func WriteFile(path string, r *Report) error {
	write, err := formatOf(path)
	if err != nil {
		return err
	}
	if err := writeAtomic(path, 0o644, func(w io.Writer) error { return write(w, r) }); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}

// wrapWriter lets tests make the writes into the temporary file fail.
var wrapWriter = func(w io.Writer) io.Writer { return w }

// writeAtomic writes through write into a temporary file beside path, syncs
// it, and renames it to path. On any failure the temporary file is removed
// and path is left as it was.
func writeAtomic(path string, mode os.FileMode, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriter(wrapWriter(f))
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; reports are meant to be shared.
	if err := f.Chmod(mode); err != nil {
		return err
	}
	// Sync before rename: otherwise a crash can leave a renamed but empty
	// file on some filesystems.
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) {
			// The LinkError names the temporary file, which no longer exists
			// once we return; name only what the caller asked for.
			return le.Err
		}
		return err
	}
	return nil
}
