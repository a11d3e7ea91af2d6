package kfsim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"runner/keyfactor"
)

// The query language of pq.queryString and certificateStoreQuery.queryString,
// in the subset the simulator needs: `Field -op value` clauses joined by AND.
// Field names and the AND keyword ignore case; string values are quoted and
// compared without regard to case, like Command's SQL collation.

type fieldKind int

const (
	kindInt fieldKind = iota
	kindString
	kindTime
)

// fieldSet maps lowercase field names to their canonical name and kind.
type fieldSet map[string]struct {
	name string
	kind fieldKind
}

func newFieldSet(kinds map[string]fieldKind) fieldSet {
	fs := fieldSet{}
	for name, k := range kinds {
		fs[strings.ToLower(name)] = struct {
			name string
			kind fieldKind
		}{name, k}
	}
	return fs
}

var certificateFields = newFieldSet(map[string]fieldKind{
	"Id": kindInt, "Thumbprint": kindString, "SerialNumber": kindString,
	"IssuedDN": kindString, "IssuedCN": kindString, "TemplateName": kindString,
	"CertRequestId": kindInt, "ImportDate": kindTime, "NotBefore": kindTime,
	"NotAfter": kindTime,
})

var storeFields = newFieldSet(map[string]fieldKind{
	"Id": kindString, "ContainerId": kindInt, "ClientMachine": kindString,
	"StorePath": kindString, "CertStoreType": kindInt,
})

