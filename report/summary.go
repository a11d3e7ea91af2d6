package report

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	// defaultSummaryWidth is the terminal width the summary is wrapped to.
	defaultSummaryWidth = 100
	// minDetailWidth keeps the detail readable even when other columns are wide.
	minDetailWidth = 24
	// maxSummaryRows caps the table: a run over a large plan can fail or skip
	// thousands of rows, and the report files hold them all.
	maxSummaryRows = 50
	// maxReasons caps the distinct reasons a preflight block lists.
	maxReasons = 10
	// shortIDLen is how much of a thumbprint or store GUID the table shows;
	// like a short git hash, it is enough to find the row in the report.
	shortIDLen = 8
)

// SummaryOptions say who reads the summary.
type SummaryOptions struct {
	Terminal bool // stdout is a terminal: a person is watching
	Quiet    bool // --quiet: print failures only
	Width    int  // columns to wrap to; 0 means 100
}

// SummaryKind is what the summary of a run consists of.
type SummaryKind int

// The kinds of summary, from nothing at all to the whole account.
const (
	// SummaryNothing: not on a terminal, nothing renewed and nothing failed
	// (cron mails whatever a job prints), or --quiet without failures.
	SummaryNothing SummaryKind = iota
	// SummaryLine: on a terminal, nothing renewed and nothing failed; one
	// line that says when the next certificate is due.
	SummaryLine
	// SummaryFull: the counts, what was renewed, a table of the rows that
	// did not succeed (failed first), and the warnings.
	SummaryFull
	// SummaryFailures: --quiet with failed rows; the counts and the failed
	// rows only.
	SummaryFailures
	// SummaryNotRun: the run did not happen, or every row failed at
	// preflight; one block saying why instead of a table of rows that never
	// started (the report files still hold every row).
	SummaryNotRun
)

// SummaryKindOf decides what the summary of r shows, from the report alone
// and who reads it. These are the quiet rules for cron, which mails whatever
// a job prints: a failure always shows (a run that did not happen as one
// block), --quiet shows nothing else, a run that renewed, deployed or
// succeeded a row (one an earlier run deployed, say) shows the summary, and
// a night with nothing to do prints one line on a terminal and nothing
// elsewhere. A dry run shows its summary unless --quiet.
func SummaryKindOf(r *Report, opts SummaryOptions) SummaryKind {
	c := r.Counts()
	switch {
	case notStarted(r):
		return SummaryNotRun
	case c[Failed] > 0 && opts.Quiet:
		return SummaryFailures
	case c[Failed] > 0:
		return SummaryFull
	case opts.Quiet:
		return SummaryNothing
	case r.Run.DryRun || r.Run.Interrupted || acted(r):
		// A dry run is asked for by someone who wants to see the verdicts.
		return SummaryFull
	case opts.Terminal:
		return SummaryLine
	}
	return SummaryNothing
}

// notStarted reports whether the run never got to the rows: it did not
// happen at all, or preflight failed every row.
func notStarted(r *Report) bool {
	if r.Run.NotRun != "" {
		return true
	}
	if len(r.Rows) == 0 {
		return false
	}
	for i := range r.Rows {
		if r.Rows[i].Status != Failed || r.Rows[i].Stage != StagePreflight {
			return false
		}
	}
	return true
}

// activity counts what this run did: the certificates it renewed and the
// store deploys it made. A renewal or deploy from before the run started (a
// row resumed from an earlier night) is not this run's.
func activity(r *Report) (renewed, deployed int) {
	during := func(at time.Time) bool {
		return !at.IsZero() && (r.Run.Start.IsZero() || !at.Before(r.Run.Start))
	}
	certs := map[string]bool{}
	for i := range r.Rows {
		row := &r.Rows[i]
		if during(row.RenewedAt) {
			certs[certificateName(row)] = true
		}
		if during(row.DeployedAt) {
			deployed++
		}
	}
	return len(certs), deployed
}

// acted reports whether this run renewed, deployed, or ended a row as
// succeeded.
func acted(r *Report) bool {
	renewed, deployed := activity(r)
	return renewed > 0 || deployed > 0 || r.Counts()[Succeeded] > 0
}

