package plan

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
)

// Write writes a plan, a header of columns and then rows, in a form that
// Parse reads back cell for cell. The report package uses it for
// --failed-plan. Every row must have one cell per column.
func Write(w io.Writer, columns []string, rows [][]string) error {
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	if err := cw.Write(columns); err != nil {
		return fmt.Errorf("write plan header: %w", err)
	}
	for i, row := range rows {
		if len(row) != len(columns) {
			return fmt.Errorf("write plan row %d: %d cells for %d columns", i+1, len(row), len(columns))
		}
		if len(row) > 0 && strings.HasPrefix(row[0], "#") {
			// encoding/csv would write this bare, and the reader would
			// then skip the line as a comment: quote it by hand.
			cw.Flush()
			rest := append([]string{""}, row[1:]...)
			buf.WriteString(`"` + strings.ReplaceAll(row[0], `"`, `""`) + `"`)
			if len(rest) == 1 {
				buf.WriteString("\n")
				continue
			}
			if err := cw.Write(rest); err != nil {
				return fmt.Errorf("write plan row %d: %w", i+1, err)
			}
			continue
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write plan row %d: %w", i+1, err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	return nil
}