// names lists the canonical field names, for error messages.
func (fs fieldSet) names() string {
	var out []string
	for _, f := range fs {
		out = append(out, f.name)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// clause is one `Field -op value` term.
type clause struct {
	field string
	kind  fieldKind
	op    string
	str   string
	num   int64
	tm    time.Time
}

// fieldValue is a record's value of a field; null values (a certificate
// without CertRequestId, a store without container) match only -ne.
type fieldValue struct {
	null bool
	str  string
	num  int64
	tm   time.Time
}

var ops = map[string]bool{"-eq": true, "-ne": true, "-gt": true, "-ge": true, "-lt": true, "-le": true,
	"-contains": true, "-startswith": true, "-endswith": true}

// parseQuery parses a query string; the error says what is wrong in words a
// caller can act on (the unknown field, the bad value).
func parseQuery(q string, fs fieldSet) ([]clause, error) {
	toks, err := tokenize(q)
	if err != nil {
		return nil, err
	}
	var out []clause
	for i := 0; i < len(toks); {
		if len(out) > 0 {
			switch strings.ToUpper(toks[i].text) {
			case "AND":
				i++
			case "OR":
				return nil, fmt.Errorf("OR is not supported by the simulator; join clauses with AND")
			default:
				return nil, fmt.Errorf("expected AND before %q", toks[i].text)
			}
		}
		if i+3 > len(toks) {
			return nil, fmt.Errorf("incomplete clause at the end of %q: want Field -op value", q)
		}
		name, op, val := toks[i], toks[i+1], toks[i+2]
		i += 3
		if name.quoted {
			return nil, fmt.Errorf("expected a field name, got %q", name.text)
		}
		f, ok := fs[strings.ToLower(name.text)]
		if !ok {
			return nil, fmt.Errorf("unknown field %q (known: %s)", name.text, fs.names())
		}
		o := strings.ToLower(op.text)
		if op.quoted || !ops[o] {
			return nil, fmt.Errorf("unknown operator %q after %s", op.text, f.name)
		}
		c := clause{field: f.name, kind: f.kind, op: o}
		switch f.kind {
		case kindInt:
			if o == "-contains" || o == "-startswith" || o == "-endswith" {
				return nil, fmt.Errorf("operator %s does not apply to the number field %s", o, f.name)
			}
			n, err := strconv.ParseInt(val.text, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("invalid value %q for %s: want an integer", val.text, f.name)
			}
			c.num = n
		case kindTime:
			if o == "-contains" || o == "-startswith" || o == "-endswith" {
				return nil, fmt.Errorf("operator %s does not apply to the date field %s", o, f.name)
			}
			t, err := parseQueryTime(val.text)
			if err != nil {
				return nil, fmt.Errorf("invalid value %q for %s: want an ISO 8601 date", val.text, f.name)
			}
			c.tm = t
		default:
			c.str = val.text
		}
		out = append(out, c)
	}
	return out, nil
}

func parseQueryTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date")
}

type qtoken struct {
	text   string
	quoted bool
}

// tokenize splits on spaces, keeping "quoted values" (with \" escapes)
// whole.
func tokenize(q string) ([]qtoken, error) {
	var toks []qtoken
	r := []rune(q)
	for i := 0; i < len(r); {
		switch {
		case r[i] == ' ' || r[i] == '\t' || r[i] == '\n' || r[i] == '\r':
			i++
		case r[i] == '(' || r[i] == ')':
			return nil, fmt.Errorf("parentheses are not supported by the simulator")
		case r[i] == '"' || r[i] == '\'':
			quote := r[i]
			var b strings.Builder
			i++
			closed := false
			for i < len(r) {
				if r[i] == '\\' && i+1 < len(r) {
					b.WriteRune(r[i+1])
					i += 2
					continue
				}
				if r[i] == quote {
					closed = true
					i++
					break
				}
				b.WriteRune(r[i])
				i++
			}
			if !closed {
				return nil, fmt.Errorf("unterminated quoted value in %q", q)
			}
			toks = append(toks, qtoken{b.String(), true})
		default:
			start := i
			for i < len(r) && r[i] != ' ' && r[i] != '\t' && r[i] != '\n' && r[i] != '\r' {
				i++
			}
			toks = append(toks, qtoken{text: string(r[start:i])})
		}
	}
	return toks, nil
}

// matches reports whether a record, seen through get, satisfies every clause.
func matches(cs []clause, get func(field string) fieldValue) bool {
	for _, c := range cs {
		if !c.match(get(c.field)) {
			return false
		}
	}
	return true
}

func (c clause) match(v fieldValue) bool {
	if v.null {
		return c.op == "-ne"
	}
	var cmp int
	switch c.kind {
	case kindInt:
		cmp = compare(v.num, c.num)
	case kindTime:
		cmp = v.tm.Compare(c.tm)
	default:
		a, b := strings.ToLower(v.str), strings.ToLower(c.str)
		switch c.op {
		case "-contains":
			return strings.Contains(a, b)
		case "-startswith":
			return strings.HasPrefix(a, b)
		case "-endswith":
			return strings.HasSuffix(a, b)
		}
		cmp = strings.Compare(a, b)
	}
	switch c.op {
	case "-eq":
		return cmp == 0
	case "-ne":
		return cmp != 0
	case "-gt":
		return cmp > 0
	case "-ge":
		return cmp >= 0
	case "-lt":
		return cmp < 0
	case "-le":
		return cmp <= 0
	}
	return false
}

func compare(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareValues orders two values of one field, nulls first; used by
// pq.sortField.
func compareValues(kind fieldKind, a, b fieldValue) int {
	switch {
	case a.null && b.null:
		return 0
	case a.null:
		return -1
	case b.null:
		return 1
	}
	switch kind {
	case kindInt:
		return compare(a.num, b.num)
	case kindTime:
		return a.tm.Compare(b.tm)
	}
	return strings.Compare(strings.ToLower(a.str), strings.ToLower(b.str))
}

func certificateValue(c *keyfactor.Certificate, field string) fieldValue {
	switch field {
	case "Id":
		return fieldValue{num: int64(c.Id)}
	case "Thumbprint":
		return fieldValue{str: c.Thumbprint}
	case "SerialNumber":
		return fieldValue{str: c.SerialNumber}
	case "IssuedDN":
		return fieldValue{str: c.IssuedDN}
	case "IssuedCN":
		return fieldValue{str: c.IssuedCN}
	case "TemplateName":
		return fieldValue{str: c.TemplateName}
	case "CertRequestId":
		if c.CertRequestId == nil {
			return fieldValue{null: true}
		}
		return fieldValue{num: int64(*c.CertRequestId)}
	case "ImportDate":
		return fieldValue{tm: c.ImportDate}
	case "NotBefore":
		return fieldValue{tm: c.NotBefore}
	case "NotAfter":
		return fieldValue{tm: c.NotAfter}
	}
	return fieldValue{null: true}
}

func storeValue(st *Store, field string) fieldValue {
	switch field {
	case "Id":
		return fieldValue{str: st.Id}
	case "ContainerId":
		if st.ContainerId == 0 {
			return fieldValue{null: true}
		}
		return fieldValue{num: int64(st.ContainerId)}
	case "ClientMachine":
		return fieldValue{str: st.ClientMachine}
	case "StorePath":
		return fieldValue{str: st.StorePath}
	case "CertStoreType":
		return fieldValue{num: int64(st.CertStoreType)}
	}
	return fieldValue{null: true}
}
