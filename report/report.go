// Package report writes the results of a run: one record per plan row, as
// JSON, CSV, Markdown, HTML or JUnit XML, a Prometheus textfile, a terminal
// summary, a webhook notification, or a plan of the failed rows to rerun. It
// owns the report formats, their escaping, and how report files reach the
// disk (temporary file, then rename). It does not decide outcomes: the runner
// fills in every Row, and this package only renders what it is given.
package report

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Status is how a plan row ended.
type Status string

// The statuses a row can end in.
const (
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	Skipped   Status = "skipped"
)

// statuses is the order every format lists the statuses in.
var statuses = []Status{Succeeded, Failed, Skipped}

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

	// Warnings are things the operator should know that did not fail the
	// row: a certificate found in another store than planned, an answer of
	// Command that could not be trusted.
	Warnings []string

	NewCertificateID int // 0 = none
	RequestID        int // 0 = none

	RenewedAt, DeployedAt, VerifiedAt time.Time // zero = did not happen

	// DueAt is when the certificate now in the store becomes due for
	// renewal; Expires is its NotAfter. Zero = unknown.
	DueAt, Expires time.Time

	// PlanValues are the row's cells as written in the plan, in Run.Columns
	// order; the CSV report and the failed plan repeat them so the rows can
	// be filtered and rerun. The plan package never puts a literal password
	// here, so they are written as they are.
	PlanValues []string
}

// Shard says which part of a plan a run took (runner --shard I/N).
type Shard struct {
	Index    int // 1-based, as in --shard I/N
	Count    int
	Rows     int // plan rows that belong to this shard
	PlanRows int // rows in the whole plan
}

// Run describes the run as a whole.
type Run struct {
	Start, End  time.Time
	PlanFile    string
	Columns     []string // the plan's canonical column names, in file order
	DryRun      bool
	Interrupted bool
	Command     string // "run" or "plan"

	ExitCode        int
	Version, Commit string // of runner
	CommandHost     string // the Keyfactor Command host the run talked to
	Window          time.Duration
	Shard           *Shard // nil when the plan was not sharded
	// NotRun says why the run did not happen (a plan or configuration error,
	// a held lock); "" when it ran.
	NotRun string
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
	for i := range r.Rows {
		c[r.Rows[i].Status]++
	}
	return c
}

// formats are the lower-case file extensions WriteFile knows, each with its
// writer, in the order error messages list them.
var formats = []struct {
	ext   string
	write func(io.Writer, *Report) error
}{
	{".json", WriteJSON},
	{".csv", WriteCSV},
	{".md", WriteMarkdown},
	{".markdown", WriteMarkdown},
	{".html", WriteHTML},
	{".xml", WriteJUnit},
}

// CheckPath reports whether WriteFile knows the format of path, so that a
// command line can refuse a bad --report before anything is contacted. The
// error names path and lists the known extensions.
func CheckPath(path string) error {
	_, err := formatOf(path)
	return err
}

func formatOf(path string) (func(io.Writer, *Report) error, error) {
	ext := strings.ToLower(filepath.Ext(path))
	for _, f := range formats {
		if f.ext == ext {
			return f.write, nil
		}
	}
	what := fmt.Sprintf("unknown extension %q", ext)
	if ext == "" {
		what = "no extension"
	}
	known := make([]string, len(formats))
	for i, f := range formats {
		known[i] = f.ext
	}
	return nil, fmt.Errorf("report %s: %s; known extensions: %s", path, what, strings.Join(known, ", "))
}

// WriteFile writes r to path in the format its extension names: .json,
// .csv, .md or .markdown, .html, or .xml (JUnit). The report is written to a
// temporary file in the same directory, created 0600, and renamed over path,
// so a failed write never leaves a truncated report and never replaces an
// earlier one. Its error names path and is meant to be printed as it is.
func WriteFile(path string, r *Report) error {
	write, err := formatOf(path)
	if err != nil {
		return err
	}
	if err := writeAtomic(path, privateMode, func(w io.Writer) error { return write(w, r) }); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}

// privateMode is the mode of every report and failed plan: they name
// certificates, stores and hosts, which is nobody else's business.
const privateMode fs.FileMode = 0o600

// wrapWriter lets tests make the writes into the temporary file fail.
var wrapWriter = func(w io.Writer) io.Writer { return w }

// writeAtomic writes through write into a temporary file beside path
// (created 0600, then given mode), syncs it, and renames it to path. On any
// failure the temporary file is removed and path is left as it was. Its
// errors never name the temporary file, which the caller has never heard of.
func writeAtomic(path string, mode fs.FileMode, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return withoutPath(err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(wrapWriter(f), 64<<10)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if mode != privateMode {
		if err := f.Chmod(mode); err != nil {
			return withoutPath(err)
		}
	}
	// Sync before rename: otherwise a crash can leave a renamed but empty
	// file on some filesystems.
	if err := f.Sync(); err != nil {
		return withoutPath(err)
	}
	if err := f.Close(); err != nil {
		return withoutPath(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return withoutPath(err)
	}
	return nil
}

// withoutPath drops the path from a *PathError or *LinkError, whose path is
// the temporary file's; the caller names the file it was asked to write.
func withoutPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// certificateName is the id when the plan gave one, else the thumbprint.
func certificateName(row *Row) string {
	if row.CertificateID != 0 {
		return strconv.Itoa(row.CertificateID)
	}
	return row.Thumbprint
}

// formatTime is the one time format of every report: RFC 3339 in UTC, to the
// second, or "" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// runDuration is the run's length, and false unless both ends are known.
func runDuration(run *Run) (time.Duration, bool) {
	if run.Start.IsZero() || run.End.IsZero() || run.End.Before(run.Start) {
		return 0, false
	}
	return run.End.Sub(run.Start), true
}

// formatDuration rounds to what a person wants to read: milliseconds below a
// second, whole seconds above.
func formatDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// idText is a certificate or request id as a cell: "" for none.
func idText(id int) string {
	if id == 0 {
		return ""
	}
	return strconv.Itoa(id)
}

// text is how every format sees a string: valid UTF-8, each invalid byte
// replaced by U+FFFD (as encoding/json does), so that all formats show the
// same characters for one row.
func text(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// shardText is "2/3 (840 of 2500 plan rows)".
func shardText(s *Shard) string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf("%d/%d (%d of %d plan rows)", s.Index, s.Count, s.Rows, s.PlanRows)
}

// errWriter keeps the first write error so a long run of printf calls can be
// checked once at the end.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err != nil {
		return
	}
	_, e.err = fmt.Fprintf(e.w, format, args...)
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	var n int
	n, e.err = e.w.Write(p)
	return n, e.err
}
