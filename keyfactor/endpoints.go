package keyfactor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
)

// CertificateQuery selects GET /Certificates records.
type CertificateQuery struct {
	QueryString   string // pq.queryString, e.g. `Thumbprint -eq "AB12…"`
	PageReturned  int    // pq.pageReturned, 1-based; 0 leaves the server default (ListCertificates)
	ReturnLimit   int    // pq.returnLimit; 0 leaves the server default (ListCertificates) or asks for 100 (AllCertificates)
	SortField     string // pq.sortField
	SortAscending int    // pq.sortAscending: 0 ascending, 1 descending; sent only with SortField
	// IncludeLocations fills Certificate.Locations.
	IncludeLocations bool
	// IncludeExpired and IncludeRevoked also return expired and revoked
	// certificates (pq.includeExpired, pq.includeRevoked).
	IncludeExpired bool
	IncludeRevoked bool
}

// RecordError is one record of a list answer that could not be decoded.
// The rest of its page is kept.
type RecordError struct {
	Page    int    // 1-based page of the listing, 0 for a single request
	Index   int    // 0-based position in its page
	Id      int    // the record's integer Id, 0 if unreadable or a store
	StoreId string // a store record's Id, if readable
	Err     error
}

// Error names the record and what was wrong with it.
func (e *RecordError) Error() string {
	var b strings.Builder
	if e.Page > 0 {
		fmt.Fprintf(&b, "page %d ", e.Page)
	}
	fmt.Fprintf(&b, "record %d", e.Index)
	switch {
	case e.Id != 0:
		fmt.Fprintf(&b, " (id %d)", e.Id)
	case e.StoreId != "":
		fmt.Fprintf(&b, " (store %s)", e.StoreId)
	}
	return b.String() + ": " + oneLine(e.Err.Error(), maxMessage)
}

// Unwrap returns the decoding error.
func (e *RecordError) Unwrap() error { return e.Err }

// CertificatePage is one page of GET /Certificates.
type CertificatePage struct {
	Certificates []Certificate
	// Total is X-Total-Count, -1 when absent or unreadable. A server whose
	// count disagrees with what it hands out is the caller's to report.
	Total int
	// Odd are the records that could not be decoded.
	Odd []RecordError
}

// StorePage is one page of GET /CertificateStores.
type StorePage struct {
	Stores []CertificateStore
	Total  int // X-Total-Count, -1 when absent or unreadable
	Odd    []RecordError
}

// StoreQuery selects one page of GET /CertificateStores.
type StoreQuery struct {
	QueryString  string // certificateStoreQuery.queryString, e.g. `ContainerId -eq 3`
	PageReturned int    // certificateStoreQuery.pageReturned, 1-based; 0 leaves the server default
	ReturnLimit  int    // certificateStoreQuery.returnLimit; 0 leaves the server default
}

// JobHistoryQuery selects GET /OrchestratorJobs/JobHistory records.
type JobHistoryQuery struct {
	QueryString   string // pq.queryString, e.g. `JobId -eq "…"`
	ReturnLimit   int    // page size asked for; 0 asks for 100
	SortField     string // pq.sortField, e.g. "JobHistoryId"
	SortAscending int    // 0 ascending, 1 descending; sent only with SortField
}

// StatusEndpoints calls GET /Status/Endpoints, the endpoints the caller may
// use. Keyfactor's own tools use it to check a connection and credentials.
func (c *Client) StatusEndpoints(ctx context.Context) ([]string, error) {
	var out []string
	err := c.do(ctx, request{method: http.MethodGet, endpoint: "/Status/Endpoints", path: "/Status/Endpoints", out: &out})
	return out, err
}

// withCollection adds collectionId when the client has one.
func (c *Client) withCollection(v url.Values) url.Values {
	if c.collection != 0 {
		v.Set("collectionId", strconv.Itoa(c.collection))
	}
	return v
}

