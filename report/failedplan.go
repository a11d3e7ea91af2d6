package report

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"runner/plan"
)

// WriteFailedPlan writes to path a plan of only the failed rows, with the
// plan's header (Run.Columns) and each row's cells as written, so that
// `runner PATH` retries exactly what failed. When no row failed it still
// writes the header, so a script can always rely on the file. The write is
// atomic like WriteFile's, and the file is created 0600.
//
// Two cells change on the way: a relative file: password path is rewritten
// to resolve from path's directory to the same file it named in the plan
// (Run.PlanDir), and every cell is escaped for spreadsheets the way the plan
// package reads it back. Its error names path and is meant to be printed as
// it is.
func WriteFailedPlan(path string, r *Report) error {
	columns := planColumns(r)
	rebase := fileRebaser(r, path)
	var rows [][]string
	for i := range r.Rows {
		row := &r.Rows[i]
		if row.Status != Failed {
			continue
		}
		cells := planCells(columns, row)
		for j, c := range columns {
			if c == "password" {
				cells[j] = rebase(cells[j])
			}
		}
		for j := range cells {
			cells[j] = spreadsheetEscape(cells[j])
		}
		rows = append(rows, cells)
	}
	if err := writeAtomic(path, privateMode, func(w io.Writer) error { return plan.Write(w, columns, rows) }); err != nil {
		return fmt.Errorf("write failed plan %s: %w", path, err)
	}
	return nil
}

// fileRebaser returns the function that rewrites a password cell for a plan
// written to failedPath: "file:REL", read by the plan package relative to the
// plan's directory, becomes the path of the same file relative to
// failedPath's directory (absolute when no relative path exists). Other
// cells are returned as they are.
//
// TODO(lead): replace with the plan package's function for re-basing a
// row's cells once it lands.
func fileRebaser(r *Report, failedPath string) func(string) string {
	planDir := r.Run.PlanDir
	if planDir == "" && r.Run.PlanFile != "" {
		planDir = filepath.Dir(r.Run.PlanFile)
	}
	return func(cell string) string {
		trimmed := strings.TrimSpace(cell)
		kind, ref, ok := strings.Cut(trimmed, ":")
		if !ok || !strings.EqualFold(kind, "file") || ref == "" || filepath.IsAbs(ref) || planDir == "" {
			return cell
		}
		target, err := filepath.Abs(filepath.Join(planDir, ref))
		if err != nil {
			return cell
		}
		outDir, err := filepath.Abs(filepath.Dir(failedPath))
		if err != nil {
			return "file:" + target
		}
		if rel, err := filepath.Rel(outDir, target); err == nil {
			return "file:" + rel
		}
		return "file:" + target
	}
}