// WriteSummary writes the account of the run for the terminal, as
// SummaryKindOf decides. The counts line reads "25 rows: 20 succeeded, 3
// failed, 2 skipped (1m12s)"; the table lists failed rows first, then
// skipped ones, each by line, with the whole detail (and error) wrapped to
// the width, never cut; past 50 rows it says how many more the report files
// hold.
func WriteSummary(w io.Writer, r *Report, opts SummaryOptions) error {
	width := opts.Width
	if width <= 0 {
		width = defaultSummaryWidth
	}
	width = max(width, minDetailWidth)
	ew := &errWriter{w: w}
	switch SummaryKindOf(r, opts) {
	case SummaryNothing:
	case SummaryLine:
		ew.printf("%s\n", nothingDueLine(r))
	case SummaryNotRun:
		writeNotRun(ew, r, width)
	case SummaryFailures:
		ew.printf("%s\n", countsLine(r))
		writeTable(ew, r, width, false)
	case SummaryFull:
		ew.printf("%s\n", countsLine(r))
		if r.Run.DryRun {
			writePlanTable(ew, r, width)
			break
		}
		if renewed, deployed := activity(r); renewed > 0 || deployed > 0 {
			ew.printf("renewed %s, deployed to %s\n", plural(renewed, "certificate"), plural(deployed, "store"))
		}
		writeTable(ew, r, width, true)
		writeWarnings(ew, r, width)
	}
	return ew.err
}

func countsLine(r *Report) string {
	c := r.Counts()
	line := fmt.Sprintf("%s: %d succeeded, %d failed, %d skipped", plural(len(r.Rows), "row"), c[Succeeded], c[Failed], c[Skipped])
	if n := len(r.Rows) - c[Succeeded] - c[Failed] - c[Skipped]; n > 0 {
		line += fmt.Sprintf(", %d other", n)
	}
	var notes []string
	if d, ok := runDuration(&r.Run); ok {
		notes = append(notes, formatDuration(d))
	}
	if s := r.Run.Shard; s != nil {
		notes = append(notes, "shard "+shardText(s))
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

// nothingDueLine is the one line of a quiet night on a terminal:
// "25 rows, nothing due; next due 2027-01-10 (certificate 4101)".
func nothingDueLine(r *Report) string {
	line := plural(len(r.Rows), "row")
	var next *Row
	overdue := 0
	for i := range r.Rows {
		row := &r.Rows[i]
		if row.DueAt.IsZero() {
			continue
		}
		if !r.Run.Start.IsZero() && !row.DueAt.After(r.Run.Start) {
			overdue++
		}
		if next == nil || row.DueAt.Before(next.DueAt) {
			next = row
		}
	}
	if overdue > 0 {
		// Due rows that were neither renewed nor failed were held back (by
		// --max-renewals, say): the report says why.
		return fmt.Sprintf("%s, nothing renewed; %d due and skipped (the report says why)", line, overdue)
	}
	line += ", nothing due"
	if next != nil {
		line += fmt.Sprintf("; next due %s (certificate %s)", next.DueAt.UTC().Format("2006-01-02"), certificateName(next))
	}
	return line
}

// writeNotRun is the block for a run that never reached its rows.
func writeNotRun(ew *errWriter, r *Report, width int) {
	if r.Run.NotRun != "" {
		writeWrapped(ew, "runner did not run: ", oneLine(r.Run.NotRun), "  ", width)
		if len(r.Rows) > 0 {
			ew.printf("nothing was renewed; the report files list the %s\n", plural(len(r.Rows), "plan row"))
		} else {
			ew.printf("nothing was renewed\n")
		}
		return
	}
	type reason struct {
		text string
		rows int
	}
	var reasons []*reason
	seen := map[string]*reason{}
	for i := range r.Rows {
		t := rowDetail(&r.Rows[i])
		if seen[t] == nil {
			seen[t] = &reason{text: t}
			reasons = append(reasons, seen[t])
		}
		seen[t].rows++
	}
	if len(reasons) == 1 {
		writeWrapped(ew, fmt.Sprintf("preflight failed for all %s: ", plural(len(r.Rows), "row")), reasons[0].text, "  ", width)
	} else {
		ew.printf("preflight failed for all %s:\n", plural(len(r.Rows), "row"))
		for i, rs := range reasons {
			if i == maxReasons {
				ew.printf("  … and %d other reasons\n", len(reasons)-maxReasons)
				break
			}
			writeWrapped(ew, fmt.Sprintf("  %s: ", plural(rs.rows, "row")), rs.text, "    ", width)
		}
	}
	ew.printf("nothing was renewed; the report files list every row\n")
}

// writeTable writes the rows that did not succeed, failed ones first; with
// withSkipped false only the failed ones.
func writeTable(ew *errWriter, r *Report, width int, withSkipped bool) {
	var failed, other []*Row
	for i := range r.Rows {
		row := &r.Rows[i]
		switch {
		case row.Status == Succeeded:
		case row.Status == Failed:
			failed = append(failed, row)
		case withSkipped:
			other = append(other, row)
		}
	}
	byLine := func(a, b *Row) int { return a.Line - b.Line }
	slices.SortStableFunc(failed, byLine)
	slices.SortStableFunc(other, byLine)
	shown := append(failed, other...)
	var hidden []*Row
	if len(shown) > maxSummaryRows {
		shown, hidden = shown[:maxSummaryRows], shown[maxSummaryRows:]
	}
	if len(shown) == 0 {
		return
	}

	header := []string{"LINE", "CERTIFICATE", "STORE", "STATUS", "STAGE"}
	cells := make([][]string, len(shown))
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for i, row := range shown {
		cells[i] = []string{
			strconv.Itoa(row.Line),
			shorten(oneLine(certificateName(row)), shortIDLen+1),
			shorten(oneLine(row.StoreID), shortIDLen+1),
			oneLine(string(row.Status)),
			oneLine(string(row.Stage)),
		}
		for j, c := range cells[i] {
			widths[j] = max(widths[j], utf8.RuneCountInString(c))
		}
	}
	const gap = 2
	indent := 0
	for _, wd := range widths {
		indent += wd + gap
	}
	detailWidth := max(width-indent, minDetailWidth)

	ew.printf("\n")
	ew.printf("%s\n", strings.TrimRight(pad(header, widths, gap)+"DETAIL", " "))
	for i, row := range shown {
		lines := wrap(rowDetail(row), detailWidth)
		ew.printf("%s\n", strings.TrimRight(pad(cells[i], widths, gap)+lines[0], " "))
		for _, l := range lines[1:] {
			ew.printf("%s%s\n", strings.Repeat(" ", indent), l)
		}
	}
	if len(hidden) > 0 {
		ew.printf("… %d more not shown (%s); the report files list every row\n", len(hidden), hiddenCounts(hidden))
	}
}

func writeWarnings(ew *errWriter, r *Report, width int) {
	n := 0
	for i := range r.Rows {
		row := &r.Rows[i]
		for _, wn := range row.Warnings {
			if n == 0 {
				ew.printf("\nwarnings:\n")
			}
			n++
			if n > maxSummaryRows {
				continue
			}
			writeWrapped(ew, fmt.Sprintf("  line %d: ", row.Line), oneLine(wn), "    ", width)
		}
	}
	if n > maxSummaryRows {
		ew.printf("  … %d more; the report files list every warning\n", n-maxSummaryRows)
	}
}

// rowDetail is what the summary says of a row: its detail and its error,
// on one logical line.
func rowDetail(row *Row) string {
	s := oneLine(row.Detail)
	if e := oneLine(row.Error); e != "" && !strings.Contains(s, e) {
		if s != "" {
			s += ": "
		}
		s += e
	}
	return s
}

// oneLine folds every run of white space (newlines included) into a space
// and turns control characters into spaces, so a server message can neither
// break the table nor send escape sequences to the terminal.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, text(s))), " ")
}

func pad(cells []string, widths []int, gap int) string {
	var b strings.Builder
	for i, c := range cells {
		b.WriteString(c)
		b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+gap))
	}
	return b.String()
}

