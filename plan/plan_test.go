package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	guidA = "3f2a8c1e-5b7d-4e7a-9c1f-2d3e4f5a6b7c"
	guidB = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	thumb = "AABBCCDDEEFF00112233445566778899AABBCCDD"
)

// testNow is the tests' clock: before every job_time of the fixtures.
var testNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// fixedClock gives opts the tests' clock unless it has one.
func fixedClock(opts Options) Options {
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow }
	}
	return opts
}

// parseString parses text as a plan named plan.csv.
func parseString(tb testing.TB, text string, opts Options) (*Plan, error) {
	tb.Helper()
	return Parse(strings.NewReader(text), "plan.csv", fixedClock(opts))
}

// mustLoad loads a fixture from testdata and fails the test on any error.
func mustLoad(tb testing.TB, name string) *Plan {
	tb.Helper()
	p, err := Load(filepath.Join("testdata", name), fixedClock(Options{}))
	if err != nil {
		tb.Fatalf("Load(%s): %v", name, err)
	}
	return p
}

// errorList asserts that err is an *ErrorList and returns it.
func errorList(tb testing.TB, err error) ErrorList {
	tb.Helper()
	var list *ErrorList
	if !errors.As(err, &list) {
		tb.Fatalf("error %v (%T) is not an *ErrorList", err, err)
	}
	return *list
}

func TestLoadValid(t *testing.T) {
	p := mustLoad(t, "valid.csv")

	if want := filepath.Join("testdata", "valid.csv"); p.Path != want {
		t.Errorf("Path = %q, want %q", p.Path, want)
	}
	if !reflect.DeepEqual(p.Columns, Columns) {
		t.Errorf("Columns = %q, want %q", p.Columns, Columns)
	}
	if got := len(p.Rows); got != 5 {
		t.Fatalf("%d rows, want 5", got)
	}

	r := p.Rows[0]
	if r.Line != 3 || r.CertificateID != 1234 || r.StoreID != guidA || r.Alias != "web01" || !r.Overwrite {
		t.Errorf("row 0 = line %d id %d store %q alias %q overwrite %v", r.Line, r.CertificateID, r.StoreID, r.Alias, r.Overwrite)
	}
	wantProps := map[string]any{"ProviderName": "Microsoft Strong Cryptographic Provider", "Port": json.Number("8443")}
	if !reflect.DeepEqual(r.Properties, wantProps) {
		t.Errorf("row 0 properties = %#v, want %#v", r.Properties, wantProps)
	}
	if r.RenewBefore != (RenewBefore{Duration: 30 * 24 * time.Hour}) {
		t.Errorf("row 0 renew_before = %v, want 30d", r.RenewBefore)
	}
	if r.Values[2] != "3F2A8C1E-5B7D-4E7A-9C1F-2D3E4F5A6B7C" {
		t.Errorf("row 0 Values[2] = %q, want the cell as written", r.Values[2])
	}

	r = p.Rows[1]
	wantTime := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	if r.Line != 4 || r.CertificateID != 0 || r.Thumbprint != thumb || r.StoreID != "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0" ||
		r.Overwrite || r.Password != (SecretRef{Kind: "env", Ref: "PEM_PASS"}) || !r.JobTime.Equal(wantTime) ||
		r.Template != "WebServer" || r.CertificateAuthority != `CA1\issuing` || r.RenewBefore != (RenewBefore{Percent: 33}) {
		t.Errorf("row 1 = %+v", r)
	}
	if r.Properties != nil {
		t.Errorf("row 1 properties = %v, want nil when absent", r.Properties)
	}
	if p.Rows[3].Properties == nil || len(p.Rows[3].Properties) != 0 {
		t.Errorf("row 3 properties = %#v, want an empty map for {}", p.Rows[3].Properties)
	}
	if p.Rows[4].JobTime.Location() != time.UTC {
		t.Errorf("row 4 job_time %v is not in UTC", p.Rows[4].JobTime)
	}
	wantLines := []int{3, 4, 6, 7, 8}
	for i, r := range p.Rows {
		if r.Line != wantLines[i] {
			t.Errorf("row %d line = %d, want %d", i, r.Line, wantLines[i])
		}
	}
}

func TestGrouping(t *testing.T) {
	p := mustLoad(t, "valid.csv")
	type job struct {
		key   string
		id    int
		thumb string
		lines []int
	}
	want := []job{
		{"id:1234", 1234, "", []int{3, 6}},
		{"thumbprint:" + thumb, 0, thumb, []int{4, 8}},
		{"id:5678", 5678, "", []int{7}},
	}
	var got []job
	for _, j := range p.Jobs {
		var lines []int
		for _, r := range j.Rows {
			lines = append(lines, r.Line)
		}
		got = append(got, job{j.Key, j.CertificateID, j.Thumbprint, lines})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("jobs = %+v\nwant   %+v", got, want)
	}
	j := p.Jobs[1]
	if j.Password.String() != "env:PEM_PASS" || j.Template != "WebServer" || j.CertificateAuthority != `CA1\issuing` ||
		j.RenewBefore.String() != "33%" || !j.JobTime.Equal(time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)) {
		t.Errorf("job settings = %+v", j)
	}
}

