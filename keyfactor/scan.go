package keyfactor

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sync"
	"unicode"
	"unicode/utf8"
)

// A fast path for the wire structs (structs of json.RawMessage fields):
// once a body is known to be valid JSON (validJSON), its objects are split
// into members by hand and each member a wire field names is handed over as
// a slice of the body, as encoding/json would set it, but without decoding
// every value into a RawMessage copy and without the reflection encoding/json
// does per value. A certificate record of Command carries some forty fields
// of which runner reads thirteen; skipping the rest cheaply is most of the
// gain. Invalid JSON never reaches this code: it takes encoding/json's path,
// so its errors stay encoding/json's.

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts at b[i]
// (its opening quote). b is valid JSON.
func skipString(b []byte, i int) int {
	for i++; ; {
		q := i + bytes.IndexByte(b[i:], '"')
		// The quote ends the string unless an odd run of backslashes
		// escapes it.
		n := 0
		for k := q - 1; k >= i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		i = q + 1
	}
}

// skipValue returns the index just past the value that starts at b[i]. b is
// valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
	default: // a number, true, false or null
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// eachElement calls each with every element of the array that starts at
// b[0]. b is valid JSON.
func eachElement(b []byte, each func(elem []byte)) {
	i := skipSpace(b, 1)
	for i < len(b) && b[i] != ']' {
		end := skipValue(b, i)
		each(b[i:end])
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
}

// eachMember calls each with the raw key (without quotes, escapes left in)
// and the value of every member of the object that starts at b[0]. b is
// valid JSON.
func eachMember(b []byte, each func(key, value []byte)) {
	i := skipSpace(b, 1)
	for i < len(b) && b[i] != '}' {
		keyEnd := skipString(b, i)
		key := b[i+1 : keyEnd-1]
		i = skipSpace(b, keyEnd) // at ':'
		i = skipSpace(b, i+1)
		end := skipValue(b, i)
		each(key, b[i:end])
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
}

// wireFields maps the member names of a wire struct to its fields: the
// exact name first, then the name folded as encoding/json folds it (so a
// member is matched case-insensitively, as encoding/json matches it).
type wireFields struct {
	exact  map[string]int
	folded map[string]int
}

var wireFieldsCache sync.Map // reflect.Type → *wireFields (nil: not a wire struct)

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// wireFieldsOf returns the field table of t, or nil when t is not a
// struct whose fields are all exported, untagged json.RawMessage.
func wireFieldsOf(t reflect.Type) *wireFields {
	if f, ok := wireFieldsCache.Load(t); ok {
		return f.(*wireFields)
	}
	var wf *wireFields
	if t.Kind() == reflect.Struct {
		wf = &wireFields{exact: map[string]int{}, folded: map[string]int{}}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Type != rawMessageType || f.Tag != "" || f.Anonymous {
				wf = nil
				break
			}
			wf.exact[f.Name] = i
			wf.folded[string(foldName(nil, []byte(f.Name)))] = i
		}
	}
	wireFieldsCache.Store(t, wf)
	return wf
}

// foldName appends name with every letter replaced by the smallest rune
// of its case-folding orbit, so two names fold alike exactly when they are
// equal under Unicode simple case folding (bytes.EqualFold).
func foldName(dst, name []byte) []byte {
	for i := 0; i < len(name); {
		c := name[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(name[i:])
		small := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			small = min(small, f)
		}
		dst = utf8.AppendRune(dst, small)
		i += n
	}
	return dst
}

// bindObject sets the fields of the wire struct v (addressable) from the
// members of the object obj, which is valid JSON: the last member of a name
// wins, as with encoding/json. Keys with escapes are unquoted first.
func (wf *wireFields) bindObject(obj []byte, v reflect.Value) {
	var buf [64]byte
	eachMember(obj, func(key, value []byte) {
		for _, c := range key {
			if c == '\\' {
				var s string
				if json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &s) != nil {
					return
				}
				key = []byte(s)
				break
			}
		}
		i, ok := wf.exact[string(key)]
		if !ok {
			i, ok = wf.folded[string(foldName(buf[:0], key))]
		}
		if ok {
			v.Field(i).SetBytes(value)
		}
	})
}

// fastObjectFields is objectFields for raw that is already known to be
// valid JSON (part of a body that passed json.Valid). It reports false when
// into is not a wire struct; the caller then takes encoding/json's path.
func fastObjectFields(raw []byte, into any) (error, bool) {
	v := reflect.ValueOf(into)
	if v.Kind() != reflect.Pointer {
		return nil, false
	}
	wf := wireFieldsOf(v.Type().Elem())
	if wf == nil {
		return nil, false
	}
	raw = raw[skipSpace(raw, 0):]
	if len(raw) == 0 || raw[0] != '{' {
		return wrongKind(raw), true
	}
	wf.bindObject(raw, v.Elem())
	return nil, true
}

// maxDepth is encoding/json's nesting limit: deeper input is not valid for
// it, so it is not for validJSON either.
const maxDepth = 10000

// validJSON reports what json.Valid reports, in one pass over b without
// encoding/json's per-byte state machine: b holds exactly one JSON value,
// with whitespace around it.
func validJSON(b []byte) bool {
	i := skipSpace(b, 0)
	end, ok := validValue(b, i, 0)
	return ok && skipSpace(b, end) == len(b)
}

// validValue returns the index just past the valid JSON value at b[i].
func validValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		return validString(b, i)
	case c == '{' || c == '[':
		return validContainer(b, i, depth+1)
	case c == 't':
		return validLiteral(b, i, "true")
	case c == 'f':
		return validLiteral(b, i, "false")
	case c == 'n':
		return validLiteral(b, i, "null")
	case c == '-' || ('0' <= c && c <= '9'):
		return validNumber(b, i)
	}
	return i, false
}

func validLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// validString checks the string at b[i] (its opening quote): no control
// characters, only JSON's escapes. Invalid UTF-8 is accepted, as
// encoding/json accepts it.
func validString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			i++
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 {
					return i, false
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

// validNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at b[i].
func validNumber(b []byte, i int) (int, bool) {
	digits := func(i int) (int, bool) {
		start := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i, i > start
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	default:
		var ok bool
		if i, ok = digits(i); !ok {
			return i, false
		}
	}
	if i < len(b) && b[i] == '.' {
		var ok bool
		if i, ok = digits(i + 1); !ok {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		var ok bool
		if i, ok = digits(i); !ok {
			return i, false
		}
	}
	return i, true
}

// validContainer checks the object or array at b[i].
func validContainer(b []byte, i, depth int) (int, bool) {
	if depth > maxDepth {
		return i, false
	}
	object := b[i] == '{'
	closer := byte(']')
	if object {
		closer = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, true
	}
	for {
		var ok bool
		if object {
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			if i, ok = validString(b, i); !ok {
				return i, false
			}
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return i, false
			}
			i = skipSpace(b, i+1)
		}
		if i, ok = validValue(b, i, depth); !ok {
			return i, false
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case closer:
			return i + 1, true
		default:
			return i, false
		}
	}
}
