package mesh

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/hschendel/stl"
)

// shards is how many goroutines share a binary STL's analysis. Each owns one shard of
// the vertex table (by hash) and then one shard of the edge table (by block of lower
// vertex id), so they share no table and take no lock; only the parts (union-find)
// are shared, joined by compare-and-swap.
const shards = 2

// geomBlock facets are summed into one partial volume and area, and the partials are
// added in file order, so the sums do not depend on which goroutine summed a block:
// the parallel and the streaming analyses give the same bits.
const geomBlock = 4096

// geometry is the box, volume and area of some facets.
type geometry struct {
	nan      int
	volume   float64 // six times the signed volume
	area     float64 // twice the area
	min, max [3]float64
}

func newGeometry() geometry {
	var g geometry
	for i := range 3 {
		g.min[i], g.max[i] = math.Inf(1), math.Inf(-1)
	}
	return g
}

// add sums one facet; it reports false (and counts it) when a coordinate is NaN or
// infinite, and then the facet is left out of everything.
func (g *geometry) add(v *[3]stl.Vec3) bool {
	for _, p := range v {
		for _, f := range p {
			if math.Float32bits(f)&0x7f800000 == 0x7f800000 {
				g.nan++
				return false
			}
		}
	}
	var d [3][3]float64
	for i, p := range v {
		for k := range 3 {
			f := float64(p[k])
			d[i][k] = f
			if f < g.min[k] { // not min(): that would prefer -0 to an earlier +0
				g.min[k] = f
			}
			if f > g.max[k] {
				g.max[k] = f
			}
		}
	}
	cross := crossProduct(sub(d[1], d[0]), sub(d[2], d[0]))
	g.area += math.Sqrt(dot(cross, cross))
	g.volume += dot(d[0], crossProduct(d[1], d[2]))
	return true
}

// fold adds a block's partial sums (o) to g.
func (g *geometry) fold(o geometry) {
	g.nan += o.nan
	g.volume += o.volume
	g.area += o.area
	for k := range 3 {
		if o.min[k] < g.min[k] {
			g.min[k] = o.min[k]
		}
		if o.max[k] > g.max[k] {
			g.max[k] = o.max[k]
		}
	}
}

// facetBits decodes a binary facet's three vertices in place, as bits.
func facetBits(f []byte) (bits [3][3]uint32) {
	_ = f[47]
	for k := range 3 {
		for c := range 3 {
			bits[k][c] = binary.LittleEndian.Uint32(f[12+12*k+4*c:])
		}
	}
	return bits
}

func floats(bits [3][3]uint32) (v [3]stl.Vec3) {
	for k := range 3 {
		for c := range 3 {
			v[k][c] = math.Float32frombits(bits[k][c])
		}
	}
	return v
}

// analyzeBinary is the analysis of a binary STL on shards goroutines, in two phases
// over the file, each sharded:
//
//  1. every goroutine reads the whole file in large sequential chunks; it sums the
//     geometry of every shards-th block of facets and numbers the vertices whose hash
//     falls in its shard, writing their ids into one array of three ids per facet
//     (0 for a vertex with a NaN or infinite coordinate).
//  2. the vertex tables are dropped; each goroutine walks the ids and counts the edges
//     whose lower vertex falls in its shard, joining facets into parts.
//
// Facets are numbered by their place in the file. The report is the same, bit for
// bit, as the streaming analysis (analyzer) gives; TestParallelAgrees holds them to it.
// The tables are sized for expectV vertices (and, when both are zero, grow from
// nothing: tests); the edge table from the vertices phase 1 found.
func analyzeBinary(r io.ReaderAt, l layout, expectV, expectE int, rep *Report) error {
	n := int(l.facets)
	ids := make([][3]uint32, n)
	blocks := make([]geometry, (n+geomBlock-1)/geomBlock)

	var vertexCount [shards]int
	errs := make([]error, shards)
	var wg sync.WaitGroup
	for s := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var t vertexTable
			t.init(expectV / shards * 9 / 8) // room for shards of unequal size
			errs[s] = numberVertices(r, l, uint32(s), &t, ids, blocks)
			vertexCount[s] = t.used
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	// The vertex tables are garbage now; when they are large, collect them so the edge
	// tables reuse their memory instead of adding to it (the peak is one phase's tables,
	// not both). Small ones are left to the collector: a forced collection costs a
	// whole heap's marking, which for a hub's heap outweighs a small table.
	if expectV*int(unsafe.Sizeof(vertexSlot{})) >= 32<<20 {
		runtime.GC()
	}

	// Euler's formula, V - E + F = χ, with χ at most one per facet (a soup) and about
	// zero for a closed mesh: V + F is the edge count of both, exactly, and a close one
	// for most files. A short guess only means the table grows.
	if expectV > 0 || expectE > 0 { // (tests ask for tables grown from nothing with zeros)
		expectE = min(3*n, vertexCount[0]+vertexCount[1]+n)
	}
	parts := make([]uint32, n)
	for i := range parts {
		parts[i] = uint32(i)
	}
	var edges [shards]edgeTable
	for s := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			edges[s].init(expectE / shards * 9 / 8) // room for shards of unequal size

			countEdges(uint32(s), &edges[s], ids, parts)
		}()
	}
	wg.Wait()

	g := newGeometry()
	for _, b := range blocks {
		g.fold(b)
	}
	var faces, degenerate, roots int
	for i, id := range ids {
		switch {
		case id[0] == 0 || id[1] == 0 || id[2] == 0:
		case id[0] == id[1] || id[1] == id[2] || id[0] == id[2]:
			degenerate++
		default:
			faces++
			if parts[i] == uint32(i) {
				roots++
			}
		}
	}
	var open, nonmanifold, backwards int
	for s := range shards {
		o, m, b := edges[s].summary()
		open, nonmanifold, backwards = open+o, nonmanifold+m, backwards+b
	}
	report(rep, n, g, degenerate, faces, roots, open, nonmanifold, backwards)
	return nil
}

