package report

import (
	"fmt"
	"io"

	"runner/plan"
)

// WriteFailedPlan writes to path a plan of only the failed rows, with the
// plan's header (Run.Columns) and each row's cells as written, so that
// `runner PATH` retries exactly what failed. When no row failed it still
// writes the header, so a script can always rely on the file. The write is
// atomic like WriteFile's.
//
// Like the reports, the failed plan never holds a literal password (the plan
// package already leaves it out of PlanValues; this is checked again here):
// env: and file: references are kept, a literal cell is left empty, so
// rerunning such a row needs the password put back by hand.
func WriteFailedPlan(path string, r *Report) error {
	columns := planColumns(r)
	var rows [][]string
	for i := range r.Rows {
		row := &r.Rows[i]
		if row.Status == Failed {
			rows = append(rows, redactPasswords(columns, planCells(columns, row)))
		}
	}
	if err := writeAtomic(path, 0o644, func(w io.Writer) error { return plan.Write(w, columns, rows) }); err != nil {
		return fmt.Errorf("write failed plan %s: %w", path, err)
	}
	return nil
}
