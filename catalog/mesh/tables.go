package mesh

import (
	"math"
	"math/bits"

	"github.com/hschendel/stl"
)

// Sizes. Tables are sized once from an estimate (see estimate.go) to hold it at
// three-quarters load, and grow by half when the estimate was short. Their lengths are
// not powers of two: a slot's home is taken from a hash by multiplication
// (bits.Mul64), so a table is as large as its estimate asks and no larger.
const (
	minSlots = 1 << 10
	// maxFaces is the most facets the topology can number: an edge slot keeps its
	// first facet in 28 bits. It is 13 GB of binary STL, far over any upload limit.
	maxFaces = 1<<28 - 1
)

// slotsFor is the table length that holds n entries at three-quarters load.
func slotsFor(n int) int { return max(minSlots, n+n/3+1) }

func full(used, slots int) bool { return (used+1)*4 > slots*3 }

// grown is the length a full table of n slots grows to: half again, or, for a table
// with a bound (most, a Stream's), the least of most, most/4, most/16 ... over n; 0
// when it is at its bound. So its last growth is from at most a quarter of the bound,
// and while it grows the old and new slots together are at most 1.25 times the bound
// (a table that starts over a quarter of its bound starts at it: see Stream.start).
func grown(n, most int) int {
	switch {
	case most == 0:
		return n + n/2
	case n >= most:
		return 0
	}
	k := 0 // the answer is most/4^k
	for most>>(2*k+2) > n {
		k++
	}
	if k > 0 && most>>(2*k) < n+n/2 { // a step of a few slots would rehash for little
		k--
	}
	return most >> (2 * k)
}

