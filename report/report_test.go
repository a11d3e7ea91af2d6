package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"runner/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	storeA = "4b5e1c2a-0d3f-4c8e-9a61-2f7d3b9e0a11"
	storeB = "9f0e7d6c-5b4a-4392-8170-6e5d4c3b2a10"
	thumb  = "3A1F9C2B7D4E8F60A5B1C3D2E4F6A7B8C9D0E1F2"
)

var columns = []string{"certificate_id", "thumbprint", "store_id", "alias", "overwrite", "properties", "password"}

// fixture is a report with every status, zero and non-zero times and ids,
// and cells that need escaping in every format. Its rows are not in line
// order, as a runner that records results as they come may leave them.
func fixture() *Report {
	start := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	// A zone other than UTC: reports must convert.
	est := time.FixedZone("EST", -5*3600)
	return &Report{
		Run: Run{
			Start:    start,
			End:      start.Add(72*time.Second + 400*time.Millisecond),
			PlanFile: "plans/nightly.csv",
			Columns:  columns,
			Command:  "run",
		},
		Rows: []Row{
			{
				Line: 2, CertificateID: 1234, StoreID: storeA, Alias: "web",
				Status: Succeeded, Stage: StageVerify, Detail: "seen in store",
				NewCertificateID: 5678, RequestID: 91,
				RenewedAt:  start.Add(10 * time.Second),
				DeployedAt: start.Add(12 * time.Second).In(est),
				VerifiedAt: start.Add(70 * time.Second),
				PlanValues: []string{"1234", "", storeA, "web", "true", `{"ServerUseSsl":"true","Port":"443"}`, "env:PFX_PASS"},
			},
			{
				Line: 9, CertificateID: 2000, StoreID: storeB, Alias: "api",
				Status: Failed, Stage: StagePreflight, Detail: "store not found",
				PlanValues: []string{"2000", "", storeB, "api", "", "", "hunter2"},
			},
			{
				Line: 3, CertificateID: 1235, StoreID: storeB, Alias: "mail",
				Status: Failed, Stage: StageDeploy,
				Detail:           "window expired 12s before deploy | renewed, not deployed\nrerun to deploy 5679",
				Error:            `POST /Enrollment/PFX/Deploy: HTTP 400: 0xA0110008: The format "STORE" is invalid, try again`,
				NewCertificateID: 5679, RequestID: 92,
				RenewedAt:  start.Add(11 * time.Second),
				PlanValues: []string{"1235", "", storeB, "mail", "false", "", "file:/etc/runner/mail.pass"},
			},
			{
				Line: 4, Thumbprint: thumb, StoreID: storeA,
				Status: Skipped, Stage: StageCheck, Detail: "not due until 2027-01-10",
				PlanValues: []string{"", thumb, storeA, "", "", "", ""},
			},
			{
				Line: 5, CertificateID: 3000, StoreID: storeA, Alias: "queued",
				Status: Skipped, Stage: StageRenew, Detail: "not started (interrupted)",
				// A ragged plan line: fewer cells than columns.
				PlanValues: []string{"3000", "", storeA},
			},
			{
				Line: 6, CertificateID: 4000, StoreID: storeB,
				Status: Failed, Stage: StageDeploy, Detail: "job created, then failed: access is denied to the store's orchestrator which could not write the keystore file on the target host",
				NewCertificateID: 4001,
				RenewedAt:        start.Add(20 * time.Second),
				DeployedAt:       start.Add(21 * time.Second),
				PlanValues:       []string{"4000", "", storeB, "", "", "", ""},
			},
		},
	}
}

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report/ -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./report/ -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

func render(t testing.TB, write func(io.Writer, *Report) error, r *Report) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := write(&buf, r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name   string
		write  func(io.Writer, *Report) error
		golden string
	}{
		{"json", WriteJSON, "report.json.golden"},
		{"csv", WriteCSV, "report.csv.golden"},
		{"markdown", WriteMarkdown, "report.md.golden"},
		{"summary", WriteSummary, "summary.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, tt.golden, render(t, tt.write, fixture()))
		})
	}
}