func TestGroupingIDAndThumbprint(t *testing.T) {
	tests := []struct {
		name     string
		rows     string
		wantKeys []string
		wantErr  string
	}{
		{
			name:     "thumbprint row joins the id row that gave the same thumbprint",
			rows:     "1234," + thumb + "," + guidA + "\n," + strings.ToLower(thumb) + "," + guidB + "\n",
			wantKeys: []string{"id:1234"},
		},
		{
			name:     "id row joins an earlier thumbprint-only job and the key becomes the id",
			rows:     "," + thumb + "," + guidA + "\n1234," + thumb + "," + guidB + "\n",
			wantKeys: []string{"id:1234"},
		},
		{
			name:     "first appearance decides the order",
			rows:     "2," + "," + guidA + "\n1,," + guidA + "\n2,," + guidB + "\n",
			wantKeys: []string{"id:2", "id:1"},
		},
		{
			name:    "one id with two thumbprints",
			rows:    "1234," + thumb + "," + guidA + "\n1234,0000000000000000000000000000000000000000," + guidB + "\n",
			wantErr: "plan.csv:3:6: thumbprint: 0000000000000000000000000000000000000000 disagrees with " + thumb + " on line 2 for certificate id:1234 (expected one thumbprint per certificate_id)",
		},
		{
			name:    "one thumbprint with two ids",
			rows:    "1234," + thumb + "," + guidA + "\n99," + thumb + "," + guidB + "\n",
			wantErr: "plan.csv:3:1: certificate_id: 99 disagrees with 1234 on line 2 for thumbprint " + thumb + " (expected one certificate_id per thumbprint)",
		},
		{
			name:    "id and thumbprint of two different jobs",
			rows:    "1234,," + guidA + "\n," + thumb + "," + guidA + "\n1234," + thumb + "," + guidB + "\n",
			wantErr: "plan.csv:4:6: thumbprint: " + thumb + " names the certificate of line 3, not certificate_id 1234 of line 2 (expected a certificate_id and thumbprint of the same certificate)",
		},
		{
			name:    "duplicate pair spelled by thumbprint after id",
			rows:    "1234," + thumb + "," + guidA + "\n," + thumb + "," + guidA + "\n",
			wantErr: "plan.csv:3:43: store_id: duplicate of line 2: certificate id:1234 already goes to store " + guidA + " (expected each certificate and store pair on one row only)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseString(t, "certificate_id,thumbprint,store_id\n"+tt.rows, Options{})
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, want %q", tt.wantErr)
				}
				if got := err.Error(); got != tt.wantErr {
					t.Fatalf("error:\n got %s\nwant %s", got, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, j := range p.Jobs {
				keys = append(keys, j.Key)
			}
			if !reflect.DeepEqual(keys, tt.wantKeys) {
				t.Errorf("job keys = %q, want %q", keys, tt.wantKeys)
			}
		})
	}
}

func TestLoadFormats(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		wantCols  []string
		wantLines []int
		wantRaw   string // a fixture byte sequence the test depends on
	}{
		{"BOM before the header", "bom.csv", []string{"certificate_id", "store_id"}, []int{2}, "\xef\xbb\xbf"},
		{"CRLF line endings", "crlf.csv", []string{"certificate_id", "store_id", "alias", "properties"}, []int{2, 3}, "\r\n"},
		{"comments and blank lines", "comments.csv", []string{"certificate_id", "store_id"}, []int{6, 9}, "\n\n"},
		{"header case and spaces", "header_case.csv", []string{"certificate_id", "store_id", "alias", "renew_before"}, []int{2}, "Certificate_ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(raw, []byte(tt.wantRaw)) {
				t.Fatalf("fixture %s lost %q (an editor or git may have rewritten it)", tt.file, tt.wantRaw)
			}
			p := mustLoad(t, tt.file)
			if !reflect.DeepEqual(p.Columns, tt.wantCols) {
				t.Errorf("Columns = %q, want %q", p.Columns, tt.wantCols)
			}
			var lines []int
			for _, r := range p.Rows {
				lines = append(lines, r.Line)
				if r.CertificateID == 0 || r.StoreID == "" {
					t.Errorf("line %d: id %d store %q, want both set", r.Line, r.CertificateID, r.StoreID)
				}
			}
			if !reflect.DeepEqual(lines, tt.wantLines) {
				t.Errorf("row lines = %v, want %v", lines, tt.wantLines)
			}
		})
	}
}

