package journal

import "slices"

// certIndex maps every certificate id of a lineage to its root, in memory.
// What the file held at Open is a slice sorted by certificate id, filled in
// the order a cursor reads the index bucket, so loading 100,000 lineages
// costs no hashing; what changed since goes into a map, which then stays as
// small as the run.
type certIndex struct {
	loaded  []indexEntry
	changed map[int]int // certificate id → root, 0 when it left its lineage
}

type indexEntry struct{ cert, root int }

func newCertIndex() certIndex { return certIndex{changed: map[int]int{}} }

// load appends an entry read from the file; entries come in id order.
func (x *certIndex) load(cert, root int) {
	x.loaded = append(x.loaded, indexEntry{cert, root})
}

func (x *certIndex) get(cert int) (root int, ok bool) {
	if root, ok := x.changed[cert]; ok {
		return root, root != 0
	}
	i, found := slices.BinarySearchFunc(x.loaded, cert, func(e indexEntry, c int) int { return e.cert - c })
	if !found {
		return 0, false
	}
	return x.loaded[i].root, true
}

func (x *certIndex) set(cert, root int) { x.changed[cert] = root }
func (x *certIndex) remove(cert int)    { x.changed[cert] = 0 }