func TestWriteFileFollowsExtension(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		golden string
	}{
		{"json", "out.json", "report.json.golden"},
		{"json upper case", "OUT.JSON", "report.json.golden"},
		{"csv", "out.csv", "report.csv.golden"},
		{"md", "out.md", "report.md.golden"},
		{"markdown", "out.markdown", "report.md.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if *update {
				t.Skip("golden files are being rewritten")
			}
			dir := t.TempDir()
			path := filepath.Join(dir, tt.file)
			if err := WriteFile(path, fixture()); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, got)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("mode = %v, want 0644", fi.Mode().Perm())
			}
			assertOnlyFiles(t, dir, tt.file)
		})
	}
}

func TestUnknownExtension(t *testing.T) {
	tests := []struct {
		name string
		file string
		want string
	}{
		{"txt", "out.txt", `unknown extension ".txt"`},
		{"html not yet", "out.html", `unknown extension ".html"`},
		{"none", "report", "no extension"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tt.file)
			for _, err := range []error{CheckPath(path), WriteFile(path, fixture())} {
				if err == nil {
					t.Fatal("no error")
				}
				for _, part := range []string{path, tt.want, ".json, .csv, .md, .markdown"} {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q does not contain %q", err, part)
					}
				}
			}
			assertOnlyFiles(t, dir)
		})
	}
}

// failingWriter accepts some bytes and then fails, like a full disk.
type failingWriter struct {
	w    io.Writer
	left int
}

var errDiskFull = errors.New("no space left on device")

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n, _ := f.w.Write(p[:f.left])
		f.left = 0
		return n, errDiskFull
	}
	f.left -= len(p)
	return f.w.Write(p)
}

func TestFailedWriteKeepsEarlierReport(t *testing.T) {
	big := fixture()
	// Enough rows that the report is far bigger than bufio's buffer, so the
	// temporary file really receives part of it before the failure.
	for range 200 {
		big.Rows = append(big.Rows, big.Rows[0], big.Rows[2])
	}
	tests := []struct {
		name  string
		write func(path string, r *Report) error
		file  string
	}{
		{"json", WriteFile, "report.json"},
		{"csv", WriteFile, "report.csv"},
		{"markdown", WriteFile, "report.md"},
		{"failed plan", WriteFailedPlan, "failed.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tt.file)
			if err := os.WriteFile(path, []byte("earlier report\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			setWrapWriter(t, func(w io.Writer) io.Writer { return &failingWriter{w: w, left: 5000} })

			err := tt.write(path, big)
			if !errors.Is(err, errDiskFull) {
				t.Fatalf("error = %v, want it to wrap %v", err, errDiskFull)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "earlier report\n" {
				t.Errorf("earlier report was replaced with %d bytes", len(got))
			}
			assertOnlyFiles(t, dir, tt.file)
		})
	}
}

func TestRenameOntoDirectoryFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.json")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(path, fixture())
	if err == nil {
		t.Fatal("no error writing over a directory")
	}
	if !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), ".tmp-") {
		t.Errorf("error %q should name %s and not the temporary file", err, path)
	}
	assertOnlyFiles(t, dir, "report.json")
}

func TestMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "report.csv")
	err := WriteFile(path, fixture())
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error = %v, want one wrapping os.ErrNotExist", err)
	}
}

func setWrapWriter(t testing.TB, f func(io.Writer) io.Writer) {
	t.Helper()
	old := wrapWriter
	wrapWriter = f
	t.Cleanup(func() { wrapWriter = old })
}

// assertOnlyFiles fails unless dir holds exactly names: no temporary files.
func assertOnlyFiles(t testing.TB, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if fmt.Sprint(got) != fmt.Sprint(names) {
		t.Errorf("directory holds %q, want %q", got, names)
	}
}