func TestCRLFInsideQuotedCell(t *testing.T) {
	p := mustLoad(t, "crlf.csv")
	// encoding/csv turns a quoted \r\n into \n, so formatted JSON over
	// several CRLF lines reads, and no \r is left in the cell.
	if got, want := p.Rows[1].Properties, map[string]any{"ServerUseSni": "true"}; !reflect.DeepEqual(got, want) {
		t.Errorf("properties = %v, want %v", got, want)
	}
	if got, want := p.Rows[1].Values[3], "{\n  \"ServerUseSni\": \"true\"\n}"; got != want {
		t.Errorf("properties cell = %q, want %q", got, want)
	}
	if got := p.Rows[0].Alias; got != "web01" {
		t.Errorf("alias = %q, want web01 without \\r", got)
	}
}

func TestHeaderOnlyPlanIsEmpty(t *testing.T) {
	p := mustLoad(t, "header_only.csv")
	if len(p.Rows) != 0 || len(p.Jobs) != 0 {
		t.Errorf("got %d rows and %d jobs, want none", len(p.Rows), len(p.Jobs))
	}
	if p.Rows == nil || p.Jobs == nil {
		t.Errorf("Rows or Jobs is nil; want empty, non-nil slices")
	}
}

func TestHeaderSpellings(t *testing.T) {
	tests := []struct {
		name   string
		header string
	}{
		{"lower", "certificate_id,store_id"},
		{"upper", "CERTIFICATE_ID,STORE_ID"},
		{"spaces", "  certificate_id\t,  store_id  "},
		{"quoted", `" Certificate_Id ","Store_Id"`},
		{"bom", "\ufeffCertificate_Id,store_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseString(t, tt.header+"\n1,"+guidA+"\n", Options{})
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"certificate_id", "store_id"}; !reflect.DeepEqual(p.Columns, want) {
				t.Errorf("Columns = %q, want %q", p.Columns, want)
			}
		})
	}
}

