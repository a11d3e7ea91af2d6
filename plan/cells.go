package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The parsers below take a trimmed, non-empty cell and return a *valueError
// saying what is wrong and what was expected.

const exampleGUID = "3f2a8c1e-5b7d-4e7a-9c1f-2d3e4f5a6b7c"

func parseCertificateID(s string) (int, error) {
	const expected = "a positive whole number, the Command certificate id, e.g. 1234"
	n := 0
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			return 0, &valueError{problem: "not a positive integer", value: s, expected: expected}
		}
		// Command ids are 32-bit.
		if n = n*10 + int(d); n > math.MaxInt32 {
			return 0, &valueError{problem: "too large for a certificate id", value: s, expected: "at most 2147483647"}
		}
	}
	if n == 0 {
		return 0, &valueError{problem: "not a positive integer", value: s, expected: expected}
	}
	return n, nil
}

func parseThumbprint(s string) (string, error) {
	const expected = "40 hex digits (a SHA-1 thumbprint); ':', ' ' and '-' separators are allowed"
	// The common spelling, 40 upper-case hex digits, is returned as it is.
	canonical := len(s) == 40
	for i := 0; canonical && i < len(s); i++ {
		canonical = s[i] >= '0' && s[i] <= '9' || s[i] >= 'A' && s[i] <= 'F'
	}
	if canonical {
		return s, nil
	}
	t := strings.Map(func(r rune) rune {
		if r == ':' || r == ' ' || r == '-' {
			return -1
		}
		return r
	}, s)
	for _, r := range t {
		if r >= 0x80 || hexValue[r] < 0 {
			return "", &valueError{problem: fmt.Sprintf("not a thumbprint (%q is not a hex digit)", r), value: s, expected: expected}
		}
	}
	if len(t) != 40 {
		return "", &valueError{problem: fmt.Sprintf("not a thumbprint (%d hex digits)", len(t)), value: s, expected: expected}
	}
	return strings.ToUpper(t), nil
}

// parseGUID returns the GUID lower case without braces, and its 16 bytes.
func parseGUID(s string) (string, [16]byte, error) {
	var b [16]byte
	g := s
	if strings.HasPrefix(g, "{") && strings.HasSuffix(g, "}") {
		g = g[1 : len(g)-1]
	}
	ok, upper := len(g) == 36, false
	for i, n := 0, 0; ok && i < len(g); i += 2 {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			ok = g[i] == '-'
			i--
			continue
		}
		hi, lo := hexValue[g[i]], hexValue[g[i+1]]
		ok = hi >= 0 && lo >= 0
		upper = upper || g[i] < 'a' && g[i] > '9' || g[i+1] < 'a' && g[i+1] > '9'
		b[n] = byte(hi)<<4 | byte(lo)
		n++
	}
	if !ok {
		return "", [16]byte{}, &valueError{problem: "not a GUID", value: s, expected: "8-4-4-4-12 hex digits, e.g. " + exampleGUID}
	}
	if upper {
		g = strings.ToLower(g)
	}
	return g, b, nil
}

// hexValue is the value of each hex digit, -1 for any other byte.
var hexValue = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = int8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = int8(c - 'a' + 10)
		t[c-'a'+'A'] = int8(c - 'a' + 10)
	}
	return t
}()

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "yes", "1":
		return true, nil
	case "false", "no", "0":
		return false, nil
	}
	return false, &valueError{problem: "not true or false", value: s, expected: "true or false (yes/no and 1/0 also work)"}
}

// parseProperties never shows the cell: entry parameters can hold secrets.
func parseProperties(s string) (map[string]any, error) {
	const expected = `a JSON object, e.g. {"ProviderName":"Microsoft Strong Cryptographic Provider"}`
	dec := json.NewDecoder(strings.NewReader(s))
	// Keep numbers exactly as written, they are sent back to Command.
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &valueError{problem: "not valid JSON: " + jsonProblem(err), expected: expected}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &valueError{problem: "not valid JSON: more data after the object", expected: expected}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &valueError{problem: "not a JSON object but " + jsonKind(v), expected: expected}
	}
	return m, nil
}

