package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// WriteMarkdown writes r as a Markdown document for a ticket or a pull
// request: a heading, the facts of the run, the counts, and a table with one
// line per row.
func WriteMarkdown(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	c := r.Counts()

	title := "runner report"
	if r.Run.PlanFile != "" {
		title += ": " + r.Run.PlanFile
	}
	ew.printf("# %s\n\n", mdInline(title))

	fact := func(name, value string) {
		if value != "" {
			ew.printf("- **%s:** %s\n", name, mdInline(value))
		}
	}
	fact("Command", r.Run.Command)
	fact("Plan", r.Run.PlanFile)
	fact("Start", formatTime(r.Run.Start))
	fact("End", formatTime(r.Run.End))
	if d := jsonDuration(r.Run.Start, r.Run.End); d != nil {
		fact("Duration", formatDuration(r.Run.End.Sub(r.Run.Start)))
	}
	fact("Dry run", yesNo(r.Run.DryRun))
	fact("Interrupted", yesNo(r.Run.Interrupted))
	ew.printf("\n")

	ew.printf("| Status | Rows |\n|---|---:|\n")
	for _, s := range []Status{Succeeded, Failed, Skipped} {
		ew.printf("| %s | %d |\n", s, c[s])
	}
	ew.printf("| **total** | **%d** |\n\n", len(r.Rows))

	if len(r.Rows) == 0 {
		ew.printf("No rows.\n")
		return ew.err
	}
	ew.printf("| Line | Certificate | Store | Alias | Status | Stage | Detail | New certificate | Request | Error |\n")
	ew.printf("|---:|---|---|---|---|---|---|---:|---:|---|\n")
	for _, row := range r.Rows {
		ew.printf("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			row.Line,
			mdCell(certificateName(row)),
			mdCell(row.StoreID),
			mdCell(row.Alias),
			mdCell(string(row.Status)),
			mdCell(string(row.Stage)),
			mdCell(row.Detail),
			csvID(row.NewCertificateID),
			csvID(row.RequestID),
			mdCell(row.Error),
		)
	}
	return ew.err
}

// certificateName is the id when the plan gave one, else the thumbprint.
func certificateName(row Row) string {
	if row.CertificateID != 0 {
		return strconv.Itoa(row.CertificateID)
	}
	return row.Thumbprint
}

var mdCellReplacer = strings.NewReplacer(
	`\`, `\\`,
	"|", `\|`,
	"\r\n", "<br>",
	"\n", "<br>",
	"\r", "<br>",
)

// mdCell makes s safe inside a table cell: a '|' would end the cell and a
// newline would end the table.
func mdCell(s string) string {
	return mdCellReplacer.Replace(strings.TrimSpace(s))
}

// mdInline keeps a fact on its one list line.
func mdInline(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
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