func TestBadPlans(t *testing.T) {
	const known = "certificate_id, thumbprint, store_id, alias, overwrite, properties, password, job_time, template, certificate_authority, renew_before"
	const all = "certificate_id,thumbprint,store_id,alias,overwrite,properties,password,job_time,template,certificate_authority,renew_before\n"
	// row builds a line of all columns from the non-empty ones given.
	row := func(cells map[string]string) string {
		out := make([]string, len(Columns))
		for i, c := range Columns {
			out[i] = cells[c]
		}
		return strings.Join(out, ",") + "\n"
	}
	ok := func(extra map[string]string) string {
		cells := map[string]string{"certificate_id": "1234", "store_id": guidA}
		for k, v := range extra {
			cells[k] = v
		}
		return row(cells)
	}
	tests := []struct {
		name string
		text string
		opts Options
		want string
	}{
		{
			name: "empty file",
			text: "",
			want: "plan.csv: no header row (expected a first line naming the columns, e.g. certificate_id,store_id,alias)",
		},
		{
			name: "only comments",
			text: "# nothing\n\n",
			want: "plan.csv: no header row (expected a first line naming the columns, e.g. certificate_id,store_id,alias)",
		},
		{
			name: "unknown column",
			text: "certificate_id,store_id,Store-Name\n1," + guidA + ",x\n",
			want: `plan.csv:1:25: unknown column: "Store-Name" (expected one of ` + known + ")",
		},
		{
			name: "duplicate column",
			text: "certificate_id,store_id,Store_ID\n",
			want: `plan.csv:1:25: duplicate column (columns 2 and 3): "store_id" (expected each column at most once)`,
		},
		{
			name: "column without a name",
			text: "certificate_id,store_id,\n",
			want: "plan.csv:1:25: column 3 has no name (expected a name for every column: " + known + ")",
		},
		{
			name: "no store_id column",
			text: "certificate_id,alias\n1,x\n",
			want: `plan.csv:1: missing column: "store_id" (expected a store_id column, and a certificate_id or thumbprint column)`,
		},
		{
			name: "no certificate column",
			text: "store_id,alias\n" + guidA + ",x\n",
			want: "plan.csv:1: missing column certificate_id or thumbprint (expected a certificate_id or thumbprint column to name each certificate)",
		},
		{
			name: "missing store_id",
			text: all + row(map[string]string{"certificate_id": "1234"}),
			want: "plan.csv:2:7: store_id: missing (expected the certificate store's GUID, e.g. " + guidA + ")",
		},
		{
			name: "bad GUID",
			text: all + ok(map[string]string{"store_id": "abc"}),
			want: `plan.csv:2:7: store_id: not a GUID: "abc" (expected 8-4-4-4-12 hex digits, e.g. ` + guidA + ")",
		},
		{
			name: "GUID with one brace",
			text: all + ok(map[string]string{"store_id": "{" + guidA}),
			want: `plan.csv:2:7: store_id: not a GUID: "{` + guidA + `" (expected 8-4-4-4-12 hex digits, e.g. ` + guidA + ")",
		},
		{
			name: "bad certificate_id",
			text: all + ok(map[string]string{"certificate_id": "12x"}),
			want: `plan.csv:2:1: certificate_id: not a positive integer: "12x" (expected a positive whole number, the Command certificate id, e.g. 1234)`,
		},
		{
			name: "zero certificate_id",
			text: all + ok(map[string]string{"certificate_id": "0"}),
			want: `plan.csv:2:1: certificate_id: not a positive integer: "0" (expected a positive whole number, the Command certificate id, e.g. 1234)`,
		},
		{
			name: "negative certificate_id",
			text: all + ok(map[string]string{"certificate_id": "-5"}),
			want: `plan.csv:2:1: certificate_id: not a positive integer: "-5" (expected a positive whole number, the Command certificate id, e.g. 1234)`,
		},
		{
			name: "huge certificate_id",
			text: all + ok(map[string]string{"certificate_id": "99999999999"}),
			want: `plan.csv:2:1: certificate_id: too large for a certificate id: "99999999999" (expected at most 2147483647)`,
		},
		{
			name: "thumbprint too short",
			text: all + row(map[string]string{"thumbprint": "AA:BB:CC", "store_id": guidA}),
			want: `plan.csv:2:2: thumbprint: not a thumbprint (6 hex digits): "AA:BB:CC" (expected 40 hex digits (a SHA-1 thumbprint); ':', ' ' and '-' separators are allowed)`,
		},
		{
			name: "thumbprint not hex",
			text: all + row(map[string]string{"thumbprint": "ZZBBCCDDEEFF00112233445566778899AABBCCDD", "store_id": guidA}),
			want: `plan.csv:2:2: thumbprint: not a thumbprint ('Z' is not a hex digit): "ZZBBCCDDEEFF00112233445566778899AABBCCDD" (expected 40 hex digits (a SHA-1 thumbprint); ':', ' ' and '-' separators are allowed)`,
		},
		{
			name: "neither certificate_id nor thumbprint",
			text: all + row(map[string]string{"store_id": guidA, "alias": "web"}),
			want: "plan.csv:2:1: certificate_id: missing, and so is thumbprint (expected a certificate_id or a thumbprint naming the certificate)",
		},
		{
			name: "bad overwrite",
			text: all + ok(map[string]string{"overwrite": "maybe"}),
			want: `plan.csv:2:45: overwrite: not true or false: "maybe" (expected true or false (yes/no and 1/0 also work))`,
		},
		{
			name: "properties not JSON",
			text: all + ok(map[string]string{"properties": "{ServerPassword: s3cret}"}),
			want: `plan.csv:2:46: properties: not valid JSON: invalid character 'S' looking for beginning of object key string at byte 2 (expected a JSON object, e.g. {"ProviderName":"Microsoft Strong Cryptographic Provider"})`,
		},
		{
			name: "properties truncated",
			text: all + ok(map[string]string{"properties": `"{""a"":1"`}),
			want: `plan.csv:2:46: properties: not valid JSON: unexpected end of input (expected a JSON object, e.g. {"ProviderName":"Microsoft Strong Cryptographic Provider"})`,
		},
		{
			name: "properties with trailing data",
			text: all + ok(map[string]string{"properties": `"{} {}"`}),
			want: `plan.csv:2:46: properties: not valid JSON: more data after the object (expected a JSON object, e.g. {"ProviderName":"Microsoft Strong Cryptographic Provider"})`,
		},
		{
			name: "properties an array",
			text: all + ok(map[string]string{"properties": `"[1,2]"`}),
			want: `plan.csv:2:46: properties: not a JSON object but an array (expected a JSON object, e.g. {"ProviderName":"Microsoft Strong Cryptographic Provider"})`,
		},
		{
			name: "properties null",
			text: all + ok(map[string]string{"properties": "null"}),
			want: `plan.csv:2:46: properties: not a JSON object but null (expected a JSON object, e.g. {"ProviderName":"Microsoft Strong Cryptographic Provider"})`,
		},
		{
			name: "literal password refused",
			text: all + ok(map[string]string{"password": "hunter2"}),
			want: "plan.csv:2:47: password: a literal password is not allowed (expected env:NAME or file:PATH, or pass --allow-plain-passwords)",
		},
		{
			name: "env reference without a name",
			text: all + ok(map[string]string{"password": "env:"}),
			want: "plan.csv:2:47: password: env: reference without a valid variable name (expected env:NAME where NAME is letters, digits and _, not starting with a digit)",
		},
		{
			name: "file reference without a path",
			text: all + ok(map[string]string{"password": "file:"}),
			want: "plan.csv:2:47: password: file: reference without a path (expected file:PATH naming a file that holds the password)",
		},
		{
			name: "bad job_time",
			text: all + ok(map[string]string{"job_time": "2026-13-01T02:00:00Z"}),
			want: `plan.csv:2:48: job_time: not an ISO 8601 time: "2026-13-01T02:00:00Z" (expected an ISO 8601 UTC time with Z or an offset, e.g. 2026-11-24T02:00:00Z)`,
		},
		{
			name: "job_time without a zone",
			text: all + ok(map[string]string{"job_time": "2026-11-24T02:00:00"}),
			want: `plan.csv:2:48: job_time: no time zone: "2026-11-24T02:00:00" (expected Z or an offset such as +02:00 at the end, e.g. 2026-11-24T02:00:00Z)`,
		},
		{
			name: "bad renew_before",
			text: all + ok(map[string]string{"renew_before": "30x"}),
			want: `plan.csv:2:51: renew_before: not a duration or percentage: "30x" (expected a duration such as 30d, 720h or 90m, or a percentage of the validity period such as 33%)`,
		},
		{
			name: "renew_before percentage out of range",
			text: all + ok(map[string]string{"renew_before": "100%"}),
			want: `plan.csv:2:51: renew_before: percentage out of range: "100%" (expected more than 0% and less than 100%)`,
		},
		{
			name: "renew_before zero",
			text: all + ok(map[string]string{"renew_before": "0d"}),
			want: `plan.csv:2:51: renew_before: not positive: "0d" (expected a duration greater than zero, e.g. 30d)`,
		},
		{
			name: "disagreeing job_time",
			text: all + ok(map[string]string{"job_time": "2026-11-24T02:00:00Z"}) +
				ok(map[string]string{"store_id": guidB, "job_time": "2026-11-25T02:00:00Z"}),
			want: `plan.csv:3:48: job_time: "2026-11-25T02:00:00Z" disagrees with "2026-11-24T02:00:00Z" on line 2 (expected the same job_time on every row of certificate id:1234)`,
		},
		{
			name: "disagreeing password, one empty",
			text: all + ok(map[string]string{"password": "env:PEM_PASS"}) + ok(map[string]string{"store_id": guidB}),
			want: `plan.csv:3:47: password: (empty) disagrees with "env:PEM_PASS" on line 2 (expected the same password on every row of certificate id:1234)`,
		},
		{
			name: "disagreeing literal passwords are not shown",
			opts: Options{AllowPlainPasswords: true},
			text: all + ok(map[string]string{"password": "hunter2"}) + ok(map[string]string{"store_id": guidB, "password": "hunter3"}),
			want: `plan.csv:3:47: password: literal password differs from the literal password on line 2 (expected the same password on every row of certificate id:1234)`,
		},
		{
			name: "disagreeing literal and reference",
			opts: Options{AllowPlainPasswords: true},
			text: all + ok(map[string]string{"password": "hunter2"}) + ok(map[string]string{"store_id": guidB, "password": "file:/run/pw"}),
			want: `plan.csv:3:47: password: "file:/run/pw" disagrees with "(literal password)" on line 2 (expected the same password on every row of certificate id:1234)`,
		},
		{
			name: "disagreeing template, CA and renew_before",
			text: all + ok(map[string]string{"template": "Web", "certificate_authority": "CA1", "renew_before": "30d"}) +
				ok(map[string]string{"store_id": guidB, "template": "Web2", "certificate_authority": "CA2", "renew_before": "720h"}) +
				ok(map[string]string{"certificate_id": "7", "renew_before": "10%"}) +
				ok(map[string]string{"certificate_id": "7", "store_id": guidB, "renew_before": "12%"}),
			want: `plan.csv:3:49: template: "Web2" disagrees with "Web" on line 2 (expected the same template on every row of certificate id:1234)` + "\n" +
				`plan.csv:3:54: certificate_authority: "CA2" disagrees with "CA1" on line 2 (expected the same certificate_authority on every row of certificate id:1234)` + "\n" +
				`plan.csv:5:48: renew_before: "12%" disagrees with "10%" on line 4 (expected the same renew_before on every row of certificate id:7)`,
		},
		{
			name: "duplicate pair",
			text: all + ok(nil) + ok(map[string]string{"store_id": "{" + strings.ToUpper(guidA) + "}"}),
			want: "plan.csv:3:7: store_id: duplicate of line 2: certificate id:1234 already goes to store " + guidA + " (expected each certificate and store pair on one row only)",
		},
		{
			name: "wrong field count",
			text: "certificate_id,store_id,alias\n1," + guidA + "\n2," + guidA + ",a,b\n",
			want: "plan.csv:2: 2 fields (expected 3, one for each column of the header on line 1)\n" +
				"plan.csv:3: 4 fields (expected 3, one for each column of the header on line 1)",
		},
		{
			name: "malformed quoting",
			text: "certificate_id,store_id,alias\n1," + guidA + ",we\"b\n",
			want: `plan.csv:2: malformed CSV on line 2, column 42: bare " in non-quoted-field (expected cells with commas, quotes or line breaks inside double quotes, and "" for a quote within them)`,
		},
		{
			name: "several problems in one row, in column order",
			text: all + row(map[string]string{"certificate_id": "x", "store_id": "y", "overwrite": "z"}),
			want: `plan.csv:2:1: certificate_id: not a positive integer: "x" (expected a positive whole number, the Command certificate id, e.g. 1234)` + "\n" +
				`plan.csv:2:4: store_id: not a GUID: "y" (expected 8-4-4-4-12 hex digits, e.g. ` + guidA + ")\n" +
				`plan.csv:2:7: overwrite: not true or false: "z" (expected true or false (yes/no and 1/0 also work))`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseString(t, tt.text, tt.opts)
			if err == nil {
				t.Fatalf("no error (plan with %d rows), want:\n%s", len(p.Rows), tt.want)
			}
			if p == nil || p.Jobs != nil {
				t.Errorf("got plan %+v along with the error, want one with rows and no jobs", p)
			}
			errorList(t, err)
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n got %s\nwant %s", got, tt.want)
			}
			if strings.Contains(err.Error(), "hunter") || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows a secret: %s", err)
			}
		})
	}
}

