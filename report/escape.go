package report

// Spreadsheets run a cell that starts with = + - @ (or a tab or CR before
// one) as a formula; OWASP's advice for CSV injection is to put a ' in front.
// The plan package owns the convention, because its reader takes the quote
// off again when a failed plan or a filtered CSV report is run:
//
//   - the writer puts a ' before a cell that starts with = + - @ TAB CR, and
//     before a cell that starts with a ' the reader would take off;
//   - the reader takes off a leading ' followed by one of = + - @ TAB CR '.
//
// TODO(lead): use the plan package's escape once it is exported (it is
// plan.escapeCell on the plan branch, the same rule).
func spreadsheetEscape(cell string) string {
	if cell != "" && formulaStart(cell[0]) || spreadsheetEscaped(cell) {
		return "'" + cell
	}
	return cell
}

func formulaStart(b byte) bool {
	switch b {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// spreadsheetEscaped reports whether a cell starts with the ' the reader
// takes off.
func spreadsheetEscaped(s string) bool {
	return len(s) >= 2 && s[0] == '\'' && (formulaStart(s[1]) || s[1] == '\'')
}
