package report

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

const (
	// summaryWidth is the terminal width the summary table is kept within.
	summaryWidth = 100
	// maxFailedDetail bounds a failed row's detail, which is otherwise
	// shown whole: a terminal wraps it, and it is what the operator acts on.
	maxFailedDetail = 400
	// minDetailWidth keeps the detail readable even when other columns are wide.
	minDetailWidth = 24
	// maxSummaryRows caps the table: a nightly run over a large plan skips
	// thousands of rows that are not due, and the report files hold them all.
	maxSummaryRows = 50
	// shortIDLen is how much of a thumbprint or store GUID the table shows;
	// like a short git hash, it is enough to find the row in the report.
	shortIDLen = 8
)

// WriteSummary writes a short account of the run for a terminal: one line of
// counts, e.g. "25 rows: 20 succeeded, 3 failed, 2 skipped (1m12s)", and,
// when some rows did not succeed, a table of them (line, certificate, store,
// status, stage, detail) sorted by line; skipped rows are kept within 100
// columns, failed rows show their whole detail. Failed
// rows are shown before skipped ones when there are more than fit.
func WriteSummary(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	ew.printf("%s\n", countsLine(r))

	var failed, other []Row
	for _, row := range r.Rows {
		switch row.Status {
		case Succeeded:
		case Failed:
			failed = append(failed, row)
		default:
			other = append(other, row)
		}
	}
	shown := append(failed, other...)
	var hidden []Row
	if len(shown) > maxSummaryRows {
		shown, hidden = shown[:maxSummaryRows], shown[maxSummaryRows:]
	}
	if len(shown) == 0 {
		return ew.err
	}
	sort.SliceStable(shown, func(i, j int) bool { return shown[i].Line < shown[j].Line })

	header := []string{"LINE", "CERTIFICATE", "STORE", "STATUS", "STAGE", "DETAIL"}
	cells := make([][]string, 0, len(shown))
	widths := make([]int, len(header)-1)
	for i, h := range header[:len(widths)] {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, row := range shown {
		c := []string{
			strconv.Itoa(row.Line),
			shorten(certificateName(row), shortIDLen+1),
			shorten(row.StoreID, shortIDLen+1),
			string(row.Status),
			string(row.Stage),
			summaryDetail(row),
		}
		for i := range widths {
			widths[i] = max(widths[i], utf8.RuneCountInString(c[i]))
		}
		cells = append(cells, c)
	}
	const padding = 2
	detailWidth := summaryWidth
	for _, wd := range widths {
		detailWidth -= wd + padding
	}
	detailWidth = max(detailWidth, minDetailWidth)

	ew.printf("\n")
	tw := tabwriter.NewWriter(ew, 0, 0, padding, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for i, c := range cells {
		// A failed row's detail says what to do next: never cut it short.
		// Skipped rows are routine and kept to the width.
		limit := detailWidth
		if shown[i].Status == Failed {
			limit = maxFailedDetail
		}
		c[len(c)-1] = shorten(c[len(c)-1], limit)
		fmt.Fprintln(tw, strings.Join(c, "\t"))
	}
	tw.Flush()
	if len(hidden) > 0 {
		ew.printf("… %d more not shown (%s); the report files list every row\n", len(hidden), hiddenCounts(hidden))
	}
	return ew.err
}

// Write lets tabwriter write through errWriter.
func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	var n int
	n, e.err = e.w.Write(p)
	return n, e.err
}

func countsLine(r *Report) string {
	c := r.Counts()
	noun := "rows"
	if len(r.Rows) == 1 {
		noun = "row"
	}
	line := fmt.Sprintf("%d %s: %d succeeded, %d failed, %d skipped", len(r.Rows), noun, c[Succeeded], c[Failed], c[Skipped])
	if n := len(r.Rows) - c[Succeeded] - c[Failed] - c[Skipped]; n > 0 {
		line += fmt.Sprintf(", %d other", n)
	}
	var notes []string
	if jsonDuration(r.Run.Start, r.Run.End) != nil {
		notes = append(notes, formatDuration(r.Run.End.Sub(r.Run.Start)))
	}
	if r.Run.DryRun {
		notes = append(notes, "dry run")
	}
	if r.Run.Interrupted {
		notes = append(notes, "interrupted")
	}
	if len(notes) > 0 {
		line += " (" + strings.Join(notes, ", ") + ")"
	}
	return line
}

// formatDuration rounds to what a person wants to read: milliseconds below a
// second, whole seconds above.
func formatDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// summaryDetail is the row's detail on one line, or its error when it has no
// detail.
func summaryDetail(row Row) string {
	s := row.Detail
	if s == "" {
		s = row.Error
	}
	return strings.Join(strings.Fields(s), " ")
}

// shorten cuts s to at most n runes, marking the cut with "…".
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return string(runes[:n-1]) + "…"
}

func hiddenCounts(rows []Row) string {
	counts := map[Status]int{}
	var order []Status
	for _, row := range rows {
		if counts[row.Status] == 0 {
			order = append(order, row.Status)
		}
		counts[row.Status]++
	}
	parts := make([]string, 0, len(order))
	for _, s := range order {
		parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
	}
	return strings.Join(parts, ", ")
}
