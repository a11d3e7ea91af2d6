package plan

import (
	"bytes"
	"encoding/csv"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeRows writes a plan with Write and fails the test on an error.
func writeRows(tb testing.TB, columns []string, rows [][]string) string {
	tb.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, columns, rows); err != nil {
		tb.Fatal(err)
	}
	return buf.String()
}

// rawCells reads text with encoding/csv alone, as a spreadsheet would see
// the cells, without the plan's reading of them.
func rawCells(tb testing.TB, text string) [][]string {
	tb.Helper()
	cr := csv.NewReader(strings.NewReader(text))
	cr.FieldsPerRecord = -1
	recs, err := cr.ReadAll()
	if err != nil {
		tb.Fatalf("csv: %v\n%s", err, text)
	}
	return recs
}

func TestWriteEscapesFormulas(t *testing.T) {
	tests := []struct {
		name    string
		alias   string
		written string // the cell as a spreadsheet reads it
	}{
		{"equals", `=HYPERLINK("http://x","y")`, `'=HYPERLINK("http://x","y")`},
		{"plus", "+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"},
		{"minus", "-2+3", "'-2+3"},
		{"at", "@SUM(A1:A2)", "'@SUM(A1:A2)"},
		{"tab first", "\t=1+1", "'\t=1+1"},
		{"an escape as a value is escaped itself", "'=x", "''=x"},
		{"two quotes", "''", "'''"},
		{"quote before text is kept", "'quoted'", "'quoted'"},
		{"lone quote", "'", "'"},
		{"formula character later", "a=b", "a=b"},
		{"plain", "web01", "web01"},
		{"empty", "", ""},
	}
	columns := []string{"certificate_id", "store_id", "alias"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := writeRows(t, columns, [][]string{{"1", guidA, tt.alias}})
			recs := rawCells(t, text)
			if got := recs[1][2]; got != tt.written {
				t.Errorf("written cell = %q, want %q", got, tt.written)
			}
			if got := recs[1][2]; got != "" && formulaStart(got[0]) {
				t.Errorf("written cell %q starts a spreadsheet formula", got)
			}
			p, err := parseString(t, text, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Rows[0].Values[2]; got != tt.alias {
				t.Errorf("read back %q, want %q", got, tt.alias)
			}
		})
	}
}

func TestEscapeCellCarriageReturn(t *testing.T) {
	// The reader refuses a CR in a cell, so this is checked on the rule
	// alone: the writer still keeps such a cell from starting a formula.
	if got := EscapeCell("\r=1"); got != "'\r=1" {
		t.Errorf("escapeCell = %q", got)
	}
	if got := UnescapeCell("'\r=1"); got != "\r=1" {
		t.Errorf("unescapeCell = %q", got)
	}
}

func TestReaderTakesOffTheEscapeInHandWrittenPlans(t *testing.T) {
	p, err := parseString(t, "certificate_id,store_id,alias,renew_before\n'-5,"+guidA+",'@web,30d\n1,"+guidA+",'web',30d\n2,"+guidA+",'@web,30d\n", Options{})
	var list *ErrorList
	if !errors.As(err, &list) || len(*list) != 1 || (*list)[0].Value != "-5" {
		t.Fatalf("error %v, want one error about certificate_id -5", err)
	}
	if len(p.Rows) != 2 {
		t.Fatalf("%d rows kept, want the two without a problem", len(p.Rows))
	}
	if got := p.Rows[0].Alias; got != "'web'" {
		t.Errorf("alias %q, want 'web' kept as written", got)
	}
	if got := p.Rows[1].Alias; got != "@web" {
		t.Errorf("alias %q, want @web with the escape taken off", got)
	}
}

