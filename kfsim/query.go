package kfsim

import (
	"cmp"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The query language of pq.queryString, certificateStoreQuery.queryString
// and the other paged queries. Keyfactor does not publish a specification of
// it ("largely consistent with PowerShell comparison notation") [DOC v10.3
// ClassicAPI CertificatesSearchandCount]; what the simulator reads is what
// the documentation shows and no more:
//
//   - clauses `Field -op value`, operators -eq -ne -gt -ge -lt -le -contains
//     -notcontains -startswith -endswith, and `-eq NULL` / `-ne NULL` for null
//     [DOC Using the … Search Feature pages];
//   - clauses joined by AND and OR (any case), AND binding tighter than OR,
//     parentheses for grouping [DOC: the search pages' advanced queries; the
//     binding order is the usual one and UNCONFIRMED];
//   - string values in double quotes, compared without regard to case (SQL
//     Server's default collation); inside quotes \" is a quote and \\ a
//     backslash, any other backslash is itself (so "KEYEXAMPLE\key_service",
//     the documentation's own example, means what it says); the escapes are
//     UNCONFIRMED. An unterminated quote, or a quote inside an unquoted word
//     or directly followed by another character, is refused (400);
//   - numbers bare or quoted (`Status -eq "2"` is a documented example);
//   - dates as ISO 8601 (quoted or bare: "2022-09-01T00:00:00Z" is the
//     documented form; a date alone, any fraction, any offset, none meaning
//     UTC are accepted) or %TODAY%, %TODAY+N%, %TODAY-N% (N days from
//     midnight UTC of the simulator's today) [DOC Advanced Searches tokens].

type fieldKind int

const (
	kindInt fieldKind = iota
	kindString
	kindTime
)

// field is a queryable field: its canonical name and kind.
type field struct {
	name string
	kind fieldKind
}

// fieldSet maps lowercase field names (and aliases) to fields.
type fieldSet map[string]field

func newFieldSet(kinds map[string]fieldKind, aliases map[string]string) fieldSet {
	fs := fieldSet{}
	for name, k := range kinds {
		fs[strings.ToLower(name)] = field{name, k}
	}
	for alias, name := range aliases {
		fs[strings.ToLower(alias)] = fs[strings.ToLower(name)]
	}
	return fs
}

// names lists the canonical field names, for error messages.
func (fs fieldSet) names() string {
	seen := map[string]bool{}
	var out []string
	for _, f := range fs {
		if !seen[f.name] {
			seen[f.name] = true
			out = append(out, f.name)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// The fields of each queryable endpoint. CN and DN are the Management
// Portal's names for IssuedCN and IssuedDN (the collection example
// `CN -notcontains "keyother"`).
var (
	certificateFields = newFieldSet(map[string]fieldKind{
		"Id": kindInt, "Thumbprint": kindString, "SerialNumber": kindString,
		"IssuedDN": kindString, "IssuedCN": kindString, "IssuerDN": kindString,
		"TemplateName": kindString, "CertRequestId": kindInt, "CertState": kindInt,
		"ImportDate": kindTime, "NotBefore": kindTime, "NotAfter": kindTime,
		"RequesterName": kindString, "PrincipalId": kindInt,
		"CertificateAuthorityName": kindString,
	}, map[string]string{"CN": "IssuedCN", "DN": "IssuedDN"})

	storeFields = newFieldSet(map[string]fieldKind{
		"Id": kindString, "ContainerId": kindInt, "ContainerName": kindString,
		"ClientMachine": kindString, "StorePath": kindString, "CertStoreType": kindInt,
	}, map[string]string{"Storepath": "StorePath"})

	storeTypeFields = newFieldSet(map[string]fieldKind{"StoreType": kindInt, "ShortName": kindString, "Name": kindString}, nil)

	jobHistoryFields = newFieldSet(map[string]fieldKind{
		"JobHistoryId": kindInt, "JobId": kindString, "ClientMachine": kindString,
		"StorePath": kindString, "JobType": kindString, "Result": kindInt,
		"Status": kindInt, "OperationStart": kindTime, "OperationEnd": kindTime,
		"AgentMachine": kindString,
	}, nil)

	requestFields = newFieldSet(map[string]fieldKind{
		"Id": kindInt, "CommonName": kindString, "DistinguishedName": kindString,
		"SubmissionDate": kindTime, "Requester": kindString, "Template": kindString,
		"CertificateAuthority": kindString, "State": kindInt,
	}, nil)
)

// fieldValue is a record's value of a field; null values (a certificate
// without CertRequestId, a store without container) match only -ne and
// `-eq NULL`.
type fieldValue struct {
	null bool
	str  string
	num  int64
	tm   time.Time
}

// clause is one `Field -op value` term.
type clause struct {
	field    field
	op       string
	nullTest bool // value was NULL
	str      string
	num      int64
	tm       time.Time
}

// query is a parsed query: a clause, or an AND/OR of sub-queries. The nil
// query matches everything.
type query struct {
	op   byte // 'c' clause, '&' and, '|' or
	c    clause
	kids []*query
}

var ops = map[string]bool{"-eq": true, "-ne": true, "-gt": true, "-ge": true, "-lt": true, "-le": true,
	"-contains": true, "-notcontains": true, "-startswith": true, "-endswith": true}

func isTextOp(op string) bool {
	return op == "-contains" || op == "-notcontains" || op == "-startswith" || op == "-endswith"
}

// parseQuery parses q against fs; now anchors %TODAY%. The error says what
// is wrong in words a caller can act on (the unknown field, the bad value,
// the broken quote).
func parseQuery(q string, fs fieldSet, now time.Time) (*query, error) {
	toks, err := tokenize(q)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, nil
	}
	p := &parser{toks: toks, fs: fs, now: now, src: q}
	root, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		t := p.toks[p.i]
		if t.text == ")" && !t.quoted {
			return nil, fmt.Errorf("unbalanced parenthesis at %q", t.text)
		}
		return nil, fmt.Errorf("expected AND or OR before %q", t.text)
	}
	return root, nil
}

type parser struct {
	toks []qtoken
	i    int
	fs   fieldSet
	now  time.Time
	src  string
}

func (p *parser) peekKeyword(kw string) bool {
	return p.i < len(p.toks) && !p.toks[p.i].quoted && strings.EqualFold(p.toks[p.i].text, kw)
}

func (p *parser) or() (*query, error) {
	first, err := p.and()
	if err != nil {
		return nil, err
	}
	kids := []*query{first}
	for p.peekKeyword("OR") {
		p.i++
		next, err := p.and()
		if err != nil {
			return nil, err
		}
		kids = append(kids, next)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return &query{op: '|', kids: kids}, nil
}

func (p *parser) and() (*query, error) {
	first, err := p.unary()
	if err != nil {
		return nil, err
	}
	kids := []*query{first}
	for p.peekKeyword("AND") {
		p.i++
		next, err := p.unary()
		if err != nil {
			return nil, err
		}
		kids = append(kids, next)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return &query{op: '&', kids: kids}, nil
}

func (p *parser) unary() (*query, error) {
	if p.i >= len(p.toks) {
		return nil, fmt.Errorf("incomplete query %q: want Field -op value after AND/OR", p.src)
	}
	if t := p.toks[p.i]; !t.quoted && t.text == "(" {
		p.i++
		inner, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.i >= len(p.toks) || p.toks[p.i].quoted || p.toks[p.i].text != ")" {
			return nil, fmt.Errorf("unbalanced parenthesis in %q: missing )", p.src)
		}
		p.i++
		return inner, nil
	}
	return p.clause()
}

func (p *parser) clause() (*query, error) {
	if p.i+3 > len(p.toks) {
		return nil, fmt.Errorf("incomplete clause at the end of %q: want Field -op value", p.src)
	}
	name, op, val := p.toks[p.i], p.toks[p.i+1], p.toks[p.i+2]
	p.i += 3
	if name.quoted || name.text == "(" || name.text == ")" {
		return nil, fmt.Errorf("expected a field name, got %q", name.text)
	}
	f, ok := p.fs[strings.ToLower(name.text)]
	if !ok {
		return nil, fmt.Errorf("unknown field %q (known: %s)", name.text, p.fs.names())
	}
	o := strings.ToLower(op.text)
	if op.quoted || !ops[o] {
		return nil, fmt.Errorf("unknown operator %q after %s", op.text, f.name)
	}
	if !val.quoted && (val.text == "(" || val.text == ")") {
		return nil, fmt.Errorf("expected a value after %s %s, got %q", f.name, o, val.text)
	}
	c := clause{field: f, op: o}
	if !val.quoted && strings.EqualFold(val.text, "NULL") {
		if o != "-eq" && o != "-ne" {
			return nil, fmt.Errorf("NULL takes -eq or -ne, not %s", o)
		}
		c.nullTest = true
		return &query{op: 'c', c: c}, nil
	}
	switch f.kind {
	case kindInt:
		if isTextOp(o) {
			return nil, fmt.Errorf("operator %s does not apply to the number field %s", o, f.name)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(val.text), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid value %q for %s: want an integer", val.text, f.name)
		}
		c.num = n
	case kindTime:
		if isTextOp(o) {
			return nil, fmt.Errorf("operator %s does not apply to the date field %s", o, f.name)
		}
		t, err := queryTime(val.text, p.now)
		if err != nil {
			return nil, fmt.Errorf("invalid value %q for %s: want an ISO 8601 date or %%TODAY%%", val.text, f.name)
		}
		c.tm = t
	default:
		c.str = strings.ToLower(val.text)
	}
	return &query{op: 'c', c: c}, nil
}

// queryTime reads a date literal: ISO 8601 or %TODAY[±N]%.
func queryTime(s string, now time.Time) (time.Time, error) {
	upper := strings.ToUpper(strings.TrimSpace(s))
	if rest, ok := strings.CutPrefix(upper, "%TODAY"); ok {
		rest, ok = strings.CutSuffix(rest, "%")
		if !ok {
			return time.Time{}, fmt.Errorf("unterminated token")
		}
		days := 0
		if rest != "" {
			n, err := strconv.Atoi(rest)
			if err != nil {
				return time.Time{}, fmt.Errorf("bad day offset %q", rest)
			}
			days = n
		}
		y, m, d := now.UTC().Date()
		return time.Date(y, m, d+days, 0, 0, 0, 0, time.UTC), nil
	}
	return parseTime(s)
}

type qtoken struct {
	text   string
	quoted bool
}

func isSpace(r byte) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// tokenize splits a query into words, parentheses and "quoted values".
func tokenize(q string) ([]qtoken, error) {
	var toks []qtoken
	for i := 0; i < len(q); {
		switch ch := q[i]; {
		case isSpace(ch):
			i++
		case ch == '(' || ch == ')':
			toks = append(toks, qtoken{text: string(ch)})
			i++
		case ch == '"':
			var b strings.Builder
			i++
			closed := false
			for i < len(q) {
				if q[i] == '\\' && i+1 < len(q) && (q[i+1] == '"' || q[i+1] == '\\') {
					b.WriteByte(q[i+1])
					i += 2
					continue
				}
				if q[i] == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(q[i])
				i++
			}
			if !closed {
				return nil, fmt.Errorf("unterminated quoted value in %q", q)
			}
			if i < len(q) && !isSpace(q[i]) && q[i] != ')' {
				return nil, fmt.Errorf("malformed quoting in %q: a closing quote must end the value (escape a quote inside a value as \\\")", q)
			}
			toks = append(toks, qtoken{b.String(), true})
		default:
			start := i
			for i < len(q) && !isSpace(q[i]) && q[i] != '(' && q[i] != ')' {
				if q[i] == '"' {
					return nil, fmt.Errorf("malformed quoting in %q: a quote inside an unquoted word", q)
				}
				i++
			}
			toks = append(toks, qtoken{text: q[start:i]})
		}
	}
	return toks, nil
}

// matches reports whether a record, seen through get, satisfies q.
func (q *query) matches(get func(field string) fieldValue) bool {
	if q == nil {
		return true
	}
	switch q.op {
	case '&':
		for _, k := range q.kids {
			if !k.matches(get) {
				return false
			}
		}
		return true
	case '|':
		for _, k := range q.kids {
			if k.matches(get) {
				return true
			}
		}
		return false
	}
	return q.c.match(get(q.c.field.name))
}

// hasOr reports whether q uses OR anywhere.
func (q *query) hasOr() bool {
	if q == nil {
		return false
	}
	if q.op == '|' {
		return true
	}
	for _, k := range q.kids {
		if k.hasOr() {
			return true
		}
	}
	return false
}

func (c clause) match(v fieldValue) bool {
	if c.nullTest {
		return v.null == (c.op == "-eq")
	}
	if v.null {
		return c.op == "-ne" || c.op == "-notcontains"
	}
	var order int
	switch c.field.kind {
	case kindInt:
		order = cmp.Compare(v.num, c.num)
	case kindTime:
		order = v.tm.Compare(c.tm)
	default:
		a := strings.ToLower(v.str)
		switch c.op {
		case "-contains":
			return strings.Contains(a, c.str)
		case "-notcontains":
			return !strings.Contains(a, c.str)
		case "-startswith":
			return strings.HasPrefix(a, c.str)
		case "-endswith":
			return strings.HasSuffix(a, c.str)
		}
		order = strings.Compare(a, c.str)
	}
	switch c.op {
	case "-eq":
		return order == 0
	case "-ne":
		return order != 0
	case "-gt":
		return order > 0
	case "-ge":
		return order >= 0
	case "-lt":
		return order < 0
	case "-le":
		return order <= 0
	}
	return false
}

// compareValues orders two values of one field, nulls first; used by
// sortField.
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
		return cmp.Compare(a.num, b.num)
	case kindTime:
		return a.tm.Compare(b.tm)
	}
	return strings.Compare(strings.ToLower(a.str), strings.ToLower(b.str))
}

// indexLookup answers an indexed equality: the records whose field equals
// the clause's value, and whether the field is indexed at all.
type indexLookup func(c clause) ([]int, bool)

// candidates returns a superset of the records q can match, from the
// indexes, without looking at any other record: an indexed `-eq` clause
// gives its records, AND the smallest indexed child, OR the union when every
// child is indexed. ok is false when q needs a scan. This is what makes `Id
// -eq a OR Id -eq b …` cost O(ids), not O(world).
func (q *query) candidates(lookup indexLookup) (ids []int, ok bool) {
	if q == nil {
		return nil, false
	}
	switch q.op {
	case 'c':
		if q.c.op != "-eq" || q.c.nullTest {
			return nil, false
		}
		return lookup(q.c)
	case '&':
		var best []int
		found := false
		for _, k := range q.kids {
			if ids, ok := k.candidates(lookup); ok && (!found || len(ids) < len(best)) {
				best, found = ids, true
			}
		}
		return best, found
	}
	seen := map[int]bool{}
	var out []int
	for _, k := range q.kids {
		ids, ok := k.candidates(lookup)
		if !ok {
			return nil, false
		}
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out, true
}