func TestAllErrorsCollected(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "errors.csv"), fixedClock(Options{}))
	list := errorList(t, err)
	f := filepath.Join("testdata", "errors.csv")
	want := []string{
		f + `:2:1: certificate_id: not a positive integer: "abc" (expected a positive whole number, the Command certificate id, e.g. 1234)`,
		f + `:3:7: store_id: not a GUID: "not-a-guid" (expected 8-4-4-4-12 hex digits, e.g. ` + guidA + ")",
		f + `:3:19: overwrite: not true or false: "maybe" (expected true or false (yes/no and 1/0 also work))`,
		f + `:5:47: job_time: "2026-11-25T02:00:00Z" disagrees with "2026-11-24T02:00:00Z" on line 4 (expected the same job_time on every row of certificate id:1234)`,
		f + `:6:7: store_id: duplicate of line 4: certificate id:1234 already goes to store ` + guidA + ` (expected each certificate and store pair on one row only)`,
		f + `:7: 3 fields (expected 7, one for each column of the header on line 1)`,
		f + `:8:46: password: a literal password is not allowed (expected env:NAME or file:PATH, or pass --allow-plain-passwords)`,
	}
	var got []string
	for _, e := range list {
		got = append(got, e.Error())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if list[0].Line != 2 || list[0].Column != "certificate_id" || list[0].Value != "abc" || list[0].File != f {
		t.Errorf("first error fields = %+v", *list[0])
	}
	var re *RowError
	if !errors.As(err, &re) || re.Line != 2 {
		t.Errorf("errors.As(*RowError) = %v, want the first row error", re)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.csv")
	_, err := Load(path, Options{})
	if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load missing file: %v, want an error naming %s that wraps os.ErrNotExist", err, path)
	}
}

