package mesh

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
)

// Sampling for estimate: sampleRuns runs of runFacets consecutive facets each, at
// random places, so a file cannot put what it wants under the sample.
const (
	sampleRuns = 32
	runFacets  = 1024
)

// estimate guesses how many distinct vertices and edges the binary STL holds, so the
// tables are sized once instead of growing (a table that grows holds its old and new
// slots at once, and a file of distinct vertices would make it grow at every step).
// It counts them within runs of consecutive facets read from random places: files list
// neighbouring facets together, so a run sees most of the sharing there is, and
// sharing across a run's edge makes the guess err on the large side. Neither guess
// exceeds three per facet, the most a file can hold, and a short guess only means the
// table grows. The facet count is returned as the third value.
func estimate(r io.ReaderAt, l layout) (vertices, edges, facets int) {
	n := int(l.facets)
	if n <= sampleRuns*runFacets {
		return 3 * n, 3 * n, n
	}
	buf := make([]byte, runFacets*facetSize)
	seenV := make(map[[3]uint32]uint32, 3*runFacets)
	seenE := make(map[[2]uint32]struct{}, 3*runFacets)
	var sampled, distinctV, distinctE int
	for range sampleRuns {
		start := rand.IntN(n - runFacets + 1)
		got, _ := r.ReadAt(buf, headerSize+int64(start)*facetSize)
		clear(seenV)
		clear(seenE)
		for f := 0; f+facetSize <= got; f += facetSize {
			var ids [3]uint32
			for k := range 3 {
				off := f + 12 + 12*k
				key := [3]uint32{
					binary.LittleEndian.Uint32(buf[off:]),
					binary.LittleEndian.Uint32(buf[off+4:]),
					binary.LittleEndian.Uint32(buf[off+8:]),
				}
				id, ok := seenV[key]
				if !ok {
					id = uint32(len(seenV))
					seenV[key] = id
				}
				ids[k] = id
			}
			for k := range 3 {
				a, b := ids[k], ids[(k+1)%3]
				seenE[[2]uint32{min(a, b), max(a, b)}] = struct{}{}
			}
			sampled++
		}
		distinctV += len(seenV)
		distinctE += len(seenE)
	}
	if sampled == 0 {
		return 3 * n, 3 * n, n
	}
	guess := func(distinct int) int { // a twentieth more than the sample's rate
		return min(3*n, int(float64(distinct)/float64(sampled)*float64(n)*1.05)+1)
	}
	return guess(distinctV), guess(distinctE), n
}
