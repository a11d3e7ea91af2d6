package report

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"testing"
	"time"
)

func TestJSONNullsAndTimes(t *testing.T) {
	var doc struct {
		Schema string
		Run    map[string]any
		Rows   []map[string]any
	}
	if err := json.Unmarshal(render(t, WriteJSON, fixture()), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Schema != "runner.report/v2" {
		t.Errorf("schema = %q", doc.Schema)
	}
	runTests := []struct {
		field string
		want  string
	}{
		{"duration_seconds", "72.4"},
		{"counts", "map[failed:4 skipped:2 succeeded:1]"},
		{"exit_code", "1"},
		{"runner", "map[commit:3f2a9c1 version:v1.4.0]"},
		{"command_host", "kf.example.com"},
		{"window_seconds", "300"},
		{"not_run", "<nil>"},
		{"shard", "<nil>"},
		{"total", "7"},
	}
	for _, tt := range runTests {
		t.Run("run "+tt.field, func(t *testing.T) {
			v, ok := doc.Run[tt.field]
			if !ok {
				t.Fatalf("run has no %s", tt.field)
			}
			if got := fmt.Sprint(v); got != tt.want {
				t.Errorf("%s = %s, want %s", tt.field, got, tt.want)
			}
		})
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
		{"time in another zone is UTC", 2, "deployed_at", "2026-11-24T02:00:10Z"},
		{"zero time is null", 9, "renewed_at", nil},
		{"zero new id is null", 9, "new_certificate_id", nil},
		{"zero request id is null", 6, "request_id", nil},
		{"zero certificate id is null", 4, "certificate_id", nil},
		{"set id is a number", 3, "new_certificate_id", 5679.0},
		{"empty string stays a string", 4, "alias", ""},
		{"empty error stays a string", 2, "error", ""},
		{"due at", 4, "due_at", "2027-01-10T00:00:00Z"},
		{"expires", 2, "expires", "2027-11-24T02:00:10Z"},
		{"unknown expiry is null", 6, "expires", nil},
		{"markup kept as text", 7, "detail", markupDetail},
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
	t.Run("warnings are always a list", func(t *testing.T) {
		if got := fmt.Sprint(byLine[2]["warnings"]); got != "[certificate 1234 was also found in store "+storeB+" as old-web]" {
			t.Errorf("warnings of line 2 = %s", got)
		}
		if got, ok := byLine[9]["warnings"].([]any); !ok || len(got) != 0 {
			t.Errorf("warnings of line 9 = %#v, want []", byLine[9]["warnings"])
		}
	})
	t.Run("unknown times of the run are null", func(t *testing.T) {
		var doc struct{ Run map[string]any }
		if err := json.Unmarshal(render(t, WriteJSON, &Report{}), &doc); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"start", "end", "duration_seconds", "window_seconds"} {
			if v, ok := doc.Run[f]; !ok || v != nil {
				t.Errorf("%s = %v (present %v), want null", f, v, ok)
			}
		}
	})
}

func TestJSONRunThatDidNotHappen(t *testing.T) {
	r := &Report{Run: Run{
		NotRun:   "another run holds the lock (pid 4242 on cron-1 since 2026-11-24T02:00:00Z)",
		ExitCode: 4,
		Shard:    &Shard{Index: 2, Count: 3, Rows: 840, PlanRows: 2500},
	}}
	var doc struct {
		Run struct {
			NotRun   *string `json:"not_run"`
			ExitCode int     `json:"exit_code"`
			Shard    *struct {
				Index, Count, Rows int
				PlanRows           int `json:"plan_rows"`
			}
		}
		Rows []any
	}
	if err := json.Unmarshal(render(t, WriteJSON, r), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Run.NotRun == nil || *doc.Run.NotRun != r.Run.NotRun {
		t.Errorf("not_run = %v", doc.Run.NotRun)
	}
	if doc.Run.ExitCode != 4 {
		t.Errorf("exit_code = %d", doc.Run.ExitCode)
	}
	if s := doc.Run.Shard; s == nil || s.Index != 2 || s.Count != 3 || s.Rows != 840 || s.PlanRows != 2500 {
		t.Errorf("shard = %+v", s)
	}
	if doc.Rows == nil || len(doc.Rows) != 0 {
		t.Errorf("rows = %#v, want []", doc.Rows)
	}
}

// writeSizes records the size of every Write it is given.
type writeSizes struct{ sizes []int }

func (w *writeSizes) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return len(p), nil
}

// TestReportsStreamRows shows that the JSON, JUnit and HTML reports, whose
// doc comments say so, are not built in one piece: they reach the writer a
// row at a time, so no write is much bigger than a row however many rows
// there are.
func TestReportsStreamRows(t *testing.T) {
	r := manyRows(5000)
	for _, tt := range []struct {
		name  string
		write func(io.Writer, *Report) error
	}{
		{"json", WriteJSON},
		{"junit", WriteJUnit},
		{"html", WriteHTML},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &writeSizes{}
			if err := tt.write(w, r); err != nil {
				t.Fatal(err)
			}
			total, biggest := 0, 0
			for _, n := range w.sizes {
				total += n
				biggest = max(biggest, n)
			}
			if len(w.sizes) < len(r.Rows) || biggest > 4<<10 {
				t.Errorf("%d bytes in %d writes, the biggest %d bytes: want about one write per row, none over 4 KiB", total, len(w.sizes), biggest)
			}
		})
	}
}