func TestJSONNullsAndTimes(t *testing.T) {
	var doc struct {
		Schema string
		Run    map[string]any
		Rows   []map[string]any
	}
	if err := json.Unmarshal(render(t, WriteJSON, fixture()), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Schema != "runner.report/v1" {
		t.Errorf("schema = %q", doc.Schema)
	}
	if got := doc.Run["duration_seconds"]; got != 72.4 {
		t.Errorf("duration_seconds = %v, want 72.4", got)
	}
	if got := fmt.Sprint(doc.Run["counts"]); got != "map[failed:3 skipped:2 succeeded:1]" {
		t.Errorf("counts = %s", got)
	}
	byLine := map[float64]map[string]any{}
	for _, r := range doc.Rows {
		byLine[r["line"].(float64)] = r
	}
	tests := []struct {
		name  string
		line  float64
		field string
		want  any
	}{
		{"time in another zone is UTC", 2, "deployed_at", "2026-11-24T02:00:12Z"},
		{"zero time is null", 9, "renewed_at", nil},
		{"zero new id is null", 9, "new_certificate_id", nil},
		{"zero request id is null", 6, "request_id", nil},
		{"zero certificate id is null", 4, "certificate_id", nil},
		{"set id is a number", 3, "new_certificate_id", 5679.0},
		{"empty string stays a string", 4, "alias", ""},
		{"empty error stays a string", 2, "error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row, ok := byLine[tt.line]
			if !ok {
				t.Fatalf("no row for line %v", tt.line)
			}
			got, present := row[tt.field]
			if !present {
				t.Fatalf("row %v has no %s", tt.line, tt.field)
			}
			if got != tt.want {
				t.Errorf("%s = %#v, want %#v", tt.field, got, tt.want)
			}
		})
	}
	t.Run("unknown times of the run are null", func(t *testing.T) {
		var doc struct{ Run map[string]any }
		if err := json.Unmarshal(render(t, WriteJSON, &Report{}), &doc); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"start", "end", "duration_seconds"} {
			if v, ok := doc.Run[f]; !ok || v != nil {
				t.Errorf("%s = %v (present %v), want null", f, v, ok)
			}
		}
	})
}

func TestCSVRoundTrip(t *testing.T) {
	recs, err := csv.NewReader(bytes.NewReader(render(t, WriteCSV, fixture()))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
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
		{"file reference kept", 3, "password", "file:/etc/runner/mail.pass"},
		{"literal password left out", 2, "password", ""},
		{"ragged plan line padded", 5, "alias", ""},
		{"status after short plan line", 5, "status", "skipped"},
		{"zero id empty", 2, "new_certificate_id", ""},
		{"time in UTC", 1, "deployed_at", "2026-11-24T02:00:12Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := recs[tt.record][col(tt.column)]; got != tt.want {
				t.Errorf("%s = %q, want %q", tt.column, got, tt.want)
			}
		})
	}
	if bytes.Contains(render(t, WriteCSV, f), []byte("hunter2")) {
		t.Error("the CSV report holds a literal password")
	}
}

func TestCSVWithoutPlanColumns(t *testing.T) {
	r := &Report{Rows: []Row{{Line: 2, CertificateID: 7, StoreID: storeA, Alias: "a", Status: Failed, Stage: StagePlan}}}
	got := string(render(t, WriteCSV, r))
	want := "certificate_id,thumbprint,store_id,alias,status,stage,detail,new_certificate_id,request_id,error,renewed_at,deployed_at,verified_at\n" +
		"7,," + storeA + ",a,failed,plan,,,,,,,\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestMarkdownEscapesCells(t *testing.T) {
	md := string(render(t, WriteMarkdown, fixture()))
	want := `window expired 12s before deploy \| renewed, not deployed<br>rerun to deploy 5679`
	if !strings.Contains(md, want) {
		t.Errorf("markdown lacks escaped detail %q", want)
	}
	// Every table line must have the same number of unescaped pipes.
	var counts []int
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| Line") || strings.HasPrefix(line, "| 2 ") || strings.HasPrefix(line, "| 3 ") {
			counts = append(counts, strings.Count(line, "|")-strings.Count(line, `\|`))
		}
	}
	if len(counts) != 3 || counts[0] != counts[1] || counts[0] != counts[2] {
		t.Errorf("pipes per table line = %v, want three equal counts", counts)
	}
}