func TestWriteAwkwardCells(t *testing.T) {
	columns := []string{"alias", "certificate_id", "store_id", "properties"}
	rows := [][]string{
		{"#not-a-comment", "1", guidA, `{"a":"x,y"}`},
		{" spaced ", "2", guidA, ""},
		{"web", "3", guidA, "{\n\t\"q\": \"\\\"\"\n}"},
		{`#"quoted"`, "4", guidA, ""},
		{"=1", "5", guidA, ""},
	}
	text := writeRows(t, columns, rows)
	p, err := parseString(t, text, Options{})
	if err != nil {
		t.Fatalf("Parse:\n%s\n%v", text, err)
	}
	if len(p.Rows) != len(rows) {
		t.Fatalf("%d rows back, want %d:\n%s", len(p.Rows), len(rows), text)
	}
	for i, r := range p.Rows {
		if !reflect.DeepEqual(r.Values, rows[i]) {
			t.Errorf("row %d values = %q, want %q", i, r.Values, rows[i])
		}
	}
}

func TestWriteRejectsRaggedRows(t *testing.T) {
	err := Write(&bytes.Buffer{}, []string{"certificate_id", "store_id"}, [][]string{{"1"}})
	if err == nil || err.Error() != "write plan row 1: 1 cells for 2 columns" {
		t.Errorf("Write ragged row: %v", err)
	}
}

// A refused row is not written and does not stop the Writer, unlike a
// failed write (TestWriterErrorIsSticky).
func TestWriterGoesOnAfterARefusedRow(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, []string{"certificate_id", "store_id"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRow([]string{"1"}); err == nil {
		t.Fatal("a row of 1 cell for 2 columns was accepted")
	}
	if err := w.WriteNamed(map[string]string{"certificate_id": "2", "store_id": guidA, "alias": "web"}); err == nil {
		t.Fatal("an alias for a plan without an alias column was accepted")
	}
	if err := w.WriteRow([]string{"3", guidA}); err != nil {
		t.Fatalf("WriteRow after refused rows: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "certificate_id,store_id\n3,"+guidA+"\n"; got != want {
		t.Errorf("plan %q, want %q", got, want)
	}
}

func TestNewWriterColumns(t *testing.T) {
	tests := []struct {
		name    string
		columns []string
		wantErr string
	}{
		{"canonical", []string{"certificate_id", "store_id"}, ""},
		{"any spelling", []string{" Certificate_ID", "STORE_ID"}, ""},
		{"unknown", []string{"certificate_id", "store-name"}, `write plan: unknown column "store-name" (expected one of ` + strings.Join(Columns, ", ") + ")"},
		{"twice", []string{"store_id", "Store_ID"}, "write plan: column store_id given twice (expected each column at most once)"},
		{"none", nil, "write plan: no columns (expected at least store_id and certificate_id or thumbprint)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, tt.columns)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if got := buf.String(); got != "certificate_id,store_id\n" {
					t.Errorf("header %q, want the canonical names", got)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("error %v, want %s", err, tt.wantErr)
			}
		})
	}
}

func TestWriterStreamsCommentsAndRows(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, []string{"certificate_id", "thumbprint", "store_id", "alias", "overwrite", "password"})
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error {
			return w.Comment("runner discover --query 'IssuedCN -contains \"corp\"'\nCommand: https://kf.example.com")
		},
		func() error { return w.Comment("") },
		func() error { return w.Comment("a\n\nb\n") },
		func() error { return w.WriteHeader() },
		func() error { return w.Comment("set PEM_STORE_PASSWORD before the run") },
		func() error { return w.WriteRow([]string{"4101", thumb, guidA, "web01", "true", ""}) },
		func() error { return w.Comment("between rows\r\nover two lines") },
		func() error {
			return w.WriteRow([]string{"4102", "", guidB, "=evil", "true", "env:PEM_STORE_PASSWORD"})
		},
		func() error { return w.Comment("certificate 4103 has no location: nothing to deploy to") },
		w.Close,
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	want := `# runner discover --query 'IssuedCN -contains "corp"'
# Command: https://kf.example.com
#
# a
#
# b
certificate_id,thumbprint,store_id,alias,overwrite,password
# set PEM_STORE_PASSWORD before the run
4101,` + thumb + `,` + guidA + `,web01,true,
# between rows
# over two lines
4102,,` + guidB + `,'=evil,true,env:PEM_STORE_PASSWORD
# certificate 4103 has no location: nothing to deploy to
`
	if got := buf.String(); got != want {
		t.Errorf("plan:\n%s\nwant:\n%s", got, want)
	}
	p, err := parseString(t, buf.String(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rows) != 2 || p.Rows[1].Alias != "=evil" || p.Rows[1].Password.String() != "env:PEM_STORE_PASSWORD" {
		t.Errorf("read back rows %+v", p.Rows)
	}
}

