package mesh

import (
	"math"
	"math/bits"

	"github.com/hschendel/stl"
)

// vertexTable gives each distinct vertex (matched exactly, bit for bit, as admesh's
// exact pass does) a small integer id. It is an open-addressing hash table over the
// packed 96-bit key: no map of float structs, no per-vertex allocation.
type vertexTable struct {
	slots  []vertexSlot
	used   int
	next   uint32
	recent [recentSize]vertexSlot // direct-mapped cache of recent vertices; see id
}

// recentSize slots (256 KiB) stay in the CPU's cache. Neighbouring facets share
// vertices and files list them close together, so most lookups hit here and never
// touch the large table, whose slots are scattered by the hash.
const (
	recentBits = 14
	recentSize = 1 << recentBits
)

type vertexSlot struct {
	key [3]uint32
	id  uint32 // 0 = empty
}

func (t *vertexTable) init(expect int) {
	if t.used > 0 {
		return // already holds data: growing happens on demand
	}
	n := 1 << max(10, bits.Len(uint(expect))) // about 2 slots per distinct vertex of a closed mesh
	t.slots = make([]vertexSlot, n)
}

func hash3(k [3]uint32) uint64 {
	h := uint64(k[0])*0x9E3779B97F4A7C15 ^ uint64(k[1])*0xC2B2AE3D27D4EB4F ^ uint64(k[2])*0x165667B19E3779F9
	return h ^ h>>29
}

func (t *vertexTable) id(v stl.Vec3) uint32 {
	k := [3]uint32{math.Float32bits(v[0]), math.Float32bits(v[1]), math.Float32bits(v[2])}
	h := hash3(k)
	r := &t.recent[h>>(64-recentBits)]
	if r.id != 0 && r.key == k {
		return r.id
	}
	if (t.used+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.id == 0 {
			t.next++
			s.key, s.id = k, t.next
			t.used++
			*r = *s
			return s.id
		}
		if s.key == k {
			*r = *s
			return s.id
		}
	}
}

func (t *vertexTable) grow() {
	old := t.slots
	t.slots = make([]vertexSlot, len(old)*2)
	mask := uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.id == 0 {
			continue
		}
		i := hash3(s.key) & mask
		for t.slots[i].id != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// edgeTable counts, for each undirected edge, the facets that use it, and joins those
// facets into one part.
type edgeTable struct {
	slots []edgeSlot
	used  int
}

type edgeSlot struct {
	key   uint64 // low id << 32 | high id; 0 = empty (ids start at 1)
	face  uint32 // the first facet seen on this edge
	count uint16
	fwd   uint8 // how the first facet walked it: 1 from low to high
	back  uint8 // 1 if a second facet walked it the same way (a backwards edge)
}

func (t *edgeTable) init(expect int) {
	if t.used > 0 {
		return
	}
	t.slots = make([]edgeSlot, 1<<max(10, bits.Len(uint(expect))))
}

func (t *edgeTable) add(a, b, face uint32, parts *unionFind) {
	var fwd uint8 = 1
	if a > b {
		a, b, fwd = b, a, 0
	}
	key := uint64(a)<<32 | uint64(b)
	if (t.used+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	s := t.find(key)
	if s.key == 0 {
		*s = edgeSlot{key: key, face: face, count: 1, fwd: fwd}
		t.used++
		return
	}
	if s.count < math.MaxUint16 {
		s.count++
	}
	if s.count == 2 && s.fwd == fwd {
		s.back = 1
	}
	parts.union(s.face, face)
}

// localProbe bounds the search near an edge's home slot; see find.
const localProbe = 32

// find returns the slot holding key, or the empty slot where it belongs. An edge's
// home is near its lower vertex id, four slots per vertex: ids are handed out in the
// order vertices first appear, so edges a file mentions close together sit close
// together in the table and stay in cache, where a hash would miss the cache on
// nearly every edge. Many edges of one vertex (a fan of thousands of facets) would
// make one long cluster, so past localProbe slots the search continues from a hashed
// place instead. Nothing is ever deleted, so an empty slot within the local window
// proves the key was never sent on to the hashed place.
func (t *edgeTable) find(key uint64) *edgeSlot {
	mask := uint64(len(t.slots) - 1)
	low, high := key>>32, key&0xffffffff
	i := (low<<2 | uint64(uint32(high)*0x9E3779B9)>>30) & mask
	for range localProbe {
		s := &t.slots[i]
		if s.key == 0 || s.key == key {
			return s
		}
		i = (i + 1) & mask
	}
	h := key * 0x9E3779B97F4A7C15
	for i = (h ^ h>>31) & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.key == 0 || s.key == key {
			return s
		}
	}
}

func (t *edgeTable) grow() {
	old := t.slots
	t.slots = make([]edgeSlot, len(old)*2)
	for _, s := range old {
		if s.key != 0 {
			*t.find(s.key) = s
		}
	}
}

func (t *edgeTable) summary() (open, nonmanifold, backwards int) {
	for _, s := range t.slots {
		switch {
		case s.key == 0:
		case s.count == 1:
			open++
		case s.count > 2:
			nonmanifold++
		default:
			backwards += int(s.back)
		}
	}
	return open, nonmanifold, backwards
}

// unionFind groups facets into parts: shells connected through shared edges.
type unionFind struct{ parent []uint32 }

func (u *unionFind) grow(n int) {
	if cap(u.parent) < n {
		p := make([]uint32, len(u.parent), n)
		copy(p, u.parent)
		u.parent = p
	}
}

func (u *unionFind) add() { u.parent = append(u.parent, uint32(len(u.parent))) }

func (u *unionFind) find(x uint32) uint32 {
	for u.parent[x] != x {
		u.parent[x] = u.parent[u.parent[x]] // path halving
		x = u.parent[x]
	}
	return x
}

func (u *unionFind) union(a, b uint32) {
	ra, rb := u.find(a), u.find(b)
	if ra != rb {
		u.parent[max(ra, rb)] = min(ra, rb)
	}
}

func (u *unionFind) roots() int {
	n := 0
	for i, p := range u.parent {
		if uint32(i) == p {
			n++
		}
	}
	return n
}
