package runner_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"runner/journal"
	"runner/report"
	"runner/runner"
)

// Three shards over one plan, each with its own state file (its own pod
// and volume): every row is handled by exactly one shard, nothing is
// renewed twice, and each report says which shard it is.
func TestShardsSplitAPlanWithoutOverlap(t *testing.T) {
	var rows []string
	for i := range 30 {
		rows = append(rows, row(2000+i, []string{storeA, storeB, storeC}[i%3]))
	}
	w := newWorld(t, planText(rows...))
	handled := map[int]int{}
	for i := 1; i <= 3; i++ {
		j, err := journal.Open(filepath.Join(w.dir, fmt.Sprintf("shard%d.db", i)), journal.Options{Command: w.client.BaseURL()})
		if err != nil {
			t.Fatal(err)
		}
		w.journal = j
		w.cfg.Shard = runner.Shard{Index: i, Count: 3}
		rep := w.mustRun()
		j.Close()
		if rep.Run.Shard == nil || rep.Run.Shard.Index != i || rep.Run.Shard.Count != 3 || rep.Run.Shard.Rows != len(rep.Rows) || rep.Run.Shard.PlanRows != 30 {
			t.Errorf("shard %d: report says %+v with %d rows", i, rep.Run.Shard, len(rep.Rows))
		}
		if len(rep.Rows) == 0 || len(rep.Rows) == 30 {
			t.Errorf("shard %d took %d of 30 rows", i, len(rep.Rows))
		}
		for _, r := range rep.Rows {
			handled[r.Line]++
			if r.Status != report.Succeeded {
				t.Errorf("shard %d line %d: %s %s", i, r.Line, r.Status, r.Detail)
			}
		}
	}
	for _, pr := range w.plan.Rows {
		if handled[pr.Line] != 1 {
			t.Errorf("line %d handled by %d shards", pr.Line, handled[pr.Line])
		}
	}
	for i := range 30 {
		if n := renewalsOf(w.sim.Ledger(), 2000+i); n != 1 {
			t.Errorf("certificate %d renewed %d times", 2000+i, n)
		}
	}
}

// The assignment is a stable hash of the plan's certificate reference:
// the same in every process, on every machine, every night.
func TestShardAssignmentIsStable(t *testing.T) {
	// The expected shards were computed apart from the code: FNV-1a 64 of
	// the key, modulo the count, plus one.
	for key, want := range map[string][3]int{ // shard among 2, 3 and 7
		"id:4101": {1, 3, 1},
		"id:4102": {2, 2, 5},
		"id:1":    {2, 3, 4},
		"thumbprint:AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12": {1, 2, 5},
	} {
		for i, n := range []int{2, 3, 7} {
			if got := runner.ShardOf(key, n); got != want[i] {
				t.Errorf("ShardOf(%q, %d) = %d, want %d", key, n, got, want[i])
			}
		}
	}
}
