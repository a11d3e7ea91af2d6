package kfsim

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkRenewDeploy measures the simulator's own cost of what runner
// asks per certificate (a page read of 100 certificates by id for every
// 100, a Renew and a Deploy to its two stores), called in process without
// a network, in worlds of growing size: the cost per certificate must not
// grow with the world (issue 10: kfsim is never the bottleneck).
//
//	go test -run '^$' -bench BenchmarkRenewDeploy -benchtime 20000x ./kfsim/
func BenchmarkRenewDeploy(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("certificates=%d", n), func(b *testing.B) {
			if b.N > n {
				b.Skipf("%d iterations for a world of %d certificates", b.N, n)
			}
			sim := benchWorld(b, n, realClock{})
			b.ResetTimer()
			for i := range b.N {
				id := 1001 + i
				if i%100 == 0 {
					var q []string
					for k := id; k < id+100; k++ {
						q = append(q, "Id -eq "+strconv.Itoa(k))
					}
					do(b, sim, "GET", "/KeyfactorAPI/Certificates?includeLocations=true&pq.includeExpired=true&pq.returnLimit=100&pq.queryString="+url.QueryEscape(strings.Join(q, " OR ")), nil)
				}
				var renewed struct{ KeyfactorId int }
				if err := json.Unmarshal(do(b, sim, "POST", "/KeyfactorAPI/Enrollment/Renew", fmt.Sprintf(`{"CertificateId":%d}`, id)), &renewed); err != nil {
					b.Fatal(err)
				}
				do(b, sim, "POST", "/KeyfactorAPI/Enrollment/PFX/Deploy", fmt.Sprintf(`{"CertificateId":%d,"Stores":[{"StoreId":"00000000-0000-4000-8000-000000000001","Alias":"a"},{"StoreId":"00000000-0000-4000-8000-000000000002","Alias":"a"}]}`, renewed.KeyfactorId))
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/certificate")
		})
	}
}
