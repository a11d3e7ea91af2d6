package kfsim

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// listQuery is what a paged GET asks for: the parsed query, the page, the
// (capped) page size and the order.
type listQuery struct {
	q     *query
	page  int
	limit int
	sort  field
	desc  bool
}

// listQuery reads a paged request: <prefix>.queryString, .pageReturned,
// .returnLimit, .sortField and .sortAscending, or the same names
// unprefixed (both forms are in use: the OpenAPI file prefixes them, newer
// clients and the terraform provider do not). returnLimit defaults to 50
// and is capped at the server's page size; sortAscending is 0 for
// ascending, 1 for descending [OAS].
func (s *Server) listQuery(c *call, fs fieldSet, defaultSort string, prefixes ...string) (listQuery, *response) {
	names := func(n string) []string {
		out := make([]string, 0, len(prefixes)+1)
		for _, p := range prefixes {
			out = append(out, p+"."+n)
		}
		return append(out, n)
	}
	var lq listQuery
	_, q, _ := param(c, names("queryString")...)
	parsed, err := parseQuery(q, fs, c.now)
	if err != nil {
		r := errorResponse(http.StatusBadRequest, codeQuery, "Invalid query: "+err.Error())
		return lq, &r
	}
	if s.opts.RefuseOr && parsed.hasOr() {
		r := errorResponse(http.StatusBadRequest, codeQuery, "Invalid query: OR is not supported by this server.")
		return lq, &r
	}
	lq.q = parsed
	var errResp *response
	if lq.page, errResp = intParam(c, 1, names("pageReturned")...); errResp != nil {
		return lq, errResp
	}
	if lq.limit, errResp = intParam(c, DefaultReturnLimit, names("returnLimit")...); errResp != nil {
		return lq, errResp
	}
	lq.page, lq.limit = max(lq.page, 1), max(lq.limit, 1)
	if s.maxPage > 0 {
		lq.limit = min(lq.limit, s.maxPage)
	}
	lq.sort = fs[strings.ToLower(defaultSort)]
	if _, name, ok := param(c, names("sortField")...); ok && name != "" {
		f, known := fs[strings.ToLower(name)]
		if !known {
			r := errorResponse(http.StatusBadRequest, codeSort, "Invalid sort field: "+name+".")
			return lq, &r
		}
		lq.sort = f
	}
	dir, errResp := intParam(c, 0, names("sortAscending")...)
	if errResp != nil {
		return lq, errResp
	}
	lq.desc = dir == 1
	return lq, nil
}

// sortPage orders items by the query's sort field, stably, unless they are
// already in the default order it asks for.
func sortPage[T any](items []T, lq listQuery, get func(T, string) fieldValue, defaultSort string) {
	if lq.sort.name == defaultSort && !lq.desc {
		return
	}
	sort.SliceStable(items, func(a, b int) bool {
		cmp := compareValues(lq.sort.kind, get(items[a], lq.sort.name), get(items[b], lq.sort.name))
		if lq.desc {
			return cmp > 0
		}
		return cmp < 0
	})
}

// pageOf returns the page of n items as a [start, end) range; past the end
// it is empty.
func pageOf(n, page, limit int) (int, int) {
	start := (page - 1) * limit
	if start >= n || start < 0 {
		return n, n
	}
	return start, min(start+limit, n)
}

// listResponse is a page with X-Total-Count, as every list endpoint of
// Command answers [REC].
func listResponse(items any, total int) response {
	resp := jsonResponse(http.StatusOK, items)
	resp.header.Set("X-Total-Count", strconv.Itoa(total))
	return resp
}

// param returns the first of names present in the query (names are
// matched without regard to case).
func param(c *call, names ...string) (string, string, bool) {
	for _, n := range names {
		if v, ok := c.query[strings.ToLower(n)]; ok {
			return n, v, true
		}
	}
	return "", "", false
}

func boolParam(c *call, names ...string) (bool, *response) {
	name, v, ok := param(c, names...)
	if !ok || v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r := errorResponse(http.StatusBadRequest, codeInvalid, "The value '"+v+"' is not valid for "+name+": want true or false.")
		return false, &r
	}
	return b, nil
}

func intParam(c *call, def int, names ...string) (int, *response) {
	name, v, ok := param(c, names...)
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r := errorResponse(http.StatusBadRequest, codeInvalid, "The value '"+v+"' is not valid for "+name+": want an integer.")
		return 0, &r
	}
	return n, nil
}