// vertexTable gives each distinct vertex (matched exactly, bit for bit, as admesh's
// exact pass does) a small integer id. It is an open-addressing hash table over the
// packed 96-bit key: no map of float structs, no per-vertex allocation.
type vertexTable struct {
	slots  []vertexSlot
	used   int
	next   uint32
	most   int // when not 0, the most slots: full there, set short and hand out id 0 (see Stream)
	grew   int // how often it grew
	short  bool
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

// init sizes the table for expect distinct vertices.
func (t *vertexTable) init(expect int) {
	if t.used > 0 {
		return // already holds data: growing happens on demand
	}
	t.slots = make([]vertexSlot, slotsFor(expect))
	hugePages(t.slots)
}

func hash3(k [3]uint32) uint64 {
	h := uint64(k[0])*0x9E3779B97F4A7C15 ^ uint64(k[1])*0xC2B2AE3D27D4EB4F ^ uint64(k[2])*0x165667B19E3779F9
	return h ^ h>>29
}

// home maps a hash onto [0, n).
func home(h uint64, n int) int {
	i, _ := bits.Mul64(h, uint64(n))
	return int(i)
}

func (t *vertexTable) id(v stl.Vec3) uint32 {
	k := [3]uint32{math.Float32bits(v[0]), math.Float32bits(v[1]), math.Float32bits(v[2])}
	id, added := t.idKey(k, hash3(k), t.next+1)
	if added {
		t.next++
	}
	return id
}

// idKey is id for a vertex given as its key and the key's hash3; a vertex not seen
// before gets the id fresh (never 0), and added is true.
func (t *vertexTable) idKey(k [3]uint32, h uint64, fresh uint32) (id uint32, added bool) {
	r := &t.recent[h>>(64-recentBits)]
	if r.id != 0 && r.key == k {
		return r.id, false
	}
	if full(t.used, len(t.slots)) {
		n := grown(len(t.slots), t.most)
		if n == 0 {
			t.short = true
			return 0, false
		}
		t.grow(n)
	}
	for i := home(h, len(t.slots)); ; {
		s := &t.slots[i]
		if s.id == 0 {
			s.key, s.id = k, fresh
			t.used++
			*r = *s
			return s.id, true
		}
		if s.key == k {
			*r = *s
			return s.id, false
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

func (t *vertexTable) grow(n int) {
	t.grew++
	old := t.slots
	t.slots = make([]vertexSlot, n)
	hugePages(t.slots)
	for _, s := range old {
		if s.id == 0 {
			continue
		}
		i := home(hash3(s.key), len(t.slots))
		for t.slots[i].id != 0 {
			if i++; i == len(t.slots) {
				i = 0
			}
		}
		t.slots[i] = s
	}
}

// edgeTable counts, for each undirected edge, the facets that use it, and joins those
// facets into one part.
type edgeTable struct {
	slots []edgeSlot
	used  int
	most  int // when not 0, the most slots: full there, set short and count nothing more (see Stream)
	grew  int // how often it grew
	short bool
}

// edgeSlot is 12 bytes: the edge's two vertex ids and what is known of it.
type edgeSlot struct {
	low, high uint32 // low < high; low 0 = empty (ids start at 1)
	info      uint32 // first facet (28 bits), then count (2 bits: 1, 2, 3 = more), fwd, back
}

const (
	faceMask   = 1<<28 - 1
	countShift = 28
	countMask  = 3 << countShift
	fwdBit     = 1 << 30 // the first facet walked the edge from low to high
	backBit    = 1 << 31 // a second facet walked it the same way (a backwards edge)
)

// init sizes the table for expect edges.
func (t *edgeTable) init(expect int) {
	if t.used > 0 {
		return
	}
	t.slots = make([]edgeSlot, slotsFor(expect))
	hugePages(t.slots)
}

// add counts face on the edge a-b; when another facet used the edge before, it
// reports that facet (the first), for the caller to join the two into one part.
func (t *edgeTable) add(a, b, face uint32) (first uint32, shared bool) {
	var fwd uint32 = fwdBit
	if a > b {
		a, b, fwd = b, a, 0
	}
	if full(t.used, len(t.slots)) {
		n := grown(len(t.slots), t.most)
		if n == 0 {
			t.short = true
			return 0, false
		}
		t.grow(n)
	}
	s := t.find(a, b)
	if s.low == 0 {
		*s = edgeSlot{low: a, high: b, info: face | 1<<countShift | fwd}
		t.used++
		return 0, false
	}
	switch s.info & countMask {
	case 1 << countShift:
		s.info += 1 << countShift
		if s.info&fwdBit == fwd {
			s.info |= backBit
		}
	case 2 << countShift:
		s.info += 1 << countShift
	}
	return s.info & faceMask, true
}

// localProbe bounds the search near an edge's home slot; see find.
const localProbe = 32

// find returns the slot holding the edge, or the empty slot where it belongs. Edges
// of nearby lower vertex ids sit together: ids are handed out in the order vertices
// first appear, so edges a file mentions close together stay in cache, where a hash
// would miss the cache on nearly every edge. So ids are taken in blocks of
// blockVertices; a block's home is hashed, and each vertex has a few slots in it. Many
// edges of one vertex (a fan of thousands of facets) would make one long cluster, so
// past localProbe slots the search continues from a hashed place instead. Nothing is
// ever deleted, so an empty slot within the local window proves the edge was never
// sent on to the hashed place.
func (t *edgeTable) find(low, high uint32) *edgeSlot {
	n := len(t.slots)
	block := uint64(low/blockVertices+1) * 0x9E3779B97F4A7C15
	i := home(block^block>>29, n) + int(low%blockVertices)<<2 + int(high*0x9E3779B9>>30)
	for i >= n {
		i -= n
	}
	for range localProbe {
		s := &t.slots[i]
		if s.low == 0 || s.low == low && s.high == high {
			return s
		}
		if i++; i == n {
			i = 0
		}
	}
	h := (uint64(low)<<32 | uint64(high)) * 0x9E3779B97F4A7C15
	for i = home(h^h>>31, n); ; {
		s := &t.slots[i]
		if s.low == 0 || s.low == low && s.high == high {
			return s
		}
		if i++; i == n {
			i = 0
		}
	}
}

// blockVertices vertex ids share one hashed place in the edge table; see find.
const blockVertices = 64

func (t *edgeTable) grow(n int) {
	t.grew++
	old := t.slots
	t.slots = make([]edgeSlot, n)
	hugePages(t.slots)
	for _, s := range old {
		if s.low != 0 {
			*t.find(s.low, s.high) = s
		}
	}
}

func (t *edgeTable) summary() (open, nonmanifold, backwards int) {
	for _, s := range t.slots {
		switch {
		case s.low == 0:
		case s.info&countMask == 1<<countShift:
			open++
		case s.info&countMask == 3<<countShift:
			nonmanifold++
		default:
			backwards += int(s.info >> 31)
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
