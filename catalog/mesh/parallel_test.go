package mesh

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
)

// TestParallelAgrees: the parallel analysis of a binary STL gives the same report, bit
// for bit, as the streaming one (one reader, one topology goroutine) on random meshes
// whose facets are drawn from a small pool of vertices, so that they share edges
// two, three and more at a time, repeat whole facets, wind either way, and include
// degenerate facets and facets with NaN or infinite coordinates.
func TestParallelAgrees(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(17, 1))
	for _, facets := range []int{0, 1, 7, geomBlock - 1, geomBlock + 1, 3*geomBlock + 5, 40000, 70000} {
		for _, pool := range []int{3, 50, 5000, 200000} {
			pts := make([]stl.Vec3, pool)
			for i := range pts {
				pts[i] = stl.Vec3{float32(rng.IntN(100)), float32(rng.IntN(100)), rng.Float32() * 10}
			}
			if pool > 3 {
				pts[0] = stl.Vec3{float32(math.NaN()), 0, 0}
				pts[1] = stl.Vec3{0, float32(math.Inf(-1)), 0}
				pts[2] = stl.Vec3{float32(math.Copysign(0, -1)), 0, 0} // -0: a vertex of its own
			}
			ts := make([]stl.Triangle, facets)
			for i := range ts {
				switch {
				case i > 0 && rng.IntN(20) == 0: // a facet repeated, maybe reversed
					ts[i] = ts[rng.IntN(i)]
					if rng.IntN(2) == 0 {
						ts[i].Vertices[1], ts[i].Vertices[2] = ts[i].Vertices[2], ts[i].Vertices[1]
					}
				default:
					for k := range 3 {
						ts[i].Vertices[k] = pts[rng.IntN(pool)]
					}
				}
			}
			file := meshtest.Binary("random", ts)
			r := bytes.NewReader(file)
			parallel, err := analyze(r, int64(len(file)), estimate, parallelPath)
			if err != nil {
				t.Fatal(err)
			}
			streaming, err := analyze(r, int64(len(file)), estimate, streamingPath)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(parallel, streaming) && !(hasNaN(parallel) && hasNaN(streaming)) {
				t.Fatalf("%d facets from %d vertices: parallel %+v, streaming %+v", facets, pool, parallel, streaming)
			}
			if facets > 1000 && pool == 50 && (parallel.NonmanifoldEdges == 0 || parallel.Degenerate == 0) {
				t.Fatalf("%d facets from %d vertices: got %+v, want non-manifold edges and degenerate facets", facets, pool, parallel)
			}
		}
	}
}