// isJSONObject reports whether s is one JSON object and nothing else, as
// parseProperties would accept it.
func isJSONObject(s string) bool {
	return s[0] == '{' && json.Valid([]byte(s))
}

// jsonProblem describes a decoding error without quoting the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("%s at byte %d", syn.Error(), syn.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	default:
		return "malformed"
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func parseJobTime(s string) (time.Time, error) {
	const expected = "an ISO 8601 UTC time with Z or an offset, e.g. 2026-11-24T02:00:00Z"
	// RFC 3339 allows lower-case t and z; Go's parser does not.
	u := strings.ToUpper(s)
	t, err := time.Parse(time.RFC3339Nano, u)
	if err == nil {
		return t.UTC(), nil
	}
	if _, err := time.Parse("2006-01-02T15:04:05.999999999", u); err == nil {
		return time.Time{}, &valueError{problem: "no time zone", value: s, expected: "Z or an offset such as +02:00 at the end, e.g. 2026-11-24T02:00:00Z"}
	}
	return time.Time{}, &valueError{problem: "not an ISO 8601 time", value: s, expected: expected}
}

// checkText enforces what every cell must be, whatever its column: at most
// limit bytes, UTF-8, and free of control characters (C0, DEL and C1), so
// that a cp1252 export, a NUL or a stray escape sequence is refused here
// instead of being deployed into a store. Spaces, tabs and line feeds
// around the cell are allowed (they are trimmed); inJSON allows tabs and
// line feeds anywhere, as a formatted JSON object has them between its
// tokens (JSON itself refuses them inside strings). A carriage return is
// refused anywhere, even around the cell: encoding/csv folds each line's
// CRLF into LF, so a CR left in a cell would not survive a rewrite. show
// says whether the cell may be quoted in the error.
func checkText(raw string, limit int, inJSON, show bool) *valueError {
	if i := strings.IndexByte(raw, '\r'); i >= 0 {
		return &valueError{
			problem:  fmt.Sprintf("control character U+000D (carriage return) at byte %d of the cell", i+1),
			expected: textExpected(inJSON),
		}
	}
	s := strings.TrimSpace(raw)
	lead := len(raw) - len(strings.TrimLeftFunc(raw, unicode.IsSpace)) // byte positions count from the cell as written
	if len(s) > limit {
		return &valueError{
			problem:  "cell of " + strconv.Itoa(len(s)) + " bytes is too long",
			expected: "at most " + strconv.Itoa(limit) + " bytes",
		}
	}
	// Most cells are printable ASCII: one cheap pass says so.
	printable := true
	for i := 0; i < len(s) && printable; i++ {
		printable = s[i] >= 0x20 && s[i] < 0x7f
	}
	if printable {
		return nil
	}
	value := ""
	if show {
		value = shortValue(s)
	}
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if (b < 0x20 || b == 0x7f) && !(inJSON && (b == '\t' || b == '\n')) {
				return &valueError{
					problem:  fmt.Sprintf("control character %U at byte %d of the cell", b, lead+i+1),
					value:    value,
					expected: textExpected(inJSON),
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return &valueError{
				problem:  fmt.Sprintf("not UTF-8 (byte 0x%02X at byte %d of the cell)", b, lead+i+1),
				value:    value,
				expected: "UTF-8 text: save the file as CSV UTF-8, a Windows-1252 or Latin-1 export is not UTF-8",
			}
		}
		if r >= 0x80 && r <= 0x9f {
			return &valueError{
				problem:  fmt.Sprintf("control character %U at byte %d of the cell", r, lead+i+1),
				value:    value,
				expected: textExpected(inJSON),
			}
		}
		i += size
	}
	return nil
}

func textExpected(inJSON bool) string {
	if inJSON {
		return "a JSON object without control characters other than tabs and line breaks between its tokens"
	}
	return "text without control characters (tabs and line breaks are allowed only in properties)"
}
