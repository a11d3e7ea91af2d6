package plan

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Benchmarks of reading large plans. peak-RSS-MB is the process's
// high-water mark (VmHWM, the test binary included), so each benchmark runs
// in a process of its own, for one iteration, as `runner validate` would:
//
//	go test -c -o /tmp/plan.test ./plan/
//	for b in Validate200kDiscover Load200kDiscover; do
//		/tmp/plan.test -test.run XXX -test.bench "^Benchmark$b\$" -test.benchtime 1x
//	done
//
// cpu-ms/op (user and system time, the garbage collector's included) is
// steadier than ns/op on a shared machine. The plan file is written before
// the timer starts and read from the page cache.

// planShape is a kind of generated plan.
type planShape struct {
	name    string
	columns []string
	row     func(i int) []string // cells of row i
}

var (
	// discoverShape is what `runner discover` writes: one row per
	// certificate location, two stores per certificate, a password
	// reference for one certificate in ten.
	discoverShape = planShape{
		name:    "discover",
		columns: []string{"certificate_id", "thumbprint", "store_id", "alias", "overwrite", "password"},
		row: func(i int) []string {
			cert := i / 2
			pw := ""
			if cert%10 == 0 {
				pw = "env:PEM_STORE_PASSWORD"
			}
			return []string{strconv.Itoa(100000 + cert), benchThumb(cert), benchStore(i % 5000), "host-" + strconv.Itoa(cert) + ".example.com", "true", pw}
		},
	}
	// fullShape uses every column, as examples/plan.csv does.
	fullShape = planShape{
		name:    "all-columns",
		columns: Columns,
		row: func(i int) []string {
			cert := i / 2
			props, rb := "", ""
			if cert%4 == 0 {
				props = `{"ServerUseSni":"true"}`
			}
			if cert%3 == 0 {
				rb = "45d"
			}
			return []string{strconv.Itoa(100000 + cert), "", benchStore(i % 5000), "host-" + strconv.Itoa(cert), "true", props, "", "", "", "", rb}
		},
	}
	// badShape has a bad store_id in every row.
	badShape = planShape{
		name:    "bad-rows",
		columns: []string{"certificate_id", "store_id", "alias"},
		row: func(i int) []string {
			return []string{strconv.Itoa(100000 + i), "store-" + strconv.Itoa(i), "host-" + strconv.Itoa(i)}
		},
	}
)

func benchThumb(n int) string { return fmt.Sprintf("%040X", uint64(n)*0x9E3779B97F4A7C15) }

func benchStore(n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n*7919) }

// writePlanFile writes a plan of rows rows to a file, streaming, so that
// the benchmark's process holds no copy of it.
func writePlanFile(tb testing.TB, shape planShape, rows int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), shape.name+".csv")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := NewWriter(f, shape.columns) // buffered: Close flushes it
	if err != nil {
		tb.Fatal(err)
	}
	for i := range rows {
		if err := w.WriteRow(shape.row(i)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// peakRSS returns the process's peak resident set size in MB (VmHWM), or
// -1 where /proc does not say.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err == nil {
				return float64(kb) / 1024
			}
		}
	}
	return -1
}

// benchmarkRead reads a plan of rows rows of the shape with read (Load or
// Validate), which returns the rows it counted; with wantErrors every row
// is bad and the errors are summarised as `runner validate` prints them.
func benchmarkRead(b *testing.B, shape planShape, rows int, wantErrors bool, read func(string) (int, error)) {
	path := writePlanFile(b, shape, rows)
	info, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(info.Size())
	b.ReportAllocs()
	cpu := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		n, err := read(path)
		if wantErrors {
			list := errorList(b, err)
			if len(list) != rows {
				b.Fatalf("%d errors, want %d", len(list), rows)
			}
			io.WriteString(io.Discard, list.Summary(SummaryLimit))
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		if n != rows {
			b.Fatalf("%d rows, want %d", n, rows)
		}
	}
	b.ReportMetric(float64(rows), "rows")
	b.ReportMetric(peakRSS(), "peak-RSS-MB")
	// CPU time is steadier than wall time on a shared machine; it includes
	// the garbage collector's work on the other core.
	b.ReportMetric(float64((cpuTime()-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
}

func benchmarkLoad(b *testing.B, shape planShape, rows int, wantErrors bool) {
	benchmarkRead(b, shape, rows, wantErrors, func(path string) (int, error) {
		p, err := Load(path, Options{})
		if err != nil {
			return 0, err
		}
		return len(p.Rows), nil
	})
}

func benchmarkValidate(b *testing.B, shape planShape, rows int, wantErrors bool) {
	benchmarkRead(b, shape, rows, wantErrors, func(path string) (int, error) {
		counts, err := Validate(path, Options{})
		return counts.Rows, err
	})
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkValidate200kDiscover(b *testing.B)   { benchmarkValidate(b, discoverShape, 200_000, false) }
func BenchmarkValidate200kAllColumns(b *testing.B) { benchmarkValidate(b, fullShape, 200_000, false) }
func BenchmarkValidate20kDiscover(b *testing.B)    { benchmarkValidate(b, discoverShape, 20_000, false) }
func BenchmarkValidate300kBadRows(b *testing.B)    { benchmarkValidate(b, badShape, 300_000, true) }

func BenchmarkLoad200kDiscover(b *testing.B)   { benchmarkLoad(b, discoverShape, 200_000, false) }
func BenchmarkLoad200kAllColumns(b *testing.B) { benchmarkLoad(b, fullShape, 200_000, false) }
func BenchmarkLoad20kDiscover(b *testing.B)    { benchmarkLoad(b, discoverShape, 20_000, false) }
func BenchmarkLoad300kBadRows(b *testing.B)    { benchmarkLoad(b, badShape, 300_000, true) }

// BenchmarkWrite200kDiscover is `runner discover`'s writing side.
func BenchmarkWrite200kDiscover(b *testing.B) {
	b.ReportAllocs()
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		w, err := NewWriter(&buf, discoverShape.columns)
		if err != nil {
			b.Fatal(err)
		}
		for i := range 200_000 {
			if err := w.WriteRow(discoverShape.row(i)); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}