func TestWriterHeaderComesAfterLeadingCommentsAndAtClose(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, []string{"certificate_id", "store_id"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Comment("no certificate matched"); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %q before Close or a row; output is buffered", buf.String())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "# no certificate matched\n"; got != want {
		t.Errorf("after Flush: %q, want %q", got, want)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "# no certificate matched\ncertificate_id,store_id\n"; got != want {
		t.Errorf("plan %q, want %q", got, want)
	}
	if p, err := parseString(t, buf.String(), Options{}); err != nil || len(p.Rows) != 0 {
		t.Errorf("empty plan reads as %v, %v", p, err)
	}
}

func TestWriterNeverWritesALiteralPassword(t *testing.T) {
	tests := []struct{ cell, want string }{
		{"hunter2", ""},
		{" env:PEM ", " env:PEM "},
		{"file:secrets/pw", "file:secrets/pw"},
		{"env:not a name", ""}, // a mistyped reference may be the password
		{"file:", ""},
		{"", ""},
	}
	for _, tt := range tests {
		text := writeRows(t, []string{"certificate_id", "store_id", "password"}, [][]string{{"1", guidA, tt.cell}})
		if got := rawCells(t, text)[1][2]; got != tt.want {
			t.Errorf("password cell %q written as %q, want %q", tt.cell, got, tt.want)
		}
	}
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errors.New("disk full")
}

func TestWriterErrorIsSticky(t *testing.T) {
	fw := &failingWriter{}
	w, err := NewWriter(fw, []string{"certificate_id", "store_id"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil || err.Error() != "write plan: disk full" {
		t.Fatalf("Close: %v, want write plan: disk full", err)
	}
	if err := w.WriteRow([]string{"1", guidA}); err == nil || err.Error() != "write plan: disk full" {
		t.Errorf("WriteRow after a failure: %v, want the same error", err)
	}
}

func TestAppendTo(t *testing.T) {
	const existingLF = "\ufeff# Reviewed by ops, 2026-05-01.\n\n  Certificate_ID ,Store_ID,alias,OVERWRITE\n" +
		"4101," + guidA + ",web01,true\n# keep this one\n\n4102," + guidA + ",\"api, v2\",true" // no newline at the end
	existingCRLF := strings.ReplaceAll(existingLF, "\n", "\r\n") + "\r\n"
	newRows := []map[string]string{
		{"certificate_id": "4101", "store_id": guidB, "alias": "web01", "overwrite": "true", "thumbprint": "", "password": ""},
		{"certificate_id": "4103", "store_id": guidB, "alias": "=cmd", "overwrite": "true"},
	}
	tests := []struct {
		name     string
		existing string
		want     string // what follows existing
	}{
		{"LF, last line unterminated", existingLF, "\n4101," + guidB + ",web01,true\n# added by discover\n4103," + guidB + ",'=cmd,true\n"},
		{"CRLF", existingCRLF, "4101," + guidB + ",web01,true\r\n# added by discover\r\n4103," + guidB + ",'=cmd,true\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := AppendTo(&buf, []byte(tt.existing), "plan.csv")
			if err != nil {
				t.Fatal(err)
			}
			for i, row := range newRows {
				if i == 1 {
					if err := w.Comment("added by discover"); err != nil {
						t.Fatal(err)
					}
				}
				if err := w.WriteNamed(row); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := buf.String()
			if !strings.HasPrefix(got, tt.existing) {
				t.Fatalf("the existing plan changed:\n%q\nwant it to start with\n%q", got, tt.existing)
			}
			if rest := got[len(tt.existing):]; rest != tt.want {
				t.Errorf("appended %q, want %q", rest, tt.want)
			}
			p, err := parseString(t, got, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Rows) != 4 || p.Rows[1].Alias != "api, v2" || p.Rows[3].Alias != "=cmd" || len(p.Jobs) != 3 {
				t.Errorf("updated plan reads as %d rows, %d jobs", len(p.Rows), len(p.Jobs))
			}
		})
	}
}

func TestAppendToRefuses(t *testing.T) {
	header := "certificate_id,store_id\n1," + guidA + "\n"
	tests := []struct {
		name     string
		existing string
		row      map[string]string
		wantErr  string
	}{
		{"no header", "# nothing yet\n", nil, "update plan plan.csv: no header row (expected a plan to add rows to; write a new one instead)"},
		{"unknown column", "certificate_id,store-name\n", nil, `update plan plan.csv:1: column "store-name" unknown or repeated (expected a valid header; runner validate plan.csv shows the problem)`},
		{"open quote", header + "2,\"" + guidA + "\n", nil, `update plan plan.csv: parse error on line 3, column 41: extraneous or missing " in quoted-field (expected well-formed CSV, so that rows can be added at its end)`},
		{"value for a column the plan lacks", header, map[string]string{"certificate_id": "2", "store_id": guidA, "password": "env:PEM"},
			"write plan row 1: a password value, but the plan has no password column (expected a plan with that column: add it to the header and an empty cell to each row, or leave it out of new rows)"},
		{"unknown name", header, map[string]string{"certificate_id": "2", "store_id": guidA, "store": "x"},
			`write plan row 1: unknown column "store" (expected one of ` + strings.Join(Columns, ", ") + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := AppendTo(&bytes.Buffer{}, []byte(tt.existing), "plan.csv")
			if err == nil && tt.row != nil {
				err = w.WriteNamed(tt.row)
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("error %v\nwant %s", err, tt.wantErr)
			}
		})
	}
}

func TestRebaseCells(t *testing.T) {
	base := t.TempDir()
	from := filepath.Join(base, "plans")
	to := filepath.Join(base, "reports", "nightly")
	columns := []string{"certificate_id", "store_id", "Password"}
	tests := []struct {
		name       string
		cell       string
		from, to   string
		want       string
		sameTarget bool // the rewritten reference must name the same file
	}{
		{"relative path", "file:secrets/pem.txt", from, to, "file:../../plans/secrets/pem.txt", true},
		{"any case and spaces", " FILE:pem.txt ", from, to, "file:../../plans/pem.txt", true},
		{"into a subdirectory", "file:pem.txt", from, filepath.Join(from, "failed"), "file:../pem.txt", true},
		{"same directory keeps the cell", " FILE:pem.txt ", from, from, " FILE:pem.txt ", false},
		{"absolute path kept", "file:/run/secrets/pem", from, to, "file:/run/secrets/pem", false},
		{"env kept", "env:PEM_PASS", from, to, "env:PEM_PASS", false},
		{"empty kept", "", from, to, "", false},
		{"literal blanked", "hunter2", from, to, "", false},
		{"broken reference blanked", "env:hunter 2", from, to, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cells := []string{"1", guidA, tt.cell}
			got, err := RebaseCells(columns, cells, tt.from, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			if got[2] != tt.want || got[0] != "1" || got[1] != guidA {
				t.Errorf("cells = %q, want password %q", got, tt.want)
			}
			if cells[2] != tt.cell {
				t.Errorf("the input cells changed: %q", cells)
			}
			if tt.sameTarget {
				old, _ := parseSecretRef(tt.cell, false)
				now, _ := parseSecretRef(got[2], false)
				if a, b := filepath.Join(tt.from, old.Ref), filepath.Join(tt.to, now.Ref); a != b {
					t.Errorf("%s from %s is %s, but %s from %s is %s", tt.cell, tt.from, a, got[2], tt.to, b)
				}
			}
		})
	}
	got, err := RebaseCells([]string{"certificate_id", "store_id"}, []string{"1", guidA}, from, to)
	if err != nil || !reflect.DeepEqual(got, []string{"1", guidA}) {
		t.Errorf("without a password column: %q, %v", got, err)
	}
}
