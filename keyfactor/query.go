package keyfactor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Command's query language (pq.queryString and friends) is, in Keyfactor's
// words, "largely consistent with PowerShell comparison notation", and
// Keyfactor "does not publish a complete specification" of it (v10.3
// Classic API, Certificates Search and Count). What its documentation does
// show: clauses are `Field -op value` joined with AND / OR, string values
// in double quotes (`CN -notcontains "keyother"`), a backslash inside
// quotes taken as it is (`Requester -eq "KEYEXAMPLE\key_service"`), and
// dates as quoted ISO 8601 UTC (`SubmissionDate -ge "2022-09-01T00:00:00Z"`,
// GET /Workflow/Certificates/Pending, v10.4). No documented way writes a
// double quote inside a value, so Quote refuses such a value rather than
// guess an escape.

// ErrUnquotable is wrapped by Quote's error for a value the query language
// cannot carry.
var ErrUnquotable = errors.New("value cannot be written in a Command query")

// Quote returns s as a query string literal: in double quotes, as is. A
// value that a parser escaping with backslashes and one taking them as
// they are would read differently, or that no documented form can carry,
// is refused with an error wrapping ErrUnquotable: a double quote, a
// control character (a line break ends a query), two backslashes in a row,
// or a trailing backslash (read as an escaped closing quote by the first
// kind of parser). Such a query would be malformed or would match
// something else; callers search more broadly then and filter the answer
// themselves.
func Quote(s string) (string, error) {
	switch i := strings.IndexFunc(s, func(r rune) bool { return r == '"' || unicode.IsControl(r) }); {
	case i >= 0:
		what := "a double quote"
		if s[i] != '"' {
			what = "a control character"
		}
		return "", fmt.Errorf("%w: %q holds %s", ErrUnquotable, oneLine(s, 80), what)
	case strings.Contains(s, `\\`):
		return "", fmt.Errorf("%w: %q holds two backslashes in a row", ErrUnquotable, oneLine(s, 80))
	case strings.HasSuffix(s, `\`):
		return "", fmt.Errorf("%w: %q ends in a backslash", ErrUnquotable, oneLine(s, 80))
	}
	return `"` + s + `"`, nil
}

// QueryTime returns the literal for t in a date comparison: quoted ISO
// 8601 UTC to the second, as the docs' examples write it
// ("2022-09-01T00:00:00Z"). The fraction is cut, so `-ge QueryTime(t)`
// also matches records from t's own second.
func QueryTime(t time.Time) string {
	return `"` + t.UTC().Format("2006-01-02T15:04:05Z") + `"`
}

// Clause builds `field op value` from a value already quoted (Quote,
// QueryTime) or a number (strconv.Itoa); op is e.g. "-eq", "-ge",
// "-contains".
func Clause(field, op, value string) string { return field + " " + op + " " + value }

// And joins clauses with AND, each in parentheses when it holds an OR, so
// that the result means what it says whatever the operator precedence.
func And(clauses ...string) string { return join(" AND ", clauses) }

// Or joins clauses with OR.
func Or(clauses ...string) string { return join(" OR ", clauses) }

func join(sep string, clauses []string) string {
	parts := make([]string, 0, len(clauses))
	for _, c := range clauses {
		if c == "" {
			continue
		}
		// The query language takes OR in any case (an operator's --query
		// may say "or").
		if sep == " AND " && strings.Contains(strings.ToUpper(c), " OR ") && !oneGroup(c) {
			c = "(" + c + ")"
		}
		parts = append(parts, c)
	}
	return strings.Join(parts, sep)
}

// oneGroup reports whether c is a single parenthesised group: it opens
// with "(" whose matching ")" is its last character (quoted text skipped).
func oneGroup(c string) bool {
	if !strings.HasPrefix(c, "(") {
		return false
	}
	depth, quoted := 0, false
	for i, r := range c {
		switch {
		case r == '"':
			quoted = !quoted
		case quoted:
		case r == '(':
			depth++
		case r == ')':
			depth--
			if depth == 0 {
				return i == len(c)-1
			}
		}
	}
	return false
}

// idQuery is `Id -eq a OR Id -eq b …`.
func idQuery(ids []int) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("Id -eq ")
		b.WriteString(strconv.Itoa(id))
	}
	return b.String()
}
