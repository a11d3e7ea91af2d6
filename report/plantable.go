package report

import (
	"fmt"
	"strings"
	"time"
)

// writePlanTable is the body of a dry run's summary (`runner plan`): one
// block per certificate, in plan order, saying whether it is due (with its
// dates), what a run would do, and each of its stores with any problem
// preflight or the due check found.
//
//	certificate 4101: would renew certificate 4101 and deploy it to 2 store(s) (due since 2026-11-11); expires 2026-12-21
//	  line 2: store 6513270e-269e-4d37-b2a7-4de452e6b438  alias www.example.com
//	  line 3: store 9f0e7d6c-…  failed at preflight: store not found: …
func writePlanTable(ew *errWriter, r *Report, width int) {
	type block struct {
		name string
		rows []*Row
	}
	var blocks []*block
	byName := map[string]*block{}
	for i := range r.Rows {
		row := &r.Rows[i]
		name := certificateName(row)
		b := byName[name]
		if b == nil {
			b = &block{name: name}
			byName[name] = b
			blocks = append(blocks, b)
		}
		b.rows = append(b.rows, row)
	}
	for _, b := range blocks {
		ew.printf("\n%s\n", strings.Join(wrap("certificate "+oneLine(b.name)+": "+planVerdict(b.rows), width), "\n    "))
		for _, row := range b.rows {
			head := fmt.Sprintf("line %d: store %s", row.Line, oneLine(row.StoreID))
			if row.Alias != "" {
				head += "  alias " + oneLine(row.Alias)
			}
			if row.Status == Failed {
				head += fmt.Sprintf("  %s at %s: %s", row.Status, row.Stage, oneLine(rowDetail(row)))
			}
			ew.printf("  %s\n", strings.Join(wrap(head, width-2), "\n      "))
			for _, w := range row.Warnings {
				ew.printf("    %s\n", strings.Join(wrap("warning: "+oneLine(w), width-4), "\n      "))
			}
		}
	}
}

// planVerdict says in one line what a run would do with a certificate: the
// decision of its rows that are not failed (they share it), and when the
// certificate expires (the decision itself says when it is due).
func planVerdict(rows []*Row) string {
	verdict, failed := "", 0
	var expires time.Time
	for _, row := range rows {
		if row.Status == Failed {
			failed++
			continue
		}
		if verdict == "" {
			verdict = oneLine(row.Detail)
		}
		if !row.Expires.IsZero() {
			expires = row.Expires
		}
	}
	if verdict == "" {
		verdict = fmt.Sprintf("nothing would be done: all %d of its row(s) failed", failed)
	} else if failed > 0 {
		verdict += fmt.Sprintf("; %d of its %d store(s) cannot be deployed", failed, len(rows))
	}
	if !expires.IsZero() {
		verdict += "; expires " + expires.UTC().Format("2006-01-02")
	}
	return verdict
}