func TestSummary(t *testing.T) {
	many := &Report{}
	many.Rows = append(many.Rows, Row{Line: 500, CertificateID: 1, Status: Failed, Stage: StageRenew, Detail: "refused"})
	for i := range 60 {
		many.Rows = append(many.Rows, Row{Line: i + 2, CertificateID: 100 + i, Status: Skipped, Stage: StageCheck, Detail: "not due"})
	}
	for i := range 5 {
		many.Rows = append(many.Rows, Row{Line: 100 + i, Status: Succeeded})
	}
	tests := []struct {
		name     string
		r        *Report
		contains []string
		lacks    []string
	}{
		{
			name:     "counts line",
			r:        fixture(),
			contains: []string{"6 rows: 1 succeeded, 3 failed, 2 skipped (1m12s)\n", "LINE", "…"},
			lacks:    []string{"seen in store"},
		},
		{
			name:     "all succeeded has no table",
			r:        &Report{Rows: []Row{{Line: 2, Status: Succeeded}}},
			contains: []string{"1 row: 1 succeeded, 0 failed, 0 skipped\n"},
			lacks:    []string{"LINE"},
		},
		{
			name:     "dry run and interrupted",
			r:        &Report{Run: Run{DryRun: true, Interrupted: true, Start: time.Unix(0, 0), End: time.Unix(0, 350e6)}},
			contains: []string{"0 rows: 0 succeeded, 0 failed, 0 skipped (350ms, dry run, interrupted)\n"},
		},
		{
			name:     "failed rows shown first when capped",
			r:        many,
			contains: []string{"500   1", "… 11 more not shown (11 skipped)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(render(t, WriteSummary, tt.r))
			for _, s := range tt.contains {
				if !strings.Contains(got, s) {
					t.Errorf("summary lacks %q:\n%s", s, got)
				}
			}
			for _, s := range tt.lacks {
				if strings.Contains(got, s) {
					t.Errorf("summary has %q:\n%s", s, got)
				}
			}
			for _, line := range strings.Split(got, "\n") {
				if strings.Contains(line, " failed ") {
					continue // a failed row's detail is shown whole
				}
				if n := len([]rune(line)); n > summaryWidth {
					t.Errorf("line of %d runes > %d: %q", n, summaryWidth, line)
				}
			}
		})
	}
	t.Run("sorted by line", func(t *testing.T) {
		got := string(render(t, WriteSummary, fixture()))
		var lines []string
		for _, l := range strings.Split(got, "\n")[3:] {
			if f := strings.Fields(l); len(f) > 0 {
				lines = append(lines, f[0])
			}
		}
		if fmt.Sprint(lines) != "[3 4 5 6 9]" {
			t.Errorf("table lines = %v, want [3 4 5 6 9]", lines)
		}
	})
}

func TestFailedPlan(t *testing.T) {
	t.Run("only failed rows", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "failed.csv")
		if err := WriteFailedPlan(path, fixture()); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "failed-plan.csv.golden", got)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("mode = %v, want 0644", fi.Mode().Perm())
		}
		if bytes.Contains(got, []byte("hunter2")) {
			t.Error("the failed plan holds a literal password")
		}

		// It is a plan: the plan package reads back the same cells.
		p, err := plan.Parse(bytes.NewReader(got), "failed.csv", plan.Options{AllowPlainPasswords: true})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(p.Columns) != fmt.Sprint(columns) {
			t.Errorf("columns = %q, want %q", p.Columns, columns)
		}
		f := fixture()
		noPassword := append([]string{}, f.Rows[1].PlanValues...)
		noPassword[6] = ""
		want := [][]string{noPassword, f.Rows[2].PlanValues, f.Rows[5].PlanValues}
		if len(p.Rows) != len(want) {
			t.Fatalf("%d rows, want %d", len(p.Rows), len(want))
		}
		for i, row := range p.Rows {
			if fmt.Sprint(row.Values) != fmt.Sprint(want[i]) {
				t.Errorf("row %d = %q, want %q", i, row.Values, want[i])
			}
		}
	})
	t.Run("no failed rows still writes the header", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "failed.csv")
		r := fixture()
		r.Rows = r.Rows[:1]
		if err := WriteFailedPlan(path, r); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Join(columns, ",") + "\n"; string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
		assertOnlyFiles(t, dir, "failed.csv")
	})
}

func TestCounts(t *testing.T) {
	got := (&Report{}).Counts()
	if fmt.Sprint(got) != "map[failed:0 skipped:0 succeeded:0]" {
		t.Errorf("empty report counts = %v", got)
	}
	if got := fixture().Counts(); fmt.Sprint(got) != "map[failed:3 skipped:2 succeeded:1]" {
		t.Errorf("counts = %v", got)
	}
}
