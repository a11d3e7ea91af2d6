package journal

// recentLineages keeps the committed state of the lineages written last, up
// to a fixed number, so the runner's next write of a lineage it has just
// begun (the Renew answer, the deploy outcome) or a read of it finds it in
// memory instead of reading and decoding it from the file. The oldest is
// dropped first; memory stays bounded however large the file.
type recentLineages struct {
	byRoot map[int]Lineage
	order  []int // roots in the order they were first kept, a ring once full
	next   int   // the slot of order to reuse next once full
	max    int
}

// recentCapacity is enough for every lineage a run has in flight at once
// (concurrency) and those it touched moments ago.
const recentCapacity = 4096

func newRecentLineages(max int) recentLineages {
	return recentLineages{byRoot: make(map[int]Lineage), max: max}
}

func (r *recentLineages) get(root int) (Lineage, bool) {
	l, ok := r.byRoot[root]
	return l, ok
}

// put keeps l as the committed state of root. The caller hands l over: it
// must not change it afterwards.
func (r *recentLineages) put(root int, l Lineage) {
	if r.max <= 0 {
		return
	}
	if _, ok := r.byRoot[root]; !ok {
		if len(r.order) < r.max {
			r.order = append(r.order, root)
		} else {
			delete(r.byRoot, r.order[r.next])
			r.order[r.next] = root
			r.next = (r.next + 1) % r.max
		}
	}
	r.byRoot[root] = l
}

// drop forgets root, so it is read from the file again. Its slot in order
// stays until reused. The writer drops only after a failed commit, after
// which nothing is put; were root put again, the reuse of that old slot
// would forget it early, which costs a read of the file and nothing else.
func (r *recentLineages) drop(root int) { delete(r.byRoot, root) }