// manyRows is a report of n ordinary rows, as a big nightly run makes.
func manyRows(n int) *Report {
	start := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	r := &Report{Run: Run{Start: start, End: start.Add(time.Hour), PlanFile: "big.csv", Columns: columns, Window: 5 * time.Minute}}
	r.Rows = make([]Row, n)
	for i := range r.Rows {
		id := strconv.Itoa(100000 + i)
		r.Rows[i] = Row{
			Line: i + 2, CertificateID: 100000 + i, StoreID: storeA, Alias: "web-" + id,
			Status: Succeeded, Stage: StageDeploy, Detail: "job created",
			NewCertificateID: 500000 + i, RequestID: 900000 + i,
			RenewedAt: start.Add(time.Duration(i) * time.Millisecond), DeployedAt: start.Add(time.Duration(i)*time.Millisecond + 30*time.Millisecond),
			DueAt: start.AddDate(0, 11, 0), Expires: start.AddDate(1, 0, 0),
			PlanValues: []string{id, "", storeA, "web-" + id, "", "", "env:PFX_PASS"},
		}
	}
	return r
}

// heapProbe is a writer that discards what it is given and, every 4 MiB,
// measures the live heap above base (after a GC, so garbage does not
// count): the memory a writer holds at once.
type heapProbe struct {
	base, peak uint64
	since      int
}

func newHeapProbe() *heapProbe {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return &heapProbe{base: m.HeapAlloc}
}

func (h *heapProbe) Write(p []byte) (int, error) {
	h.since += len(p)
	if h.since >= 4<<20 {
		h.since = 0
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if m.HeapAlloc > h.base {
			h.peak = max(h.peak, m.HeapAlloc-h.base)
		}
	}
	return len(p), nil
}

// BenchmarkWriteJSON200k writes a 200,000-row JSON report: "discard" for
// the time and allocations, "heap" for the live heap it held beyond the
// report itself (peak-live-MB; its time is mostly the probe's GCs):
//
//	go test ./report/ -run '^$' -bench 200k -benchmem -benchtime 3x
func BenchmarkWriteJSON200k(b *testing.B) { benchmarkWriter(b, WriteJSON) }

// BenchmarkWriteCSV200k is the same for the CSV report, written by gocsv.
func BenchmarkWriteCSV200k(b *testing.B) { benchmarkWriter(b, WriteCSV) }

func benchmarkWriter(b *testing.B, write func(io.Writer, *Report) error) {
	r := manyRows(200_000)
	b.Run("discard", func(b *testing.B) {
		for b.Loop() {
			if err := write(io.Discard, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("heap", func(b *testing.B) {
		for b.Loop() {
			h := newHeapProbe()
			if err := write(h, r); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(h.peak)/(1<<20), "peak-live-MB")
		}
	})
}
