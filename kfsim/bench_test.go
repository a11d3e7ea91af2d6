package kfsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchWorld is a simulator on clock holding n certificates in 2 stores
// each, built with SyntheticTargets and SeedFixture as `runner bench` builds
// it, with one user for do.
func benchWorld(tb testing.TB, n int, clock Clock) *Server {
	tb.Helper()
	s := New(Options{Clock: clock, Seed: 1, JobDelay: time.Second})
	fx := SeedFixture(SyntheticTargets(n, 2), clock.Now())
	fx.Users = []User{{Username: "bench", Password: "pw", Permissions: []string{"/"}}}
	if err := s.Load(fx); err != nil {
		tb.Fatal(err)
	}
	return s
}

// do serves one request in process as benchWorld's user and fails on an
// unexpected status. A string body is sent as it is, anything else as
// JSON.
func do(tb testing.TB, s *Server, method, target string, body any) []byte {
	tb.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	req := httptest.NewRequest(method, target, bytes.NewReader(raw))
	req.SetBasicAuth("bench", "pw")
	req.Header.Set("x-keyfactor-requested-with", "APIClient")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		tb.Fatalf("%s %s: %d %s", method, target, rec.Code, rec.Body.String())
	}
	return rec.Body.Bytes()
}

// BenchmarkRequestCost shows the simulator's cost per request flat in the
// size of the world: lookups by id and thumbprint and `Id -eq … OR …`
// reads go through indexes, and settling jobs costs only the jobs due.
//
//	go test -run XXX -bench RequestCost -benchtime 2000x ./kfsim/
func BenchmarkRequestCost(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		clock := NewManualClock(t0)
		s := benchWorld(b, n, clock)
		ids := make([]string, 50)
		for i := range ids {
			ids[i] = "Id -eq " + strconv.Itoa(1001+(i*n)/50)
		}
		orQuery := "/KeyfactorAPI/Certificates?pq.includeLocations=true&pq.queryString=" + url.QueryEscape(strings.Join(ids, " OR "))
		var thumb string
		s.mu.Lock()
		thumb = s.world.byID[1001+n/2].Thumbprint
		s.mu.Unlock()
		b.Run(fmt.Sprintf("get-by-id/%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				do(b, s, "GET", "/KeyfactorAPI/Certificates/"+strconv.Itoa(1001+i%n)+"?includeLocations=true", nil)
			}
		})
		b.Run(fmt.Sprintf("thumbprint-query/%d", n), func(b *testing.B) {
			target := "/KeyfactorAPI/Certificates?pq.queryString=" + url.QueryEscape(`Thumbprint -eq "`+thumb+`"`)
			for i := 0; i < b.N; i++ {
				do(b, s, "GET", target, nil)
			}
		})
		b.Run(fmt.Sprintf("or-of-50-ids/%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				do(b, s, "GET", orQuery, nil)
			}
		})
		b.Run(fmt.Sprintf("renew-deploy-settle/%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				old := 1001 + i%n
				var rn wireRenewalResponse
				if err := json.Unmarshal(do(b, s, "POST", "/KeyfactorAPI/Enrollment/Renew", wireRenewalRequest{CertificateId: old}), &rn); err != nil {
					b.Fatal(err)
				}
				do(b, s, "POST", "/KeyfactorAPI/Enrollment/PFX/Deploy", wireDeployRequest{CertificateId: rn.KeyfactorId,
					Stores: []wireDeployStore{{StoreId: "00000000-0000-4000-8000-000000000001", Alias: "app" + strconv.Itoa(old), Overwrite: true}}})
				clock.Advance(time.Second) // the job runs at the next request
			}
		})
	}
}

// BenchmarkSeed builds and loads a world of n certificates in 2 stores:
// linear in n.
func BenchmarkSeed(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchWorld(b, n, NewManualClock(t0))
			}
		})
	}
}

// TestRequestCostIsIndexed checks, without timing anything, that the
// indexed reads do not visit the world: the candidates of an OR of ids and
// of a thumbprint are those records alone, in a world of 20,000.
func TestRequestCostIsIndexed(t *testing.T) {
	s := benchWorld(t, 20_000, NewManualClock(t0))
	s.mu.Lock()
	thumb := s.world.byID[5000].Thumbprint
	s.mu.Unlock()
	tests := []struct {
		q    string
		want []int
	}{
		{"Id -eq 1001 OR Id -eq 15000 OR Id -eq 99", []int{1001, 15000}},
		{`Thumbprint -eq "` + thumb + `"`, []int{5000}},
	}
	for _, tc := range tests {
		q, err := parseQuery(tc.q, certificateFields, t0)
		if err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		ids, ok := q.candidates(s.world.lookup)
		s.mu.Unlock()
		if !ok || !slices.Equal(ids, tc.want) {
			t.Errorf("%s: candidates %v, %v; want %v", tc.q, ids, ok, tc.want)
		}
	}
	var got []wireCertificate
	if err := json.Unmarshal(do(t, s, "GET", "/KeyfactorAPI/Certificates?pq.queryString="+url.QueryEscape(`Thumbprint -eq "`+thumb+`"`), nil), &got); err != nil || len(got) != 1 || got[0].Id != 5000 {
		t.Errorf("thumbprint query = %+v, %v", got, err)
	}
}
