package keyfactor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
)

// CertificateQuery selects one page of GET /Certificates.
type CertificateQuery struct {
	QueryString   string // pq.queryString, e.g. `Thumbprint -eq "AB12…"`
	PageReturned  int    // pq.pageReturned, 1-based; 0 leaves the server default
	ReturnLimit   int    // pq.returnLimit; 0 leaves the server default
	SortField     string // pq.sortField
	SortAscending int    // pq.sortAscending: 0 ascending, 1 descending; sent only with SortField
	// IncludeLocations fills Certificate.Locations.
	IncludeLocations bool
	// IncludeExpired also returns expired certificates (pq.includeExpired).
	IncludeExpired bool
}

// StoreQuery selects one page of GET /CertificateStores.
type StoreQuery struct {
	QueryString  string // certificateStoreQuery.queryString, e.g. `ContainerId -eq 3`
	PageReturned int    // certificateStoreQuery.pageReturned, 1-based; 0 leaves the server default
	ReturnLimit  int    // certificateStoreQuery.returnLimit; 0 leaves the server default
}

// StatusEndpoints calls GET /Status/Endpoints, the endpoints the caller may
// use. Keyfactor's own tools use it to check a connection and credentials.
func (c *Client) StatusEndpoints(ctx context.Context) ([]string, error) {
	var out []string
	err := c.do(ctx, request{method: http.MethodGet, endpoint: "/Status/Endpoints", path: "/Status/Endpoints", out: &out})
	return out, err
}

// MyPermissions calls GET /Security/My/Permissions and returns the caller's
// permissions, e.g. "/certificate_stores/schedule/4/". See HasPermission.
func (c *Client) MyPermissions(ctx context.Context) ([]string, error) {
	var out MyPermissions
	err := c.do(ctx, request{method: http.MethodGet, endpoint: "/Security/My/Permissions", path: "/Security/My/Permissions", out: &out})
	if err != nil {
		return nil, err
	}
	return out.Permissions, nil
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
		path: "/Certificates/" + strconv.Itoa(id), query: q, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ListCertificates calls GET /Certificates and returns one page.
func (c *Client) ListCertificates(ctx context.Context, q CertificateQuery) ([]Certificate, error) {
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
	var out []Certificate
	err := c.do(ctx, request{method: http.MethodGet, endpoint: "/Certificates", path: "/Certificates", query: v, out: &out})
	return out, err
}

// ListCertificateStores calls GET /CertificateStores and returns one page.
func (c *Client) ListCertificateStores(ctx context.Context, q StoreQuery) ([]CertificateStore, error) {
	v := pageQuery("certificateStoreQuery.", q.QueryString, q.PageReturned, q.ReturnLimit)
	var out []CertificateStore
	err := c.do(ctx, request{method: http.MethodGet, endpoint: "/CertificateStores", path: "/CertificateStores", query: v, out: &out})
	return out, err
}

// pageQuery builds the paged-query parameters that Command's list
// endpoints share, under each endpoint's own prefix ("pq.",
// "certificateStoreQuery."); zero values are left to the server's default.
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

// storePageSize is the page size AllCertificateStores asks for.
const storePageSize = 100

// AllCertificateStores pages through GET /CertificateStores (100 a page)
// until a page comes back short or empty.
func (c *Client) AllCertificateStores(ctx context.Context, queryString string) ([]CertificateStore, error) {
	var all []CertificateStore
	seen := make(map[string]bool)
	for page := 1; ; page++ {
		stores, err := c.ListCertificateStores(ctx, StoreQuery{QueryString: queryString, PageReturned: page, ReturnLimit: storePageSize})
		if err != nil {
			return nil, fmt.Errorf("list certificate stores page %d: %w", page, err)
		}
		if len(stores) > 0 && seen[strings.ToLower(stores[0].Id)] {
			// A server that ignores pageReturned sends page 1 forever.
			return nil, fmt.Errorf("list certificate stores page %d: the server repeated store %s from an earlier page; it seems to ignore certificateStoreQuery.pageReturned", page, stores[0].Id)
		}
		for _, s := range stores {
			seen[strings.ToLower(s.Id)] = true
		}
		all = append(all, stores...)
		if len(stores) < storePageSize {
			return all, nil
		}
	}
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

// Renew calls POST /Enrollment/Renew. A zero Timestamp is set to now. It is
// sent once: after an error, Classify says whether the renewal may have
// happened.
func (c *Client) Renew(ctx context.Context, req RenewalRequest) (*RenewalResponse, error) {
	if (req.CertificateId == 0) == (req.Thumbprint == "") {
		return nil, errors.New("renew: set exactly one of CertificateId and Thumbprint")
	}
	if req.Timestamp.IsZero() {
		req.Timestamp = c.now()
	}
	req.Timestamp = req.Timestamp.UTC()
	var out RenewalResponse
	err := c.do(ctx, request{method: http.MethodPost, endpoint: "/Enrollment/Renew", path: "/Enrollment/Renew", body: req, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Deploy calls POST /Enrollment/PFX/Deploy, which creates one management job
// per store in SuccessfulStores. It is sent once: after an error, Classify
// says whether jobs may have been created.
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
	if req.JobTime != nil {
		t := req.JobTime.UTC()
		req.JobTime = &t
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
		types[strings.ToLower(id)] = t
	}
	out := req
	out.Stores = nil
	out.StoreIds = make([]string, 0, len(req.Stores))
	out.StoreTypes = nil
	first := make(map[int]DeployStore) // store type -> the store that set its alias etc.
	for _, s := range req.Stores {
		t, ok := types[strings.ToLower(s.StoreId)]
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
