package report

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"runner/plan"
	"strings"
	"testing"
)

// readCSV reads a CSV report back as a spreadsheet-aware reader would: every
// cell with the ' escape removed.
func readCSV(t testing.TB, b []byte) [][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		for i := range rec {
			rec[i] = plan.UnescapeCell(rec[i])
		}
	}
	return recs
}

var outcomeColumns = []string{
	"status", "stage", "detail", "new_certificate_id", "request_id", "error",
	"renewed_at", "deployed_at", "verified_at", "due_at", "expires", "warnings",
}

func TestCSVRoundTrip(t *testing.T) {
	recs := readCSV(t, render(t, WriteCSV, fixture()))
	wantHeader := append(append([]string{}, columns...), outcomeColumns...)
	if fmt.Sprint(recs[0]) != fmt.Sprint(wantHeader) {
		t.Errorf("header = %q, want %q", recs[0], wantHeader)
	}
	f := fixture()
	if len(recs) != len(f.Rows)+1 {
		t.Fatalf("%d records, want %d", len(recs), len(f.Rows)+1)
	}
	col := func(name string) int {
		for i, h := range recs[0] {
			if h == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return 0
	}
	tests := []struct {
		name   string
		record int
		column string
		want   string
	}{
		{"detail with pipe and newline", 3, "detail", f.Rows[2].Detail},
		{"error with comma and quotes", 3, "error", f.Rows[2].Error},
		{"properties JSON kept", 1, "properties", f.Rows[0].PlanValues[5]},
		{"env reference kept", 1, "password", "env:PFX_PASS"},
		{"file reference kept as written", 3, "password", "file:secrets/mail.pass"},
		{"ragged plan line padded", 5, "alias", ""},
		{"status after short plan line", 5, "status", "skipped"},
		{"zero id empty", 2, "new_certificate_id", ""},
		{"time in UTC", 1, "deployed_at", "2026-11-24T02:00:10Z"},
		{"due at", 4, "due_at", "2027-01-10T00:00:00Z"},
		{"expires", 2, "expires", "2026-12-01T00:00:00Z"},
		{"warnings", 1, "warnings", f.Rows[0].Warnings[0]},
		{"formula alias reads back", 7, "alias", formulaAlias},
		{"formula error reads back", 7, "error", f.Rows[6].Error},
		{"tab-led warning reads back", 7, "warnings", f.Rows[6].Warnings[0]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := recs[tt.record][col(tt.column)]; got != tt.want {
				t.Errorf("%s = %q, want %q", tt.column, got, tt.want)
			}
		})
	}
}

// TestCSVNeutralisesFormulas checks the cells as a spreadsheet sees them:
// none may start with a character that makes it a formula.
func TestCSVNeutralisesFormulas(t *testing.T) {
	cells := []string{
		"=HYPERLINK(\"http://evil.example\",\"x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
		"\t=1+2", "\r=1+2", "'=already quoted", "plain", "", "a=b",
	}
	var rows []Row
	for i, c := range cells {
		rows = append(rows, Row{Line: i + 2, Alias: c, Detail: c, Status: Failed, PlanValues: []string{c, c}})
	}
	r := &Report{Run: Run{Columns: []string{"alias", "properties"}}, Rows: rows}
	raw, err := csv.NewReader(bytes.NewReader(render(t, WriteCSV, r))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range raw[1:] {
		for _, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("cell %q starts a formula", cell)
			}
		}
	}
	back := readCSV(t, render(t, WriteCSV, r))
	for i, c := range cells {
		want := strings.ReplaceAll(c, "\r\n", "\n")
		if got := back[i+1][0]; got != want {
			t.Errorf("plan cell %q read back as %q", c, got)
		}
		if got := back[i+1][4]; got != want {
			t.Errorf("detail %q read back as %q", c, got)
		}
	}
}

func TestCSVWithoutPlanColumns(t *testing.T) {
	r := &Report{Rows: []Row{{Line: 2, CertificateID: 7, StoreID: storeA, Alias: "a", Status: Failed, Stage: StagePlan}}}
	got := string(render(t, WriteCSV, r))
	want := "certificate_id,thumbprint,store_id,alias," + strings.Join(outcomeColumns, ",") + "\n" +
		"7,," + storeA + ",a,failed,plan,,,,,,,,,,\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestCSVLineBreaksAreLF checks the bytes written: encoding/csv's reader
// turns CRLF inside a quoted cell into LF, so reading back alone cannot
// tell.
func TestCSVLineBreaksAreLF(t *testing.T) {
	r := &Report{Rows: []Row{{Line: 2, Status: Failed, Detail: "first\r\nsecond"}}}
	out := render(t, WriteCSV, r)
	if !bytes.Contains(out, []byte(`"first`+"\n"+`second"`)) || bytes.Contains(out, []byte("first\r")) {
		t.Errorf("CSV = %q, want the detail written with an LF line break", out)
	}
	recs := readCSV(t, out)
	if got := recs[1][6]; got != "first\nsecond" {
		t.Errorf("detail = %q, want LF line break", got)
	}
}
