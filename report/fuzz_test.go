package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"runner/plan"
	"strings"
	"testing"
	"time"
)

// FuzzReport builds a report of one row from arbitrary values and checks
// that every format takes it: the JSON is valid and reads back to the same
// values, the CSV reads back cell for cell (after the ' escape), the JUnit
// XML is well-formed, the Markdown row stays one table line, and the HTML
// keeps its one script. Seeds are in testdata/fuzz/FuzzReport.
//
//	go test ./report/ -run '^$' -fuzz FuzzReport -fuzztime 30s
func FuzzReport(f *testing.F) {
	f.Add(2, 1234, "", storeA, "web", "succeeded", "deploy", "job created", "", "", "env:PFX_PASS", 5678, 91, int64(1795485600))
	f.Fuzz(func(t *testing.T, line, certID int, thumbprint, store, alias, status, stage, detail, errText, warning, cell string, newID, requestID int, renewed int64) {
		var at time.Time
		if renewed > 0 && renewed < 1<<40 {
			at = time.Unix(renewed, 0)
		}
		row := Row{
			Line: line, CertificateID: certID, Thumbprint: thumbprint, StoreID: store, Alias: alias,
			Status: Status(status), Stage: Stage(stage), Detail: detail, Error: errText, Warnings: []string{warning},
			NewCertificateID: newID, RequestID: requestID,
			RenewedAt: at, DeployedAt: at, DueAt: at, Expires: at,
			PlanValues: []string{cell, alias},
		}
		r := &Report{Run: Run{Columns: []string{"password", "alias"}, PlanFile: cell, NotRun: warning}, Rows: []Row{row}}

		checkJSON(t, r, row)
		checkCSV(t, r, row)

		if err := xml.Unmarshal(render(t, WriteJUnit, r), new(xmlNode)); err != nil {
			t.Errorf("JUnit XML is not well-formed: %v", err)
		}
		if page := string(render(t, WriteHTML, r)); strings.Count(page, "<script") != 1 {
			t.Errorf("HTML has %d script elements", strings.Count(page, "<script"))
		}
		checkMarkdownRow(t, string(render(t, WriteMarkdown, r)))
		for _, opts := range []SummaryOptions{{}, {Terminal: true}, {Quiet: true}} {
			if out := render(t, summaryWith(opts), r); bytes.ContainsAny(out, "\x1b\x07\x00") {
				t.Errorf("summary passes control characters: %q", out)
			}
		}
	})
}

func checkJSON(t *testing.T, r *Report, row Row) {
	t.Helper()
	out := render(t, WriteJSON, r)
	if !json.Valid(out) {
		t.Fatalf("invalid JSON:\n%s", out)
	}
	var doc struct {
		Rows []jsonRow
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Rows) != 1 {
		t.Fatalf("%d rows", len(doc.Rows))
	}
	got := doc.Rows[0]
	id := func(p *int) int {
		if p == nil {
			return 0
		}
		return *p
	}
	at := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	checks := []struct{ field, got, want string }{
		{"thumbprint", got.Thumbprint, text(row.Thumbprint)},
		{"store_id", got.StoreID, text(row.StoreID)},
		{"alias", got.Alias, text(row.Alias)},
		{"status", got.Status, text(string(row.Status))},
		{"stage", got.Stage, text(string(row.Stage))},
		{"detail", got.Detail, text(row.Detail)},
		{"error", got.Error, text(row.Error)},
		{"warnings", strings.Join(got.Warnings, "\x00"), text(row.Warnings[0])},
		{"renewed_at", at(got.RenewedAt), formatTime(row.RenewedAt)},
		{"expires", at(got.Expires), formatTime(row.Expires)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("JSON %s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if got.Line != row.Line || id(got.CertificateID) != row.CertificateID || id(got.NewCertificateID) != row.NewCertificateID || id(got.RequestID) != row.RequestID {
		t.Errorf("JSON numbers = %d %v %v %v, want %d %d %d %d", got.Line, got.CertificateID, got.NewCertificateID, got.RequestID,
			row.Line, row.CertificateID, row.NewCertificateID, row.RequestID)
	}
}

func checkCSV(t *testing.T, r *Report, row Row) {
	t.Helper()
	out := render(t, WriteCSV, r)
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not read back: %v\n%q", err, out)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2:\n%q", len(recs), out)
	}
	lf := func(s string) string { return strings.ReplaceAll(text(s), "\r\n", "\n") }
	want := []string{
		lf(row.PlanValues[0]), lf(row.Alias), lf(string(row.Status)), lf(string(row.Stage)), lf(row.Detail),
		idText(row.NewCertificateID), idText(row.RequestID), lf(row.Error),
		formatTime(row.RenewedAt), formatTime(row.DeployedAt), "", formatTime(row.DueAt), formatTime(row.Expires), lf(row.Warnings[0]),
	}
	if len(recs[1]) != len(want) {
		t.Fatalf("%d cells, want %d", len(recs[1]), len(want))
	}
	for i, cell := range recs[1] {
		if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
			t.Errorf("cell %d %q starts a formula", i, cell)
		}
		if got := plan.UnescapeCell(cell); got != want[i] {
			t.Errorf("CSV %s = %q, want %q", recs[0][i], got, want[i])
		}
	}
}

// checkMarkdownRow finds the rows table and checks that its one row is one
// line with as many cells as the header.
func checkMarkdownRow(t *testing.T, md string) {
	t.Helper()
	lines := strings.Split(md, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "| Line |") {
			continue
		}
		cells := func(s string) int { return strings.Count(s, "|") - strings.Count(s, `\|`) }
		if i+2 >= len(lines) || cells(lines[i+2]) != cells(l) {
			t.Errorf("Markdown row does not fit its table:\n%s", md)
		}
		if i+3 < len(lines) && lines[i+3] != "" {
			t.Errorf("Markdown row spills onto another line: %q", lines[i+3])
		}
		return
	}
	t.Errorf("no rows table:\n%s", md)
}
