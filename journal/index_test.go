package journal

import (
	"slices"
	"testing"
)

// len counts the certificates indexed.
func (x *certIndex) len() int {
	n := len(x.loaded)
	for cert, root := range x.changed {
		_, inLoaded := slices.BinarySearchFunc(x.loaded, cert, func(e indexEntry, c int) int { return e.cert - c })
		switch {
		case root != 0 && !inLoaded:
			n++
		case root == 0 && inLoaded:
			n--
		}
	}
	return n
}

func TestCertIndex(t *testing.T) {
	x := newCertIndex()
	for _, e := range []indexEntry{{1, 1}, {2, 1}, {5, 5}, {9, 5}} {
		x.load(e.cert, e.root)
	}
	x.set(3, 1) // claimed since Open
	x.remove(9) // left its lineage since Open
	x.set(5, 5) // claimed again: no change
	x.remove(4) // never indexed
	tests := []struct {
		cert, root int
		ok         bool
	}{
		{1, 1, true}, {2, 1, true}, {3, 1, true}, {5, 5, true},
		{0, 0, false}, {4, 0, false}, {9, 0, false}, {10, 0, false},
	}
	for _, tt := range tests {
		if root, ok := x.get(tt.cert); root != tt.root || ok != tt.ok {
			t.Errorf("get(%d) = %d, %v; want %d, %v", tt.cert, root, ok, tt.root, tt.ok)
		}
	}
	if got := x.len(); got != 4 {
		t.Errorf("len = %d, want 4", got)
	}
}
