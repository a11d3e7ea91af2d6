package plan

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// RowError is one problem in a plan, located by file, line and column.
//
// Its text is "<file>:<line>:<col>: <column>: <problem>: "<value>" (expected ...)",
// with the parts that do not apply left out, e.g.
//
//	plan.csv:17:6: store_id: not a GUID: "abc" (expected 8-4-4-4-12 hex digits, e.g. 3f2a8c1e-5b7d-4e7a-9c1f-2d3e4f5a6b7c)
type RowError struct {
	File string
	// Line is the 1-based physical line; 0 when the problem has no line
	// (an empty file, a file over MaxPlanBytes).
	Line int
	// Col is the 1-based byte position on Line where the offending cell
	// starts (its opening quote, if quoted); 0 when the problem is the
	// whole row or line (for malformed CSV, Problem names the line and
	// column where the reader stopped).
	Col int
	// Column is the canonical column name, "" for problems of the whole row
	// or of the header.
	Column string
	// Problem says what is wrong, e.g. "not a GUID".
	Problem string
	// Value is the offending cell, quoted in the text and cut to 80 bytes
	// (maxShownValue); "" when the problem already shows it or when it
	// must not be shown (passwords, properties).
	Value string
	// Expected says what would have been accepted.
	Expected string
}

// maxShownValue bounds RowError.Value, so that a 4 KiB cell does not make a
// 4 KiB error line.
const maxShownValue = 80

// Error formats the problem as described on RowError.
func (e *RowError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
		if e.Col > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Col))
		}
	}
	if e.Column != "" {
		b.WriteString(": ")
		b.WriteString(e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Problem)
	if e.Value != "" {
		b.WriteString(": ")
		b.WriteString(strconv.Quote(e.Value))
	}
	if e.Expected != "" {
		b.WriteString(" (expected ")
		b.WriteString(e.Expected)
		b.WriteString(")")
	}
	return b.String()
}

// shortValue cuts s to maxShownValue bytes on a rune boundary, marking the
// cut with "…".
func shortValue(s string) string {
	if len(s) <= maxShownValue {
		return s
	}
	cut := maxShownValue
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ErrorList is every problem found in a plan, sorted by line (and by column
// within a line). It keeps all of them; Error and Summary decide how many
// are shown.
type ErrorList []*RowError

// SummaryLimit is how many problems Error shows before it counts the rest.
const SummaryLimit = 50

// Error is Summary(SummaryLimit): one problem per line, at most
// SummaryLimit of them, so that a plan with 300,000 bad rows does not print
// 300,000 lines. Range over the list to see every one.
func (l ErrorList) Error() string { return l.Summary(SummaryLimit) }

// Summary puts the first max problems on a line each, followed by a line
// "… and N more errors (runner validate --all lists every one)" when there
// are more. max <= 0 shows every problem.
func (l ErrorList) Summary(max int) string {
	shown := l
	if max > 0 && len(l) > max {
		shown = l[:max]
	}
	var b strings.Builder
	for i, e := range shown {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	if more := len(l) - len(shown); more > 0 {
		noun := "errors"
		if more == 1 {
			noun = "error"
		}
		b.WriteString("\n… and " + strconv.Itoa(more) + " more " + noun + " (runner validate --all lists every one)")
	}
	return b.String()
}

// Unwrap gives errors.As and errors.Is access to each RowError.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sort orders by line, then by position on the line; the stable sort keeps
// the order of checks within one cell.
func (l ErrorList) sort() {
	slices.SortStableFunc(l, func(a, b *RowError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
}

// valueError is what the cell parsers return: the problem and what was
// expected, without file, line or column, which the caller knows.
type valueError struct {
	problem  string
	value    string // "" when it must not be shown
	expected string
}

func (e *valueError) Error() string {
	s := e.problem
	if e.value != "" {
		s += ": " + strconv.Quote(e.value)
	}
	if e.expected != "" {
		s += " (expected " + e.expected + ")"
	}
	return s
}
