package report

import "testing"

// spreadsheetUnescape is the reader's half of spreadsheetEscape (the plan
// package's reader does the same); the tests use it to show that what the
// CSV report writes reads back to the same values.
func spreadsheetUnescape(cell string) string {
	if spreadsheetEscaped(cell) {
		return cell[1:]
	}
	return cell
}

func TestSpreadsheetEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"=SUM(A1)", "'=SUM(A1)"},
		{"+1", "'+1"},
		{"-5", "'-5"},
		{"@x", "'@x"},
		{"\t=1", "'\t=1"},
		{"\r=1", "'\r=1"},
		{"'=x", "''=x"},
		{"''", "'''"},
		{"'quoted'", "'quoted'"},
		{"'", "'"},
		{"a=b", "a=b"},
		{"", ""},
	}
	for _, tt := range tests {
		got := spreadsheetEscape(tt.in)
		if got != tt.want {
			t.Errorf("spreadsheetEscape(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if back := spreadsheetUnescape(got); back != tt.in {
			t.Errorf("%q reads back as %q", got, back)
		}
	}
}
