package runner_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// benchPlan is n certificates with three stores each.
func benchPlan(n int) string {
	var b strings.Builder
	b.WriteString("certificate_id,store_id,alias,overwrite\n")
	for i := range n {
		for s := range 3 {
			fmt.Fprintf(&b, "%d,%08x-0000-4000-8000-%012x,cert%d,true\n", 10000+i, s+1, i%50, i)
		}
	}
	return b.String()
}

// BenchmarkRun renews and deploys a whole plan against kfsim over loopback
// HTTP: preflight, due check, renew→deploy and the journal writes. With
// latency it shows what --concurrency buys against a slow Command.
func BenchmarkRun(b *testing.B) {
	for _, tc := range []struct {
		certs       int
		latency     time.Duration
		concurrency int
	}{
		{1000, 0, 8},
		{200, 20 * time.Millisecond, 1},
		{200, 20 * time.Millisecond, 8},
		{200, 20 * time.Millisecond, 32},
	} {
		b.Run(fmt.Sprintf("certs=%d/latency=%s/concurrency=%d", tc.certs, tc.latency, tc.concurrency), func(b *testing.B) {
			text := benchPlan(tc.certs)
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				w := newWorld(b, text)
				w.sim.SetLatency(tc.latency, 0)
				w.cfg.Concurrency = tc.concurrency
				b.StartTimer()
				rep := w.mustRun()
				b.StopTimer()
				if c := rep.Counts(); c["succeeded"] != 3*tc.certs {
					b.Fatalf("counts %v", c)
				}
				b.StartTimer()
			}
		})
	}
}
