package plan

// The spreadsheet text escape. A spreadsheet opening a CSV file runs a cell
// that starts with =, +, - or @ as a formula (and a tab or carriage return
// first hides such a cell's start), so a plan written by runner (a failed
// plan, a discovered plan) would run `=HYPERLINK(…)` from a store alias.
// Following OWASP's CSV injection rule, the writer puts a ' before such a
// cell, which spreadsheets show as text, and the reader takes it off again,
// so the written plan both opens safely and reads back to the same values:
//
//	cell value   written as
//	=SUM(A1)     '=SUM(A1)
//	-5           '-5
//	'=x          ''=x      (a ' that would be taken off is itself escaped)
//	'quoted'     'quoted'  (unchanged: no formula character follows the ')
//
// The reader takes off one ' that is followed by =, +, -, @, a tab, a
// carriage return or another '; it does so in every cell but the header, in
// plans written by hand too.

// formulaStart reports whether a cell starting with b is run as a formula
// (OWASP: = + - @ tab carriage-return).
func formulaStart(b byte) bool {
	switch b {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// escaped reports whether s, as read, starts with the escape the reader
// takes off.
func escaped(s string) bool {
	return len(s) >= 2 && s[0] == '\'' && (formulaStart(s[1]) || s[1] == '\'')
}

// EscapeCell returns s as the plan writer writes it: with a leading ' when
// a spreadsheet would run it as a formula, or when the reader would take a
// ' off it. The CSV report uses it too, so its rows can be rerun as a plan.
func EscapeCell(s string) string {
	if s != "" && formulaStart(s[0]) || escaped(s) {
		return "'" + s
	}
	return s
}

// UnescapeCell returns the value of a cell as read: EscapeCell's ' taken
// off. A program reading runner's CSV report back uses it.
func UnescapeCell(s string) string {
	if escaped(s) {
		return s[1:]
	}
	return s
}