// chunkFacets facets are read at a time: large sequential reads, whether r is a file
// or a blob.
const chunkFacets = 16 * geomBlock

// numberVertices is phase 1 for shard s.
func numberVertices(r io.ReaderAt, l layout, s uint32, t *vertexTable, ids [][3]uint32, blocks []geometry) error {
	buf := make([]byte, min(chunkFacets, l.facets)*facetSize)
	keys := make([]shardKey, 0, 3*min(geomBlock, l.facets))
	for done := int64(0); done < l.facets; {
		chunk := buf[:min(int64(chunkFacets), l.facets-done)*facetSize]
		if n, err := r.ReadAt(chunk, headerSize+done*facetSize); n < len(chunk) {
			return fmt.Errorf("facet %d: %w", done+int64(n/facetSize), cmp.Or(err, io.ErrUnexpectedEOF))
		}
		for b := 0; b < len(chunk)/facetSize; b += geomBlock {
			first := int(done) + b
			end := min(b+geomBlock, len(chunk)/facetSize)
			mine := uint32(first/geomBlock)%shards == s
			g := newGeometry()
			// Keys first, then the lookups that miss the recent cache in a loop of their
			// own: they do not depend on each other, so the CPU overlaps their misses.
			keys = keys[:0]
			for i := b; i < end; i++ {
				bits := facetBits(chunk[i*facetSize:])
				if mine {
					v := floats(bits)
					g.add(&v)
				}
				for k := range 3 {
					key := bits[k]
					if key[0]&0x7f800000 == 0x7f800000 || key[1]&0x7f800000 == 0x7f800000 || key[2]&0x7f800000 == 0x7f800000 {
						continue // NaN or infinite: id 0 leaves the facet out
					}
					h := hash3(key)
					if uint32(h)%shards != s {
						continue
					}
					if r := &t.recent[h>>(64-recentBits)]; r.id != 0 && r.key == key {
						ids[int(done)+i][k] = r.id
						continue
					}
					keys = append(keys, shardKey{key, h, uint32(3*(first-b+i) + k)})
				}
			}
			if mine {
				blocks[first/geomBlock] = g
			}
			for _, k := range keys {
				// A vertex's id is where it first appears (3 × facet + corner, plus 1):
				// the same whichever shard numbers it, and in file order, which keeps the
				// edges of neighbouring facets together in the edge table (see find).
				ids[k.at/3][k.at%3], _ = t.idKey(k.key, k.hash, k.at+1)
			}
		}
		done += int64(len(chunk) / facetSize)
	}
	return nil
}

// shardKey is a vertex of a shard's, waiting for its id: its key, hash3 and place
// (3 × facet + corner).
type shardKey struct {
	key  [3]uint32
	hash uint64
	at   uint32
}

// countEdges is phase 2 for shard s: the edges whose lower vertex id lies in a block
// (see edgeTable.find) that belongs to s.
func countEdges(s uint32, t *edgeTable, ids [][3]uint32, parts []uint32) {
	for f, id := range ids {
		if id[0] == 0 || id[1] == 0 || id[2] == 0 || id[0] == id[1] || id[1] == id[2] || id[0] == id[2] {
			continue
		}
		for k := range 3 {
			a, b := id[k], id[(k+1)%3]
			if min(a, b)/blockVertices%shards != s {
				continue
			}
			if first, shared := t.add(a, b, uint32(f)); shared {
				union(parts, first, uint32(f))
			}
		}
	}
}

// find and union are union-find over parent indices that only ever point to a lower
// index (a root joins the lower root), shared by goroutines without a lock: a parent
// moves only towards its root, by compare-and-swap.
func find(p []uint32, x uint32) uint32 {
	for {
		px := atomic.LoadUint32(&p[x])
		if px == x {
			return x
		}
		gp := atomic.LoadUint32(&p[px])
		if gp != px {
			atomic.CompareAndSwapUint32(&p[x], px, gp) // path halving; losing the race is harmless
		}
		x = gp
	}
}

func union(p []uint32, a, b uint32) {
	for {
		ra, rb := find(p, a), find(p, b)
		if ra == rb {
			return
		}
		if ra < rb {
			ra, rb = rb, ra
		}
		if atomic.CompareAndSwapUint32(&p[ra], ra, rb) {
			return
		}
	}
}
