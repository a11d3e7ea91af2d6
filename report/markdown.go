package report

import (
	"io"
	"strconv"
	"strings"
)

// WriteMarkdown writes r as a Markdown document for a ticket or a pull
// request: a heading, the facts of the run, the counts, a table with one line
// per row, and the rows' warnings. Every piece of text from the run is
// escaped: Markdown's inline markup characters get a backslash and <, > and &
// become entities, so a server message holding <script> or [a](link) shows
// as the text it is.
func WriteMarkdown(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	c := r.Counts()
	run := &r.Run

	title := "runner report"
	if run.PlanFile != "" {
		title += ": " + run.PlanFile
	}
	ew.printf("# %s\n\n", mdInline(title))

	if run.NotRun != "" {
		ew.printf("**The run did not happen:** %s\n\n", mdInline(run.NotRun))
	}
	for _, f := range runFacts(run) {
		ew.printf("- **%s:** %s\n", f.Name, mdInline(f.Value))
	}
	ew.printf("\n")

	ew.printf("| Status | Rows |\n|---|---:|\n")
	for _, s := range statuses {
		ew.printf("| %s | %d |\n", s, c[s])
	}
	ew.printf("| **total** | **%d** |\n\n", len(r.Rows))

	if len(r.Rows) == 0 {
		ew.printf("No rows.\n")
		return ew.err
	}
	ew.printf("| Line | Certificate | Store | Alias | Status | Stage | Detail | New certificate | Request | Error | Due | Expires |\n")
	ew.printf("|---:|---|---|---|---|---|---|---:|---:|---|---|---|\n")
	warned := 0
	for i := range r.Rows {
		row := &r.Rows[i]
		if len(row.Warnings) > 0 {
			warned++
		}
		ew.printf("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			row.Line,
			mdCell(certificateName(row)),
			mdCell(row.StoreID),
			mdCell(row.Alias),
			mdCell(string(row.Status)),
			mdCell(string(row.Stage)),
			mdCell(row.Detail),
			idText(row.NewCertificateID),
			idText(row.RequestID),
			mdCell(row.Error),
			formatTime(row.DueAt),
			formatTime(row.Expires),
		)
	}
	if warned > 0 {
		ew.printf("\n## Warnings\n\n")
		for i := range r.Rows {
			row := &r.Rows[i]
			for _, wn := range row.Warnings {
				ew.printf("- line %d: %s\n", row.Line, mdInline(wn))
			}
		}
	}
	return ew.err
}

// fact is one named fact of the run, as the Markdown and HTML reports list
// it; its fields are exported for the HTML template.
type fact struct{ Name, Value string }

// runFacts are the facts of the run worth showing, in display order, their
// values as text sees them; facts that are unknown or off are left out.
func runFacts(run *Run) []fact {
	var facts []fact
	add := func(name, value string) {
		if value != "" {
			facts = append(facts, fact{name, text(value)})
		}
	}
	add("Command host", run.CommandHost)
	add("Plan", run.PlanFile)
	add("Mode", run.Command)
	add("Start", formatTime(run.Start))
	add("End", formatTime(run.End))
	if d, ok := runDuration(run); ok {
		add("Duration", formatDuration(d))
	}
	if run.Window > 0 {
		add("Window", run.Window.String())
	}
	add("Shard", shardText(run.Shard))
	add("Exit code", strconv.Itoa(run.ExitCode))
	version := run.Version
	if run.Commit != "" {
		version = strings.TrimSpace(version + " (" + run.Commit + ")")
	}
	add("Runner", version)
	if run.DryRun {
		add("Dry run", "yes")
	}
	if run.Interrupted {
		add("Interrupted", "yes")
	}
	return facts
}

// mdEscaper escapes what Markdown (CommonMark and GitHub's tables) would
// read as markup inside a line: a backslash before the inline markup
// characters and the cell separator, entities for what could start HTML.
var mdEscaper = strings.NewReplacer(
	`\`, `\\`,
	"|", `\|`,
	"`", "\\`",
	"*", `\*`,
	"_", `\_`,
	"[", `\[`,
	"]", `\]`,
	"~", `\~`,
	"&", "&amp;",
	"<", "&lt;",
	">", "&gt;",
)

var mdLineBreaks = strings.NewReplacer("\r\n", "<br>", "\n", "<br>", "\r", "<br>")

// mdCell makes s safe inside a table cell: escaped, and a newline, which
// would end the table, becomes <br>.
func mdCell(s string) string {
	return mdLineBreaks.Replace(mdEscaper.Replace(strings.TrimSpace(text(s))))
}

// mdInline keeps a fact on its one list line, escaped.
func mdInline(s string) string {
	return mdEscaper.Replace(strings.Join(strings.Fields(text(s)), " "))
}