// GetCertificate calls GET /Certificates/{id}; includeLocations fills
// Locations with the stores inventory found the certificate in.
func (c *Client) GetCertificate(ctx context.Context, id int, includeLocations bool) (*Certificate, error) {
	q := url.Values{}
	if includeLocations {
		q.Set("includeLocations", "true")
	}
	var out Certificate
	err := c.do(ctx, request{method: http.MethodGet, endpoint: "/Certificates/{id}",
		path: "/Certificates/" + strconv.Itoa(id), query: c.withCollection(q), out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// certificateParams builds the query parameters of GET /Certificates.
func (c *Client) certificateParams(q CertificateQuery) url.Values {
	v := pageQuery("pq.", q.QueryString, q.PageReturned, q.ReturnLimit)
	if q.SortField != "" {
		v.Set("pq.sortField", q.SortField)
		v.Set("pq.sortAscending", strconv.Itoa(q.SortAscending))
	}
	if q.IncludeLocations {
		v.Set("includeLocations", "true")
	}
	if q.IncludeExpired {
		v.Set("pq.includeExpired", "true")
	}
	if q.IncludeRevoked {
		v.Set("pq.includeRevoked", "true")
	}
	return c.withCollection(v)
}

// ListCertificates calls GET /Certificates and returns one page. A record
// that cannot be decoded is reported in Odd; the page is not failed.
func (c *Client) ListCertificates(ctx context.Context, q CertificateQuery) (*CertificatePage, error) {
	return c.certificatePage(ctx, c.certificateParams(q), 0)
}

func (c *Client) certificatePage(ctx context.Context, v url.Values, page int) (*CertificatePage, error) {
	certs, odd, total, err := listPage[certificateWire, Certificate](ctx, c, "/Certificates", v, page,
		func(w *certificateWire) RecordError { return RecordError{Id: wireID(w.Id)} })
	if err != nil {
		return nil, err
	}
	return &CertificatePage{Certificates: certs, Total: total, Odd: odd}, nil
}

// certPageSize is the page size AllCertificates asks for when the query
// names none.
const certPageSize = 100

// AllCertificates pages through GET /Certificates and calls each for every
// certificate, in the order Command returns them, each id once. It never
// trusts the page size it asked for (servers cap it): it stops at an empty
// page, or at a short page once X-Total-Count agrees (see pager). The
// records that could not be decoded are returned; an error from each stops
// the listing and is returned as is.
func (c *Client) AllCertificates(ctx context.Context, q CertificateQuery, each func(*Certificate) error) ([]RecordError, error) {
	limit := q.ReturnLimit
	if limit <= 0 {
		limit = certPageSize
	}
	p := pager{what: "certificates", limit: limit, log: c.log}
	return listAll(p, func(page int) ([]Certificate, []RecordError, int, error) {
		q.PageReturned, q.ReturnLimit = page, limit
		cp, err := c.certificatePage(ctx, c.certificateParams(q), page)
		if err != nil {
			return nil, nil, 0, err
		}
		return cp.Certificates, cp.Odd, cp.Total, nil
	}, func(cert *Certificate) (int, bool) { return cert.Id, true }, each)
}

// maxURLLength bounds the whole URL of a batched read. IIS refuses query
// strings over 2048 bytes by default (request filtering, maxQueryString);
// 1800 for the whole URL keeps well inside that.
const maxURLLength = 1800

// CertificatesByID reads the given ids with `Id -eq a OR Id -eq b …`
// queries, as many requests as the URL budget needs (up to
// batchesAtOnce of them at once, so a read of a few hundred ids costs
// one round trip, not several), expired and revoked certificates included
// (as GET /Certificates/{id} would return them). A batch is paged if the
// server caps the page. Ids Command did not return are absent from the map.
// When Command refuses the query (400, 414, or 404 as IIS answers an
// over-long query string), the error wraps ErrQueryRefused and the caller
// reads one id at a time. Of several failed batches, the error of the first
// in id order is returned.
func (c *Client) CertificatesByID(ctx context.Context, ids []int, includeLocations bool) (map[int]*Certificate, []RecordError, error) {
	want := slices.Clone(ids)
	slices.Sort(want)
	want = slices.Compact(want)
	for len(want) > 0 && want[0] <= 0 {
		want = want[1:]
	}
	var batches [][]int
	for len(want) > 0 {
		n := c.batchSize(want, includeLocations)
		batches, want = append(batches, want[:n]), want[n:]
	}
	type result struct {
		found []*Certificate
		odd   []RecordError
		err   error
	}
	results := make([]result, len(batches))
	g := new(errgroup.Group)
	g.SetLimit(batchesAtOnce)
	for i, batch := range batches {
		g.Go(func() error {
			results[i].found, results[i].odd, results[i].err = c.certificateBatch(ctx, batch, includeLocations)
			return nil
		})
	}
	_ = g.Wait() // each batch's error is in its result
	out := make(map[int]*Certificate, len(ids))
	var odd []RecordError
	for i, r := range results {
		for _, cert := range r.found {
			out[cert.Id] = cert
		}
		odd = append(odd, r.odd...)
		if r.err == nil {
			continue
		}
		if IsQueryRefused(r.err) {
			return out, odd, fmt.Errorf("read %d certificates by id: %w: %w", len(batches[i]), ErrQueryRefused, r.err)
		}
		return out, odd, fmt.Errorf("read %d certificates by id: %w", len(batches[i]), r.err)
	}
	return out, odd, nil
}

// batchesAtOnce bounds the requests one CertificatesByID call has in
// flight.
const batchesAtOnce = 4

// certificateBatch reads one batch of ids that fits the URL budget; records
// for ids that were not asked for are dropped. Once every id asked for is
// in, it stops: the query can match nothing else, so the page after a full
// one (which the pager would read to be sure) would be empty.
func (c *Client) certificateBatch(ctx context.Context, batch []int, includeLocations bool) ([]*Certificate, []RecordError, error) {
	asked := make(map[int]bool, len(batch))
	for _, id := range batch {
		asked[id] = true
	}
	found := make([]*Certificate, 0, len(batch))
	q := CertificateQuery{QueryString: idQuery(batch), ReturnLimit: len(batch), IncludeLocations: includeLocations,
		IncludeExpired: true, IncludeRevoked: true}
	odd, err := c.AllCertificates(ctx, q, func(cert *Certificate) error {
		if !asked[cert.Id] { // an answer for an id nobody asked for is ignored
			return nil
		}
		delete(asked, cert.Id)
		cp := *cert
		found = append(found, &cp)
		if len(asked) == 0 {
			return errAllFound
		}
		return nil
	})
	if errors.Is(err, errAllFound) {
		err = nil
	}
	return found, odd, err
}

// errAllFound ends a batch's listing once every id asked for was read.
var errAllFound = errors.New("every certificate asked for was read")

// CertificateQueryFits reports whether GET /Certificates with q fits the
// URL budget of a batched read (maxURLLength), so that callers that batch
// their own clauses stop where Command's web server would refuse.
func (c *Client) CertificateQueryFits(q CertificateQuery) bool {
	return len(c.base)+len("/Certificates?")+len(c.certificateParams(q).Encode()) <= maxURLLength
}

// batchSize returns how many of ids fit in one request's URL budget (at
// least one).
func (c *Client) batchSize(ids []int, includeLocations bool) int {
	fits := func(n int) bool {
		q := CertificateQuery{QueryString: idQuery(ids[:n]), PageReturned: 1, ReturnLimit: n, IncludeLocations: includeLocations,
			IncludeExpired: true, IncludeRevoked: true}
		return c.CertificateQueryFits(q)
	}
	// The URL grows with n, so the largest n that fits can be found by
	// bisection. Each id takes at least len("Id+-eq+0") characters of the
	// URL, so no more than maxURLLength/8 can fit: bisecting over all ids
	// instead would build queries of the whole plan for every batch.
	lo, hi := 1, min(len(ids), maxURLLength/len("Id+-eq+0"))
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// listPage sends one GET of a list endpoint for page (0 for a single
// request) and decodes each record of the answer (see records) with its
// fromWire. It returns the records, those that could not be decoded (each
// named by name, if not nil, with its page and index), and X-Total-Count
// (-1 when absent or unreadable).
func listPage[W, T any, PT interface {
	*T
	fromWire(*W) error
}](ctx context.Context, c *Client, endpoint string, v url.Values, page int, name func(*W) RecordError) ([]T, []RecordError, int, error) {
	var recs []T
	var odd []RecordError
	each := func(i int, w *W, err error) {
		var t T
		if err == nil {
			err = PT(&t).fromWire(w)
		}
		if err != nil {
			var e RecordError
			if name != nil {
				e = name(w)
			}
			e.Page, e.Index, e.Err = page, i, err
			odd = append(odd, e)
			return
		}
		recs = append(recs, t)
	}
	var h http.Header
	err := c.do(ctx, request{method: http.MethodGet, endpoint: endpoint, path: endpoint, query: v, out: &records[W]{each: each}, header: &h})
	if err != nil {
		return nil, nil, 0, err
	}
	total := -1
	if s := strings.TrimSpace(h.Get("X-Total-Count")); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			total = n
		}
	}
	return recs, odd, total, nil
}

// pageQuery builds the paged-query parameters that Command's list
// endpoints share, under each endpoint's own prefix ("pq.",
// "certificateStoreQuery.", "cstquery."); zero values are left to the
// server's default.
func pageQuery(prefix, queryString string, page, limit int) url.Values {
	v := url.Values{}
	if queryString != "" {
		v.Set(prefix+"queryString", queryString)
	}
	if page > 0 {
		v.Set(prefix+"pageReturned", strconv.Itoa(page))
	}
	if limit > 0 {
		v.Set(prefix+"returnLimit", strconv.Itoa(limit))
	}
	return v
}

// ListCertificateStores calls GET /CertificateStores and returns one page.
func (c *Client) ListCertificateStores(ctx context.Context, q StoreQuery) (*StorePage, error) {
	return c.storePage(ctx, q, 0)
}

func (c *Client) storePage(ctx context.Context, q StoreQuery, page int) (*StorePage, error) {
	stores, odd, total, err := listPage[storeWire, CertificateStore](ctx, c, "/CertificateStores",
		pageQuery("certificateStoreQuery.", q.QueryString, q.PageReturned, q.ReturnLimit), page,
		func(w *storeWire) RecordError { return RecordError{StoreId: wireStoreID(w.Id)} })
	if err != nil {
		return nil, err
	}
	return &StorePage{Stores: stores, Total: total, Odd: odd}, nil
}

// storePageSize is the page size AllCertificateStores asks for.
const storePageSize = 100

// AllCertificateStores pages through GET /CertificateStores with the same
// rule as AllCertificates and returns every store once, and the records
// that could not be decoded.
func (c *Client) AllCertificateStores(ctx context.Context, queryString string) ([]CertificateStore, []RecordError, error) {
	p := pager{what: "certificate stores", limit: storePageSize, log: c.log}
	return collectAll(p, func(page int) ([]CertificateStore, []RecordError, int, error) {
		sp, err := c.storePage(ctx, StoreQuery{QueryString: queryString, PageReturned: page, ReturnLimit: storePageSize}, page)
		if err != nil {
			return nil, nil, 0, err
		}
		return sp.Stores, sp.Odd, sp.Total, nil
	}, func(s *CertificateStore) (string, bool) { return s.Id, true })
}

// GetCertificateStore calls GET /CertificateStores/{id}.
func (c *Client) GetCertificateStore(ctx context.Context, id string) (*CertificateStore, error) {
	if id == "" {
		return nil, errors.New("get certificate store: empty store id")
	}
	var out CertificateStore
	err := c.do(ctx, request{method: http.MethodGet, endpoint: "/CertificateStores/{id}",
		path: "/CertificateStores/" + url.PathEscape(id), out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// CertificateStoreTypes calls GET /CertificateStoreTypes (paged with
// cstquery.*, as the OpenAPI file names the parameters; the docs give a
// default page of 50) and returns every store type once, and the records
// that could not be decoded.
func (c *Client) CertificateStoreTypes(ctx context.Context) ([]CertificateStoreType, []RecordError, error) {
	p := pager{what: "certificate store types", limit: storePageSize, log: c.log}
	return collectAll(p, func(page int) ([]CertificateStoreType, []RecordError, int, error) {
		return listPage[storeTypeWire, CertificateStoreType](ctx, c, "/CertificateStoreTypes", pageQuery("cstquery.", "", page, storePageSize), page, nil)
	}, func(t *CertificateStoreType) (int, bool) { return t.StoreType, true })
}

// CertificateRequest calls GET /Workflow/Certificates/{id}: the state of a
// request that needed approval at the CA. An unknown id is an APIError
// with status 404.
func (c *Client) CertificateRequest(ctx context.Context, requestID int) (*CertificateRequest, error) {
	var out CertificateRequest
	err := c.do(ctx, request{method: http.MethodGet, endpoint: "/Workflow/Certificates/{id}",
		path: "/Workflow/Certificates/" + strconv.Itoa(requestID), out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// JobHistory pages through GET /OrchestratorJobs/JobHistory for the records
// q selects and returns them, and the records that could not be decoded.
func (c *Client) JobHistory(ctx context.Context, q JobHistoryQuery) ([]JobHistory, []RecordError, error) {
	limit := q.ReturnLimit
	if limit <= 0 {
		limit = certPageSize
	}
	p := pager{what: "job history", limit: limit, log: c.log}
	return collectAll(p, func(page int) ([]JobHistory, []RecordError, int, error) {
		v := pageQuery("pq.", q.QueryString, page, limit)
		if q.SortField != "" {
			v.Set("pq.sortField", q.SortField)
			v.Set("pq.sortAscending", strconv.Itoa(q.SortAscending))
		}
		return listPage[jobHistoryWire, JobHistory](ctx, c, "/OrchestratorJobs/JobHistory", v, page, nil)
	}, func(j *JobHistory) (int64, bool) { return j.JobHistoryId, j.JobHistoryId != 0 })
}

// Renew calls POST /Enrollment/Renew (with collectionId when the client has
// one). A zero Timestamp is set to now. It is sent once (a second time only
// with a new token after Command refused an OAuth token with 401): after an
// error, Classify says whether the renewal may have happened. A 200 answer whose ids are not integers is an APIError
// of class Unknown; Outcome classifies the others.
func (c *Client) Renew(ctx context.Context, req RenewalRequest) (*RenewalResponse, error) {
	if (req.CertificateId == 0) == (req.Thumbprint == "") {
		return nil, errors.New("renew: set exactly one of CertificateId and Thumbprint")
	}
	if req.Timestamp.IsZero() {
		req.Timestamp = c.now()
	}
	var out RenewalResponse
	err := c.do(ctx, request{method: http.MethodPost, endpoint: "/Enrollment/Renew", path: "/Enrollment/Renew",
		query: c.withCollection(url.Values{}), body: req, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Deploy calls POST /Enrollment/PFX/Deploy, which creates one management job
// per store in SuccessfulStores. It is sent once (a second time only with a
// new token after Command refused an OAuth token with 401): after an error,
// Classify says whether jobs may have been created.
func (c *Client) Deploy(ctx context.Context, req DeployRequest) (*DeployResponse, error) {
	if req.CertificateId == 0 && req.RequestId == 0 {
		return nil, errors.New("deploy: set CertificateId or RequestId")
	}
	switch {
	case len(req.Stores) > 0 && (len(req.StoreIds) > 0 || len(req.StoreTypes) > 0):
		return nil, errors.New("deploy: set Stores or the obsolete StoreIds and StoreTypes, not both")
	case len(req.Stores) == 0 && len(req.StoreIds) == 0:
		return nil, errors.New("deploy: no stores")
	}
	var out DeployResponse
	err := c.do(ctx, request{method: http.MethodPost, endpoint: "/Enrollment/PFX/Deploy", path: "/Enrollment/PFX/Deploy",
		body: req, out: &out, secrets: nonEmpty(req.Password)})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// LegacyDeployRequest rewrites req from the Stores shape into the obsolete
// StoreIds + StoreTypes shape that servers before 9.4 understand. There,
// alias, overwrite and properties are given once per store type, so all
// stores of one type must agree on them. storeTypes maps a store id (any
// case) to its CertStoreType. A request already in the obsolete shape is
// returned unchanged.
func LegacyDeployRequest(req DeployRequest, storeTypes map[string]int) (DeployRequest, error) {
	if len(req.Stores) == 0 {
		if len(req.StoreIds) > 0 {
			return req, nil
		}
		return req, errors.New("legacy deploy request: no stores")
	}
	types := make(map[string]int, len(storeTypes))
	for id, t := range storeTypes {
		types[normGUID(id)] = t
	}
	out := req
	out.Stores = nil
	out.StoreIds = make([]string, 0, len(req.Stores))
	out.StoreTypes = nil
	first := make(map[int]DeployStore) // store type -> the store that set its alias etc.
	for _, s := range req.Stores {
		t, ok := types[normGUID(s.StoreId)]
		if !ok {
			return req, fmt.Errorf("legacy deploy request: store %s: store type unknown", s.StoreId)
		}
		out.StoreIds = append(out.StoreIds, s.StoreId)
		f, seen := first[t]
		if !seen {
			first[t] = s
			lt := LegacyStoreType{StoreTypeId: t, Alias: s.Alias, Overwrite: s.Overwrite}
			if len(s.Properties) > 0 {
				lt.Properties = []map[string]any{s.Properties}
			}
			out.StoreTypes = append(out.StoreTypes, lt)
			continue
		}
		var what string
		switch {
		case f.Alias != s.Alias:
			what = "alias"
		case f.Overwrite != s.Overwrite:
			what = "overwrite"
		case !sameProperties(f.Properties, s.Properties):
			what = "properties"
		default:
			continue
		}
		return req, fmt.Errorf("legacy deploy request: stores %s and %s (store type %d) disagree on %s; servers before 9.4 take one %s per store type", f.StoreId, s.StoreId, t, what, what)
	}
	return out, nil
}

func sameProperties(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}
