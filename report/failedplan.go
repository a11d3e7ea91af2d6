package report

import (
	"fmt"
	"io"
	"path/filepath"

	"runner/plan"
)

// WriteFailedPlan writes to path a plan of only the failed rows, with the
// plan's header (Run.Columns) and each row's cells as written, so that
// `runner PATH` retries exactly what failed. When no row failed it still
// writes the header, so a script can always rely on the file. The write is
// atomic like WriteFile's, and the file is created 0600.
//
// The plan package owns both changes a cell may need on the way: a relative
// file: password path, which plan.Load resolves from the directory of
// Run.PlanFile, is re-based to resolve from path's directory to the same
// file, and plan.Write escapes cells for spreadsheets the way the plan
// package reads them back. Its error names path and is meant to be printed
// as it is.
func WriteFailedPlan(path string, r *Report) error {
	columns := planColumns(r)
	fromDir := filepath.Dir(r.Run.PlanFile)
	var rows [][]string
	for i := range r.Rows {
		row := &r.Rows[i]
		if row.Status != Failed {
			continue
		}
		cells, err := plan.RebaseCells(columns, planCells(columns, row), fromDir, filepath.Dir(path))
		if err != nil {
			return fmt.Errorf("write failed plan %s: line %d: %w", path, row.Line, err)
		}
		rows = append(rows, cells)
	}
	if err := writeAtomic(path, privateMode, func(w io.Writer) error { return plan.Write(w, columns, rows) }); err != nil {
		return fmt.Errorf("write failed plan %s: %w", path, err)
	}
	return nil
}
