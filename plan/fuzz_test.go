package plan

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzParse feeds any bytes to Parse. It must never panic, a plan error
// must be well formed, Validate must find exactly the same problems, and a
// plan that parses must re-write (Write) and re-parse to the same rows and
// jobs. Seeds are in testdata/fuzz/FuzzParse; run it with
//
//	go test -run XXX -fuzz FuzzParse -fuzztime 30s ./plan/
func FuzzParse(f *testing.F) {
	lim := limits{rows: 1000, planBytes: 1 << 20, record: 64 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := fixedClock(Options{})
		p, err := parse(bytes.NewReader(data), "fuzz.csv", opts, lim, 0)
		counts, verr := validate(bytes.NewReader(data), "fuzz.csv", opts, lim, 0)
		var list, vlist *ErrorList
		if err != nil {
			if !errors.As(err, &list) {
				t.Fatalf("reading bytes failed with %v, not a plan error", err)
			}
			if p == nil || p.Jobs != nil {
				t.Fatalf("a plan error came with plan %+v, want one with rows and no jobs", p)
			}
			for _, e := range *list {
				if e.File != "fuzz.csv" || e.Line < 0 || e.Col < 0 || e.Problem == "" || len(e.Value) > maxShownValue+len("…") {
					t.Fatalf("malformed error %#v", *e)
				}
			}
			_ = list.Summary(3)
			if !errors.As(verr, &vlist) || !reflect.DeepEqual(*list, *vlist) {
				t.Fatalf("Parse:\n%v\nValidate:\n%v", err, verr)
			}
			return
		}
		if verr != nil || counts.Rows != len(p.Rows) || counts.Certificates != len(p.Jobs) {
			t.Fatalf("Parse read %d rows, %d jobs; Validate %+v, %v", len(p.Rows), len(p.Jobs), counts, verr)
		}

		rows := make([][]string, len(p.Rows))
		for i, r := range p.Rows {
			rows[i] = r.Values
		}
		var buf bytes.Buffer
		if err := Write(&buf, p.Columns, rows); err != nil {
			t.Fatalf("Write of a parsed plan: %v", err)
		}
		q, err := parse(bytes.NewReader(buf.Bytes()), "rewritten.csv", opts, lim, 0)
		if err != nil {
			t.Fatalf("re-parse:\n%s\n%v", buf.Bytes(), err)
		}
		if !reflect.DeepEqual(q.Columns, p.Columns) || len(q.Rows) != len(p.Rows) || len(q.Jobs) != len(p.Jobs) {
			t.Fatalf("re-parse gave columns %q, %d rows, %d jobs; want %q, %d, %d", q.Columns, len(q.Rows), len(q.Jobs), p.Columns, len(p.Rows), len(p.Jobs))
		}
		index := map[*Row]int{}
		for i, r := range p.Rows {
			a, b := *r, *q.Rows[i]
			a.Line, b.Line = 0, 0
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("row %d:\n got %#v\nwant %#v", i, b, a)
			}
			index[r] = i
		}
		for i, j := range p.Jobs {
			k := q.Jobs[i]
			if j.Key != k.Key || j.CertificateID != k.CertificateID || j.Thumbprint != k.Thumbprint || j.Password != k.Password ||
				!j.JobTime.Equal(k.JobTime) || j.Template != k.Template || j.CertificateAuthority != k.CertificateAuthority ||
				j.RenewBefore != k.RenewBefore || len(j.Rows) != len(k.Rows) {
				t.Fatalf("job %d:\n got %+v\nwant %+v", i, k, j)
			}
			for n, r := range j.Rows {
				if q.Rows[index[r]] != k.Rows[n] {
					t.Fatalf("job %s row %d is another row after re-parsing", j.Key, n)
				}
			}
		}
	})
}
