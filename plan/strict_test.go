package plan

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// errorTexts returns the text of each problem in err, an *ErrorList.
func errorTexts(tb testing.TB, err error) []string {
	tb.Helper()
	var out []string
	for _, e := range errorList(tb, err) {
		out = append(out, e.Error())
	}
	return out
}

func TestStrictCells(t *testing.T) {
	const header = "certificate_id,store_id,alias,properties,password,template,certificate_authority,job_time\n"
	const start = "1," + guidA + "," // alias starts at byte 40
	const textExp = "(expected text without control characters (tabs and line breaks are allowed only in properties))"
	tests := []struct {
		name string
		row  string
		opts Options
		want string // "" when the row is valid
	}{
		{"cp1252 export", start + "caf\xe9,,,,,", Options{},
			`plan.csv:2:40: alias: not UTF-8 (byte 0xE9 at byte 4 of the cell): "caf\xe9" (expected UTF-8 text: save the file as CSV UTF-8, a Windows-1252 or Latin-1 export is not UTF-8)`},
		{"NUL in an alias", start + "web\x0001,,,,,", Options{},
			`plan.csv:2:40: alias: control character U+0000 at byte 4 of the cell: "web\x0001" ` + textExp},
		{"escape sequence", start + "\x1b[31mweb,,,,,", Options{},
			`plan.csv:2:40: alias: control character U+001B at byte 1 of the cell: "\x1b[31mweb" ` + textExp},
		{"DEL", start + "web\x7f,,,,,", Options{},
			`plan.csv:2:40: alias: control character U+007F at byte 4 of the cell: "web\x7f" ` + textExp},
		{"C1 control", start + "web\u0085x,,,,,", Options{},
			`plan.csv:2:40: alias: control character U+0085 at byte 4 of the cell: "web\u0085x" ` + textExp},
		{"tab inside an alias", start + "web\t01,,,,,", Options{},
			`plan.csv:2:40: alias: control character U+0009 at byte 4 of the cell: "web\t01" ` + textExp},
		{"line break inside an alias", start + "\"web\n01\",,,,,", Options{},
			`plan.csv:2:40: alias: control character U+000A at byte 4 of the cell: "web\n01" ` + textExp},
		{"CR after an alias", start + "\"web\r\",,,,,", Options{},
			"plan.csv:2:40: alias: control character U+000D (carriage return) at byte 4 of the cell " + textExp},
		{"CR CR LF inside quotes", start + "\"web\r\r\n\",,,,,", Options{},
			"plan.csv:2:40: alias: control character U+000D (carriage return) at byte 4 of the cell " + textExp},
		{"position counts from the cell as written", start + "\"  web\x00\",,,,,", Options{},
			`plan.csv:2:40: alias: control character U+0000 at byte 6 of the cell: "web\x00" ` + textExp},
		{"tabs around an alias are trimmed", start + "\tweb01\t,,,,,", Options{}, ""},
		{"formatted JSON in properties", start + "web,\"{\n\t\"\"a\"\": 1\n}\",,,,", Options{}, ""},
		{"CR in properties", start + "web,\"{\r\"\"a\"\": 1}\",,,,", Options{},
			"plan.csv:2:44: properties: control character U+000D (carriage return) at byte 2 of the cell (expected a JSON object without control characters other than tabs and line breaks between its tokens)"},
		{"NUL in a password is not shown", start + "web,,env:A\x00B,,,", Options{},
			"plan.csv:2:45: password: control character U+0000 at byte 6 of the cell " + textExp},
		{"control character in a template", start + "web,,,Web\x01,CA,", Options{},
			`plan.csv:2:46: template: control character U+0001 at byte 4 of the cell: "Web\x01" ` + textExp},
		{"alias of 4 KiB", start + strings.Repeat("a", MaxCellBytes) + ",,,,,", Options{}, ""},
		{"alias over 4 KiB", start + strings.Repeat("a", MaxCellBytes+1) + ",,,,,", Options{},
			"plan.csv:2:40: alias: cell of 4097 bytes is too long (expected at most 4096 bytes)"},
		{"properties of 64 KiB", start + `web,"{""a"":""` + strings.Repeat("x", MaxPropertiesBytes-8) + `""}",,,,`, Options{}, ""},
		{"properties over 64 KiB", start + `web,"{""a"":""` + strings.Repeat("x", MaxPropertiesBytes-7) + `""}",,,,`, Options{},
			"plan.csv:2:44: properties: cell of 65537 bytes is too long (expected at most 65536 bytes)"},
		{"job_time in the past", start + "web,,,,,2026-05-31T23:59:59Z", Options{},
			`plan.csv:2:48: job_time: in the past (now is 2026-06-01T00:00:00Z): "2026-05-31T23:59:59Z" (expected a later time, an empty cell to run the job at once, or --allow-past-job-time)`},
		{"job_time in the past, allowed", start + "web,,,,,2026-05-31T23:59:59Z", Options{AllowPastJobTime: true}, ""},
		{"job_time now is not past", start + "web,,,,,2026-06-01T00:00:00Z", Options{}, ""},
		{"job_time past by another clock", start + "web,,,,,2026-06-05T00:00:00Z", Options{Now: func() time.Time { return testNow.AddDate(0, 0, 7) }},
			`plan.csv:2:48: job_time: in the past (now is 2026-06-08T00:00:00Z): "2026-06-05T00:00:00Z" (expected a later time, an empty cell to run the job at once, or --allow-past-job-time)`},
		{"template without CA", start + "web,,,WebServer,,", Options{},
			`plan.csv:2:46: template: template without certificate_authority: "WebServer" (expected a certificate_authority too (host\logical name), since Renew takes a template only with its CA; or neither, for one-click renewal)`},
		{"CA without template", start + `web,,,,CA1\issuing,`, Options{},
			`plan.csv:2:47: certificate_authority: certificate_authority without template: "CA1\\issuing" (expected a template too, since Renew takes a CA only with a template; or neither, for one-click renewal)`},
		{"template and CA", start + `web,,,WebServer,CA1\issuing,`, Options{}, ""},
		{"more fields than the header", start + "web,,,,,,extra", Options{},
			"plan.csv:2: 9 fields (expected 8, one for each column of the header on line 1)"},
		{"long bad value is cut", start + "web,,,,," + strings.Repeat("9", 100), Options{},
			`plan.csv:2:48: job_time: not an ISO 8601 time: "` + strings.Repeat("9", 80) + `…" (expected an ISO 8601 UTC time with Z or an offset, e.g. 2026-11-24T02:00:00Z)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseString(t, header+tt.row+"\n", tt.opts)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				if len(p.Rows) != 1 {
					t.Fatalf("%d rows, want 1", len(p.Rows))
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %s", tt.want)
			}
			if got := strings.Join(errorTexts(t, err), "\n"); got != tt.want {
				t.Errorf("error:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestUnknownColumnStillListsRowErrors(t *testing.T) {
	text := "certificate_id,Store-Name,store_id\n" +
		"1,x," + guidA + "\n" +
		"2,\xff,abc\n" +
		"x,y," + guidB + "\n"
	p, err := parseString(t, text, Options{})
	want := []string{
		`plan.csv:1:16: unknown column: "Store-Name" (expected one of ` + strings.Join(Columns, ", ") + ")",
		`plan.csv:3:3: store-name: not UTF-8 (byte 0xFF at byte 1 of the cell): "\xff" (expected UTF-8 text: save the file as CSV UTF-8, a Windows-1252 or Latin-1 export is not UTF-8)`,
		`plan.csv:3:5: store_id: not a GUID: "abc" (expected 8-4-4-4-12 hex digits, e.g. ` + guidA + ")",
		`plan.csv:4:1: certificate_id: not a positive integer: "x" (expected a positive whole number, the Command certificate id, e.g. 1234)`,
	}
	if got := errorTexts(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p == nil || len(p.Rows) != 1 || p.Rows[0].Line != 2 || p.Jobs != nil {
		t.Errorf("plan with the error = %+v, want the row of line 2 and no jobs", p)
	}
}

func TestMissingKeyColumnStillValidatesCells(t *testing.T) {
	_, err := parseString(t, "certificate_id,alias\n1,web\nx,web\n", Options{})
	want := []string{
		`plan.csv:1: missing column: "store_id" (expected a store_id column, and a certificate_id or thumbprint column)`,
		`plan.csv:3:1: certificate_id: not a positive integer: "x" (expected a positive whole number, the Command certificate id, e.g. 1234)`,
	}
	if got := errorTexts(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPlanWithErrorsKeepsTheGoodRows(t *testing.T) {
	text := "certificate_id,store_id\n1," + guidA + "\n2,abc\n3," + guidA + "\n1," + guidA + "\n"
	p, err := parseString(t, text, Options{})
	if len(errorList(t, err)) != 2 {
		t.Fatalf("errors %v, want the bad GUID and the duplicate", err)
	}
	var lines []int
	for _, r := range p.Rows {
		lines = append(lines, r.Line)
	}
	if fmt.Sprint(lines) != "[2 4]" || p.Jobs != nil || p.Path != "plan.csv" || len(p.Columns) != 2 {
		t.Errorf("rows on lines %v, jobs %v; want lines [2 4] and no jobs", lines, p.Jobs)
	}
}

func TestLimits(t *testing.T) {
	rows := func(n int) string {
		var b strings.Builder
		b.WriteString("certificate_id,store_id\n")
		for i := range n {
			fmt.Fprintf(&b, "%d,%s\n", i+1, guidA)
		}
		return b.String()
	}
	tests := []struct {
		name string
		text string
		lim  limits
		want []string
		rows int // rows kept
	}{
		{"rows up to the limit", rows(3), limits{rows: 3, planBytes: 1 << 20, record: 1 << 10}, nil, 3},
		{"rows past the limit", rows(5), limits{rows: 3, planBytes: 1 << 20, record: 1 << 10},
			[]string{"plan.csv:5: more than 3 rows; reading stopped here (expected at most 3 rows in one plan: split it into several plans)"}, 3},
		{"plan of exactly the limit", rows(3), limits{rows: 10, planBytes: int64(len(rows(3))), record: 1 << 10}, nil, 3},
		{"plan too large", rows(5000), limits{rows: 10000, planBytes: 100 << 10, record: 1 << 10},
			[]string{"plan.csv: larger than 100 KiB; reading stopped (expected a plan of at most 100 KiB)"}, -1},
		{"endless quoted cell", "certificate_id,store_id\n1,\"" + strings.Repeat("a,\n", 200<<10), limits{rows: 10, planBytes: 1 << 30, record: 100 << 10},
			[]string{`plan.csv:2: a record longer than 100 KiB; reading stopped (expected cells of at most 4096 bytes (properties 65536), each quoted cell closed by a ")`}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &countingReader{r: strings.NewReader(tt.text)}
			p, err := parse(src, "plan.csv", fixedClock(Options{}), tt.lim, 0)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
			} else if got := errorTexts(t, err); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if tt.rows >= 0 && len(p.Rows) != tt.rows {
				t.Errorf("%d rows kept, want %d", len(p.Rows), tt.rows)
			}
			// Reading stops at the limit (and the one byte that shows
			// there is more), not at the end of the input.
			if bound := tt.lim.planBytes + 1; src.n > bound {
				t.Errorf("read %d bytes, past the %d-byte limit", src.n, bound)
			}
			if tt.lim.record < tt.lim.planBytes>>4 && src.n > tt.lim.record+2*readBuffer+100 {
				t.Errorf("read %d bytes for a record limit of %d", src.n, tt.lim.record)
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestTooManyHeaderColumns(t *testing.T) {
	header := "certificate_id,store_id" + strings.Repeat(",x", 70)
	_, err := parseString(t, header+"\n", Options{})
	got := errorTexts(t, err)
	if !strings.HasPrefix(got[0], "plan.csv:1: header of 72 columns (expected at most 64 columns: ") {
		t.Errorf("first error %s", got[0])
	}
}

func TestReadErrorIsNotAPlanError(t *testing.T) {
	boom := errors.New("connection reset")
	_, err := Parse(io.MultiReader(strings.NewReader("certificate_id,store_id\n1,"), &failReader{boom}), "plan.csv", Options{})
	var list *ErrorList
	if !errors.Is(err, boom) || errors.As(err, &list) || err.Error() != "read plan.csv: connection reset" {
		t.Errorf("error %v, want the read error, not a plan error", err)
	}
}

type failReader struct{ err error }

func (f *failReader) Read([]byte) (int, error) { return 0, f.err }

func TestErrorListSummary(t *testing.T) {
	var list ErrorList
	for i := range 5 {
		list = append(list, &RowError{File: "plan.csv", Line: i + 2, Col: 7, Column: "store_id", Problem: "not a GUID"})
	}
	tests := []struct {
		max  int
		want string
	}{
		{2, "plan.csv:2:7: store_id: not a GUID\nplan.csv:3:7: store_id: not a GUID\n… and 3 more errors (runner validate --all lists every one)"},
		{4, "plan.csv:2:7: store_id: not a GUID\nplan.csv:3:7: store_id: not a GUID\nplan.csv:4:7: store_id: not a GUID\nplan.csv:5:7: store_id: not a GUID\n… and 1 more error (runner validate --all lists every one)"},
		{5, "plan.csv:2:7: store_id: not a GUID\nplan.csv:3:7: store_id: not a GUID\nplan.csv:4:7: store_id: not a GUID\nplan.csv:5:7: store_id: not a GUID\nplan.csv:6:7: store_id: not a GUID"},
		{0, "plan.csv:2:7: store_id: not a GUID\nplan.csv:3:7: store_id: not a GUID\nplan.csv:4:7: store_id: not a GUID\nplan.csv:5:7: store_id: not a GUID\nplan.csv:6:7: store_id: not a GUID"},
	}
	for _, tt := range tests {
		if got := list.Summary(tt.max); got != tt.want {
			t.Errorf("Summary(%d):\n%s\nwant:\n%s", tt.max, got, tt.want)
		}
	}
}

func TestManyBadRowsAreAllKeptAndErrorIsCapped(t *testing.T) {
	const n = 3000
	var b strings.Builder
	b.WriteString("certificate_id,store_id\n")
	for i := range n {
		fmt.Fprintf(&b, "%d,not-a-guid\n", i+1)
	}
	_, err := parseString(t, b.String(), Options{})
	list := errorList(t, err)
	if len(list) != n || list[n-1].Line != n+1 {
		t.Fatalf("%d errors, want %d", len(list), n)
	}
	text := err.Error()
	if lines := strings.Count(text, "\n") + 1; lines != SummaryLimit+1 {
		t.Errorf("Error() has %d lines, want %d and a count", lines, SummaryLimit+1)
	}
	if !strings.HasSuffix(text, fmt.Sprintf("… and %d more errors (runner validate --all lists every one)", n-SummaryLimit)) {
		t.Errorf("Error() ends %q", text[len(text)-80:])
	}
}

func TestManyStoresOfOneCertificate(t *testing.T) {
	// Past manyStores a job's stores are looked up in a map; duplicates
	// are found on both sides of that switch, and in a small job (8) read
	// after another job got its map.
	var b strings.Builder
	b.WriteString("certificate_id,store_id\n")
	store := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
	for i := range 40 {
		fmt.Fprintf(&b, "7,%s\n", store(i))
	}
	fmt.Fprintf(&b, "7,%s\n7,%s\n", store(3), store(30))
	fmt.Fprintf(&b, "8,%s\n8,%s\n8,%s\n", store(1), store(2), store(1))
	p, err := parseString(t, b.String(), Options{})
	want := []string{
		"plan.csv:42:3: store_id: duplicate of line 5: certificate id:7 already goes to store " + store(3) + " (expected each certificate and store pair on one row only)",
		"plan.csv:43:3: store_id: duplicate of line 32: certificate id:7 already goes to store " + store(30) + " (expected each certificate and store pair on one row only)",
		"plan.csv:46:3: store_id: duplicate of line 44: certificate id:8 already goes to store " + store(1) + " (expected each certificate and store pair on one row only)",
	}
	if got := errorTexts(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(p.Rows) != 42 {
		t.Errorf("%d rows kept, want 42", len(p.Rows))
	}
}

func TestParseGUIDBytes(t *testing.T) {
	want := [16]byte{0x3f, 0x2a, 0x8c, 0x1e, 0x5b, 0x7d, 0x4e, 0x7a, 0x9c, 0x1f, 0x2d, 0x3e, 0x4f, 0x5a, 0x6b, 0x7c}
	for _, s := range []string{guidA, strings.ToUpper(guidA), "{" + guidA + "}", "{3F2A8C1E-5b7d-4E7A-9c1f-2D3E4F5A6B7C}"} {
		g, b, err := parseGUID(s)
		if err != nil || g != guidA || b != want {
			t.Errorf("parseGUID(%q) = %q, %x, %v; want %q, %x", s, g, b, err, guidA, want)
		}
	}
	for _, s := range []string{"", guidA[:35], guidA + "0", strings.Replace(guidA, "-", "x", 1), strings.Replace(guidA, "3f", "3g", 1), "{" + guidA, "3f2a8c1e5b7d-4e7a-9c1f-2d3e4f5a6b7c-"} {
		if _, _, err := parseGUID(s); err == nil {
			t.Errorf("parseGUID(%q) accepted", s)
		}
	}
}