func TestLoadResolvesFileRefsBesideThePlan(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plan.csv")
	text := "certificate_id,store_id,password\n1," + guidA + ",file:secrets/pem.txt\n2," + guidA + ",file:/abs/pw\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "secrets", "pem.txt"); p.Rows[0].Password.Ref != want || p.Jobs[0].Password.Ref != want {
		t.Errorf("relative ref = %q (job %q), want %q", p.Rows[0].Password.Ref, p.Jobs[0].Password.Ref, want)
	}
	if p.Rows[1].Password.Ref != "/abs/pw" {
		t.Errorf("absolute ref = %q, want /abs/pw", p.Rows[1].Password.Ref)
	}
	if got := p.Rows[0].Values[2]; got != "file:secrets/pem.txt" {
		t.Errorf("Values keep the cell as written, got %q", got)
	}
}

func TestAcceptedSpellings(t *testing.T) {
	tests := []struct {
		name   string
		column string
		cell   string
		check  func(r *Row) bool
	}{
		{"thumbprint with spaces", "thumbprint", "aa bb cc dd ee ff 00 11 22 33 44 55 66 77 88 99 aa bb cc dd", func(r *Row) bool { return r.Thumbprint == thumb }},
		{"thumbprint with dashes", "thumbprint", "AABBCCDD-EEFF0011-22334455-66778899-AABBCCDD", func(r *Row) bool { return r.Thumbprint == thumb }},
		{"GUID in braces, upper case", "store_id", "{9A8B7C6D-5E4F-4A3B-8C2D-1E0F9A8B7C6D}", func(r *Row) bool { return r.StoreID == guidB }},
		{"overwrite YES", "overwrite", "YES", func(r *Row) bool { return r.Overwrite }},
		{"overwrite 1", "overwrite", "1", func(r *Row) bool { return r.Overwrite }},
		{"overwrite True", "overwrite", "True", func(r *Row) bool { return r.Overwrite }},
		{"overwrite no", "overwrite", "no", func(r *Row) bool { return !r.Overwrite }},
		{"job_time fractional", "job_time", "2026-11-24T02:00:00.250Z", func(r *Row) bool {
			return r.JobTime.Equal(time.Date(2026, 11, 24, 2, 0, 0, 250e6, time.UTC))
		}},
		{"job_time offset", "job_time", "2026-11-24T03:30:00+01:30", func(r *Row) bool {
			return r.JobTime.Equal(time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)) && r.JobTime.Location() == time.UTC
		}},
		{"job_time lower case", "job_time", "2026-11-24t02:00:00z", func(r *Row) bool {
			return r.JobTime.Equal(time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC))
		}},
		{"password env, any case prefix", "password", "ENV:PEM_PASS", func(r *Row) bool { return r.Password == SecretRef{Kind: "env", Ref: "PEM_PASS"} }},
		{"password file", "password", " file:/run/secrets/pem ", func(r *Row) bool { return r.Password == SecretRef{Kind: "file", Ref: "/run/secrets/pem"} }},
		{"renew_before minutes", "renew_before", "90m", func(r *Row) bool { return r.RenewBefore.Duration == 90*time.Minute }},
		{"alias trimmed", "alias", "  web01 ", func(r *Row) bool { return r.Alias == "web01" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header, cells := "certificate_id,store_id", "1234,"+guidA
			switch tt.column {
			case "store_id":
				header, cells = "certificate_id,thumbprint,store_id", "1234,,\""+tt.cell+"\""
			case "thumbprint":
				header, cells = "certificate_id,thumbprint,store_id", "1234,\""+tt.cell+"\","+guidA
			default:
				header += "," + tt.column
				cells += ",\"" + tt.cell + "\""
			}
			p, err := parseString(t, header+"\n"+cells+"\n", Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(p.Rows[0]) {
				t.Errorf("cell %q gave row %+v", tt.cell, p.Rows[0])
			}
		})
	}
}

