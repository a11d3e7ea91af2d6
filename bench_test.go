package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// `runner bench` prints every figure issue 10 asks for, for each night;
// their values depend on the machine and are not checked, only that the
// runs did what they should (every row succeeded, the second night renewed
// nothing).
func TestBenchPrintsItsFigures(t *testing.T) {
	bin := runnerBinary(t) // a test binary cannot be `runner sim`
	figures := []string{"round trip:", "rows", "wall", "ideal", "ratio ideal/wall", "against the round trip", "throughput",
		"requests/certificate", "beyond preflight", "request rate", "renew→deploy gap", "runner CPU/row", "runner peak RSS",
		"journal commits/certificate", "kfsim CPU/request"}
	tests := []struct {
		name      string
		args      []string
		want      []string // besides the figures
		wantNight []string // per night, in order
	}{
		{name: "two nights in this process", args: []string{"--nights", "2"},
			want:      []string{"1 process", "first night (all due)"},
			wantNight: []string{"40: 40 succeeded, 0 failed, 0 skipped", "40: 0 succeeded, 0 failed, 40 skipped"}},
		{name: "two shard processes", args: []string{"--shards", "2", "--force"},
			want:      []string{"2 shard processes", "--force", "(largest shard)"},
			wantNight: []string{"40: 40 succeeded, 0 failed, 0 skipped"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			args := append([]string{"bench", "--runner-binary", bin, "--certificates", "20", "--stores", "2", "--latency", "1ms", "--concurrency", "4",
				"--state-dir", filepath.Join(t.TempDir(), "bench")}, tt.args...)
			res := runMain(t, ctx, args...)
			if res.code != exitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, res.stdout)
				}
			}
			nights := strings.Split(res.stdout, "\nnight ")[1:]
			if len(nights) != len(tt.wantNight) {
				t.Fatalf("%d nights printed, want %d:\n%s", len(nights), len(tt.wantNight), res.stdout)
			}
			for i, night := range nights {
				if !strings.Contains(night, tt.wantNight[i]) {
					t.Errorf("night %d lacks %q:\n%s", i+1, tt.wantNight[i], night)
				}
				for _, f := range figures[1:] {
					if !strings.Contains(night, "  "+f) {
						t.Errorf("night %d lacks the figure %q:\n%s", i+1, f, night)
					}
				}
			}
			if !strings.Contains(res.stdout, figures[0]) {
				t.Errorf("output lacks %q:\n%s", figures[0], res.stdout)
			}
		})
	}
}

// Bad flags are refused before the simulator is started.
func TestBenchRefusesBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no certificates", args: []string{"--certificates", "0"}, want: "--certificates 0"},
		{name: "negative latency", args: []string{"--latency", "-1ms"}, want: "--latency"},
		{name: "no concurrency", args: []string{"--concurrency", "0"}, want: "--concurrency"},
		{name: "negative rate", args: []string{"--rate", "-5"}, want: "--rate: must be 0 (unlimited) or more, got -5"},
		{name: "no shards", args: []string{"--shards", "0"}, want: "--shards"},
		{name: "no nights", args: []string{"--nights", "0"}, want: "--nights"},
		{name: "an argument", args: []string{"plan.csv"}, want: "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runMain(t, context.Background(), append([]string{"bench", "--runner-binary", "/nonexistent/runner"}, tt.args...)...)
			if res.code != exitUsage || !strings.Contains(res.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", res.code, res.stderr, exitUsage, tt.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{name: "one value", sorted: ms(7), p: 0.99, want: 7 * time.Millisecond},
		{name: "median of four (nearest rank)", sorted: ms(1, 2, 3, 4), p: 0.5, want: 2 * time.Millisecond},
		{name: "p99 of 100", sorted: ms(hundred...), p: 0.99, want: 99 * time.Millisecond},
		{name: "p50 of 100", sorted: ms(hundred...), p: 0.50, want: 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

// The gap pairs each renewal with the first deploy of its new certificate;
// renewals without a new certificate, and later deploys, are left out.
func TestRenewDeployGaps(t *testing.T) {
	at := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	l := &benchLedger{
		Renewals: []benchRenewal{{at, 2001}, {at.Add(time.Second), 2002}, {at, 0}}, // 0: pending, nothing to deploy yet
		Deploys: []benchDeploy{{at.Add(1030 * time.Millisecond), 2002}, {at.Add(25 * time.Millisecond), 2001},
			{at.Add(900 * time.Millisecond), 2001}, {at, 9999}},
	}
	got := renewDeployGaps(l)
	want := []time.Duration{25 * time.Millisecond, 30 * time.Millisecond}
	if !slices.Equal(got, want) {
		t.Errorf("gaps = %v, want %v", got, want)
	}
}