// writeWrapped writes s wrapped to width after lead, its continuation
// lines indented by indent.
func writeWrapped(ew *errWriter, lead, s, indent string, width int) {
	lines := wrap(s, max(width-utf8.RuneCountInString(lead), minDetailWidth))
	ew.printf("%s%s\n", lead, lines[0])
	if len(lines) > 1 {
		for _, l := range wrap(strings.Join(lines[1:], " "), max(width-utf8.RuneCountInString(indent), minDetailWidth)) {
			ew.printf("%s%s\n", indent, l)
		}
	}
}

// wrap breaks s into lines of at most width runes at spaces; a word longer
// than a line is broken inside. Nothing is left out. It returns at least one
// line.
func wrap(s string, width int) []string {
	var lines []string
	var cur []rune
	for _, word := range strings.Fields(s) {
		rw := []rune(word)
		if len(cur) > 0 && len(cur)+1+len(rw) > width {
			lines = append(lines, string(cur))
			cur = cur[:0]
		}
		if len(cur) > 0 {
			cur = append(cur, ' ')
		}
		for len(cur)+len(rw) > width {
			n := width - len(cur)
			lines = append(lines, string(append(cur, rw[:n]...)))
			cur, rw = cur[:0], rw[n:]
		}
		cur = append(cur, rw...)
	}
	return append(lines, string(cur))
}

// shorten cuts an identifier to at most n runes, marking the cut with "…";
// the report files hold it whole.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func hiddenCounts(rows []*Row) string {
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
