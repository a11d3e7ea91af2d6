package plan

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// RowError is one problem in a plan, located by file, line and column.
//
// Its text is "<file>:<line>: <column>: <problem>: "<value>" (expected ...)",
// with the parts that do not apply left out, e.g.
//
//	plan.csv:17: store_id: not a GUID: "abc" (expected 8-4-4-4-12 hex digits, e.g. 3f2a8c1e-5b7d-4e7a-9c1f-2d3e4f5a6b7c)
type RowError struct {
	File string
	// Line is the 1-based physical line; 0 when the problem has no line
	// (an empty file).
	Line int
	// Column is the canonical column name, "" for problems of the whole row
	// or of the header.
	Column string
	// Problem says what is wrong, e.g. "not a GUID".
	Problem string
	// Value is the offending cell, quoted in the text; "" when the problem
	// already shows it or when it must not be shown (passwords, properties).
	Value string
	// Expected says what would have been accepted.
	Expected string
}

// Error formats the problem as described on RowError.
func (e *RowError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
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

// ErrorList is every problem found in a plan, sorted by line. A plan with any
// error is returned as an *ErrorList and no Plan.
type ErrorList []*RowError

// Error puts each problem on a line of its own.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives errors.As and errors.Is access to each RowError.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sort orders by line; the stable sort keeps column order within a row.
func (l ErrorList) sort() {
	slices.SortStableFunc(l, func(a, b *RowError) int { return cmp.Compare(a.Line, b.Line) })
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
