package report

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	storeA = "4b5e1c2a-0d3f-4c8e-9a61-2f7d3b9e0a11"
	storeB = "9f0e7d6c-5b4a-4392-8170-6e5d4c3b2a10"
	thumb  = "3A1F9C2B7D4E8F60A5B1C3D2E4F6A7B8C9D0E1F2"
)

var columns = []string{"certificate_id", "thumbprint", "store_id", "alias", "overwrite", "properties", "password"}

// Cells an attacker might put in a plan or get a server to echo: spreadsheet
// formulas (OWASP's CSV-injection list) and markup.
const (
	formulaAlias = `=HYPERLINK("http://evil.example/x","click")`
	markupDetail = `Command said: <script>alert("x")</script> & [click](http://evil.example) *now*`
)

// fixture is a report with every status, zero and non-zero times and ids,
// warnings, and cells that need escaping in every format. Its rows are not
// in line order, as a runner that records results as they come may leave
// them.
func fixture() *Report {
	start := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	// A zone other than UTC: reports must convert.
	est := time.FixedZone("EST", -5*3600)
	return &Report{
		Run: Run{
			Start:       start,
			End:         start.Add(72*time.Second + 400*time.Millisecond),
			PlanFile:    "plans/nightly.csv",
			Columns:     columns,
			Command:     "run",
			ExitCode:    1,
			Version:     "v1.4.0",
			Commit:      "3f2a9c1",
			CommandHost: "kf.example.com",
			Window:      5 * time.Minute,
		},
		Rows: []Row{
			{
				Line: 2, CertificateID: 1234, StoreID: storeA, Alias: "web",
				Status: Succeeded, Stage: StageVerify, Detail: "seen in store",
				Warnings:         []string{"certificate 1234 was also found in store " + storeB + " as old-web"},
				NewCertificateID: 5678, RequestID: 91,
				RenewedAt:  start.Add(10 * time.Second),
				DeployedAt: start.Add(10*time.Second + 31*time.Millisecond).In(est),
				VerifiedAt: start.Add(70 * time.Second),
				DueAt:      time.Date(2027, 10, 25, 2, 0, 10, 0, time.UTC),
				Expires:    time.Date(2027, 11, 24, 2, 0, 10, 0, time.UTC),
				PlanValues: []string{"1234", "", storeA, "web", "true", `{"ServerUseSsl":"true","Port":"443"}`, "env:PFX_PASS"},
			},
			{
				Line: 9, CertificateID: 2000, StoreID: storeB, Alias: "api",
				Status: Failed, Stage: StagePreflight, Detail: "store not found",
				Expires: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
				// The plan held a literal password here: the plan package
				// leaves it out of PlanValues.
				PlanValues: []string{"2000", "", storeB, "api", "", "", ""},
			},
			{
				Line: 3, CertificateID: 1235, StoreID: storeB, Alias: "mail",
				Status: Failed, Stage: StageDeploy,
				Detail:           "window expired 12s before deploy | renewed, not deployed\nrerun to deploy 5679",
				Error:            `POST /Enrollment/PFX/Deploy: HTTP 400: 0xA0110008: The format "STORE" is invalid, try again`,
				NewCertificateID: 5679, RequestID: 92,
				RenewedAt:  start.Add(11 * time.Second),
				Expires:    time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC),
				PlanValues: []string{"1235", "", storeB, "mail", "false", "", "file:secrets/mail.pass"},
			},
			{
				Line: 4, Thumbprint: thumb, StoreID: storeA,
				Status: Skipped, Stage: StageCheck, Detail: "not due until 2027-01-10",
				DueAt:      time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC),
				Expires:    time.Date(2027, 2, 9, 0, 0, 0, 0, time.UTC),
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
				DeployedAt:       start.Add(21*time.Second + 250*time.Millisecond),
				PlanValues:       []string{"4000", "", storeB, "", "", "", ""},
			},
			{
				Line: 7, CertificateID: 5000, StoreID: storeA, Alias: formulaAlias,
				Status: Failed, Stage: StageRenew, Detail: markupDetail,
				Error:      "-2+3 @SUM(A1:A9) +cmd|' /C calc'!A0",
				Warnings:   []string{"\t=1+2 <b>bold</b>"},
				PlanValues: []string{"5000", "", storeA, formulaAlias, "", "", "FILE:/etc/runner/api.pass"},
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

func summaryWith(opts SummaryOptions) func(io.Writer, *Report) error {
	return func(w io.Writer, r *Report) error { return WriteSummary(w, r, opts) }
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
		{"html", WriteHTML, "report.html.golden"},
		{"junit", WriteJUnit, "report.xml.golden"},
		{"summary", summaryWith(SummaryOptions{}), "summary.golden"},
		{"summary quiet", summaryWith(SummaryOptions{Quiet: true}), "summary-quiet.golden"},
		{"summary narrow", summaryWith(SummaryOptions{Width: 60}), "summary-narrow.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, tt.golden, render(t, tt.write, fixture()))
		})
	}
	// A dry run (`runner plan`): a block per certificate.
	t.Run("summary dry run", func(t *testing.T) {
		r := fixture()
		r.Run.DryRun = true
		golden(t, "summary-plan.golden", render(t, summaryWith(SummaryOptions{}), r))
	})
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
		{"html", "out.html", "report.html.golden"},
		{"junit", "out.xml", "report.xml.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if *update {
				t.Skip("golden files are being rewritten")
			}
			dir := t.TempDir()
			path := filepath.Join(dir, tt.file)
			if err := CheckPath(path); err != nil {
				t.Fatal(err)
			}
			if err := WriteFile(path, fixture()); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, got)
			assertMode(t, path, 0o600)
			assertOnlyFiles(t, dir, tt.file)
		})
	}
}

func TestReplacedReportIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.json")
	if err := os.WriteFile(path, []byte("earlier\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, fixture()); err != nil {
		t.Fatal(err)
	}
	assertMode(t, path, 0o600)
}

func assertMode(t testing.TB, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s: mode = %v, want %v", path, fi.Mode().Perm(), want)
	}
}

func TestUnknownExtension(t *testing.T) {
	tests := []struct {
		name string
		file string
		want string
	}{
		{"txt", "out.txt", `unknown extension ".txt"`},
		{"prom is for WriteMetrics", "out.prom", `unknown extension ".prom"`},
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
				want := "report " + path + ": " + tt.want + "; known extensions: .json, .csv, .md, .markdown, .html, .xml"
				if err.Error() != want {
					t.Errorf("error = %q, want %q", err, want)
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
	// Enough rows that the report is far bigger than the write buffer, so
	// the temporary file really receives part of it before the failure.
	// Distinct certificates with expiry dates, so the metrics file is big too.
	for i := range 2000 {
		row := big.Rows[2]
		row.CertificateID = 10000 + i
		row.Expires = row.Expires.Add(time.Duration(i) * time.Hour)
		big.Rows = append(big.Rows, row)
	}
	tests := []struct {
		name   string
		write  func(path string, r *Report) error
		file   string
		prefix string
	}{
		{"json", WriteFile, "report.json", "write report "},
		{"csv", WriteFile, "report.csv", "write report "},
		{"markdown", WriteFile, "report.md", "write report "},
		{"html", WriteFile, "report.html", "write report "},
		{"junit", WriteFile, "report.xml", "write report "},
		{"failed plan", WriteFailedPlan, "failed.csv", "write failed plan "},
		{"metrics", WriteMetrics, "runner.prom", "write metrics "},
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
			// Wrapped once, naming the file: the CLI prints it as it is.
			if msg := err.Error(); !strings.HasPrefix(msg, tt.prefix+path+": ") || strings.Count(msg, path) != 1 ||
				!strings.HasSuffix(msg, ": "+errDiskFull.Error()) {
				t.Errorf("error = %q, want %q naming the file once", err, tt.prefix+path+": "+errDiskFull.Error())
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
	if want := "write report " + path + ": file exists"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	assertOnlyFiles(t, dir, "report.json")
}

func TestMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "report.csv")
	err := WriteFile(path, fixture())
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error = %v, want one wrapping os.ErrNotExist", err)
	}
	if want := "write report " + path + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q (not naming the temporary file)", err, want)
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

func TestCounts(t *testing.T) {
	got := (&Report{}).Counts()
	if fmt.Sprint(got) != "map[failed:0 skipped:0 succeeded:0]" {
		t.Errorf("empty report counts = %v", got)
	}
	if got := fixture().Counts(); fmt.Sprint(got) != "map[failed:4 skipped:2 succeeded:1]" {
		t.Errorf("counts = %v", got)
	}
}

// TestEveryFormatEscapes renders the fixture in every format meant for a
// person or a markup reader, and finds no live markup from its rows.
func TestEveryFormatEscapes(t *testing.T) {
	tests := []struct {
		name  string
		write func(io.Writer, *Report) error
		bad   []string
	}{
		{"markdown", WriteMarkdown, []string{"<script>", "<b>", "[click](", "*now*"}},
		{"html", WriteHTML, []string{"<script>alert", "<b>bold", `href="http://evil`}},
		{"junit", WriteJUnit, []string{"<script>", "<b>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := string(render(t, tt.write, fixture()))
			for _, b := range tt.bad {
				if strings.Contains(out, b) {
					t.Errorf("output holds %q", b)
				}
			}
		})
	}
}