func TestLiteralPasswordAllowed(t *testing.T) {
	p, err := parseString(t, "certificate_id,store_id,password\n1,"+guidA+", hunter2 \n", Options{AllowPlainPasswords: true})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Rows[0].Password
	if pw, err := got.Resolve(); got.Kind != SecretLiteral || got.Ref != "" || err != nil || pw != " hunter2 " {
		t.Errorf("password kind %q ref %q resolves to a different value or %v, want a literal kept as written and no Ref", got.Kind, got.Ref, err)
	}
}

func TestSecretRefStringAndIsZero(t *testing.T) {
	tests := []struct {
		ref  SecretRef
		want string
		zero bool
	}{
		{SecretRef{}, "", true},
		{SecretRef{Kind: "env", Ref: "PEM_PASS"}, "env:PEM_PASS", false},
		{SecretRef{Kind: "file", Ref: "/run/pw"}, "file:/run/pw", false},
		{SecretRef{Kind: "literal", Ref: "hunter2"}, "(literal password)", false},
		{SecretRef{Kind: "vault", Ref: "hunter2"}, "(vault)", false},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.ref.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got := tt.ref.IsZero(); got != tt.zero {
				t.Errorf("IsZero() = %v, want %v", got, tt.zero)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	lf := write("lf", "s3cret\n")
	crlf := write("crlf", "s3cret\r\n")
	two := write("two", "s3cret\n\n")
	bare := write("bare", "s3cret")
	empty := write("empty", "\n")
	missing := filepath.Join(dir, "missing")
	t.Setenv("RUNNER_TEST_PASS", "s3cret")
	t.Setenv("RUNNER_TEST_EMPTY", "")

	tests := []struct {
		name    string
		ref     SecretRef
		want    string
		wantErr string
	}{
		{name: "env", ref: SecretRef{Kind: "env", Ref: "RUNNER_TEST_PASS"}, want: "s3cret"},
		{name: "env unset", ref: SecretRef{Kind: "env", Ref: "RUNNER_TEST_UNSET_PEM_PASS"}, wantErr: "password: environment variable RUNNER_TEST_UNSET_PEM_PASS is not set"},
		{name: "env empty", ref: SecretRef{Kind: "env", Ref: "RUNNER_TEST_EMPTY"}, wantErr: "password: environment variable RUNNER_TEST_EMPTY is empty"},
		{name: "file LF", ref: SecretRef{Kind: "file", Ref: lf}, want: "s3cret"},
		{name: "file CRLF", ref: SecretRef{Kind: "file", Ref: crlf}, want: "s3cret"},
		{name: "file two newlines keeps one", ref: SecretRef{Kind: "file", Ref: two}, want: "s3cret\n"},
		{name: "file without newline", ref: SecretRef{Kind: "file", Ref: bare}, want: "s3cret"},
		{name: "file empty", ref: SecretRef{Kind: "file", Ref: empty}, wantErr: "password: file " + empty + " is empty"},
		{name: "file missing", ref: SecretRef{Kind: "file", Ref: missing}, wantErr: "password: open " + missing + ": no such file or directory"},
		{name: "literal", ref: SecretRef{Kind: "literal", literal: newLiteral("s3cret")}, want: "s3cret"},
		{name: "literal not from a plan", ref: SecretRef{Kind: "literal", Ref: "s3cret"}, wantErr: "password: literal reference without a value (expected one read from a plan)"},
		{name: "zero", ref: SecretRef{}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ref.Resolve()
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Resolve() error = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error shows the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Resolve() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseRenewBefore(t *testing.T) {
	tests := []struct {
		in      string
		want    RenewBefore
		str     string
		wantErr bool
	}{
		{in: "30d", want: RenewBefore{Duration: 30 * 24 * time.Hour}, str: "30d"},
		{in: "1.5d", want: RenewBefore{Duration: 36 * time.Hour}, str: "36h"},
		{in: "720h", want: RenewBefore{Duration: 720 * time.Hour}, str: "30d"},
		{in: "90m", want: RenewBefore{Duration: 90 * time.Minute}, str: "90m"},
		{in: "1h30m", want: RenewBefore{Duration: 90 * time.Minute}, str: "90m"},
		{in: "45s", want: RenewBefore{Duration: 45 * time.Second}, str: "45s"},
		{in: "33%", want: RenewBefore{Percent: 33}, str: "33%"},
		{in: "12.5%", want: RenewBefore{Percent: 12.5}, str: "12.5%"},
		{in: " 30d ", want: RenewBefore{Duration: 30 * 24 * time.Hour}, str: "30d"},
		{in: "", wantErr: true},
		{in: "30", wantErr: true},
		{in: "d", wantErr: true},
		{in: "-3d", wantErr: true},
		{in: "1e3d", wantErr: true},
		{in: "NaNd", wantErr: true},
		{in: "0%", wantErr: true},
		{in: "100%", wantErr: true},
		{in: "-5%", wantErr: true},
		{in: "x%", wantErr: true},
		{in: "-1h", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRenewBefore(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseRenewBefore(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseRenewBefore(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
		})
	}
	if s := (RenewBefore{}).String(); s != "" {
		t.Errorf("zero String() = %q, want empty", s)
	}
}

func TestDueAt(t *testing.T) {
	notBefore := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC) // 365 days later
	tests := []struct {
		name string
		rb   RenewBefore
		want time.Time
	}{
		{"30 days", RenewBefore{Duration: 30 * 24 * time.Hour}, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)},
		{"90 minutes", RenewBefore{Duration: 90 * time.Minute}, time.Date(2026, 12, 31, 22, 30, 0, 0, time.UTC)},
		{"longer than the validity", RenewBefore{Duration: 400 * 24 * time.Hour}, time.Date(2025, 11, 27, 0, 0, 0, 0, time.UTC)},
		{"one third", RenewBefore{Percent: 100.0 / 3}, time.Date(2026, 9, 1, 8, 0, 0, 0, time.UTC)},
		{"10 percent", RenewBefore{Percent: 10}, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)},
		{"50 percent", RenewBefore{Percent: 50}, time.Date(2026, 7, 2, 12, 0, 0, 0, time.UTC)},
		{"unset means at expiry", RenewBefore{}, notAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.rb.DueAt(notBefore, notAfter)
			// Float percentages may be off by a few nanoseconds.
			if d := got.Sub(tt.want); d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("DueAt = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWriteRoundTrip(t *testing.T) {
	orig := mustLoad(t, "valid.csv")
	rows := make([][]string, len(orig.Rows))
	for i, r := range orig.Rows {
		rows[i] = r.Values
	}
	var buf bytes.Buffer
	if err := Write(&buf, orig.Columns, rows); err != nil {
		t.Fatal(err)
	}
	back, err := Parse(&buf, "failed.csv", fixedClock(Options{}))
	if err != nil {
		t.Fatalf("Parse(Write(...)): %v", err)
	}
	if !reflect.DeepEqual(back.Columns, orig.Columns) {
		t.Errorf("columns = %q, want %q", back.Columns, orig.Columns)
	}
	if len(back.Rows) != len(orig.Rows) {
		t.Fatalf("%d rows back, want %d", len(back.Rows), len(orig.Rows))
	}
	for i := range orig.Rows {
		a, b := *orig.Rows[i], *back.Rows[i]
		a.Line, b.Line = 0, 0
		if !reflect.DeepEqual(a, b) {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, b, a)
		}
	}
}
