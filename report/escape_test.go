package report

import "strings"

// spreadsheetUnescape is the reader's half of spreadsheetEscape; the tests
// use it to show that the CSV report reads back to the same values.
func spreadsheetUnescape(cell string) string {
	if len(cell) >= 2 && cell[0] == '\'' && strings.IndexByte(spreadsheetTriggers, cell[1]) >= 0 {
		return cell[1:]
	}
	return cell
}
