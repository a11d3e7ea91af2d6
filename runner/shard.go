package runner

import (
	"fmt"
	"hash/fnv"

	"runner/plan"
)

// Shard selects a stable share of a plan's certificates, so N machines or
// pods split one plan with no overlap and no coordination.
type Shard struct {
	Index int // 1-based
	Count int // 0: no sharding
}

// String renders "2/3".
func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Valid reports whether the shard can be used (zero means all).
func (s Shard) Valid() error {
	if s.Count == 0 && s.Index == 0 {
		return nil
	}
	if s.Count < 1 || s.Index < 1 || s.Index > s.Count {
		return fmt.Errorf("shard %d/%d: want 1 ≤ I ≤ N", s.Index, s.Count)
	}
	return nil
}

// ShardOf returns the 1-based shard a plan job belongs to among count shards.
// It hashes the plan's certificate reference (the job key, "id:4101" or
// "thumbprint:…") with FNV-1a, so the answer is the same in every process,
// on every machine, every night.
func ShardOf(key string, count int) int {
	h := fnv.New64a()
	h.Write([]byte(key))
	return int(h.Sum64()%uint64(count)) + 1
}

// jobs returns the jobs of the shard, all of them without sharding.
func (s Shard) jobs(all []*plan.Job) []*plan.Job {
	if s.Count == 0 {
		return all
	}
	var out []*plan.Job
	for _, j := range all {
		if ShardOf(j.Key, s.Count) == s.Index {
			out = append(out, j)
		}
	}
	return out
}
