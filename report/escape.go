package report

import "strings"

// Spreadsheets run a cell that starts with = + - @ (or a tab or CR before
// one) as a formula; OWASP's advice for CSV injection is to put a ' in front.
// The plan package owns the convention, because its reader has to strip the
// quote again when a failed plan or a filtered CSV report is run:
//
//   - the writer puts a ' before a cell that starts with = + - @ TAB CR or ';
//   - the reader drops a leading ' that is followed by one of those.
//
// Escaping the ' itself makes the rule reversible for every cell.
//
// TODO(lead): replace with the plan package's escape function once it lands.
func spreadsheetEscape(cell string) string {
	if cell != "" && strings.IndexByte(spreadsheetTriggers, cell[0]) >= 0 {
		return "'" + cell
	}
	return cell
}

const spreadsheetTriggers = "=+-@\t\r'"
