package mesh

import (
	"bytes"
	"io"
	"math"
	"reflect"
	"testing"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
)

// soup is n facets that share no vertex.
func soup(n int) []stl.Triangle {
	ts := make([]stl.Triangle, n)
	for i := range ts {
		x, y := float32(i%300), float32(i/300)
		ts[i].Vertices = [3]stl.Vec3{{x, y, 0}, {x + 0.5, y, 0}, {x, y + 0.5, 0.25}}
	}
	return ts
}

// TestTablesSizedOrGrown: the same file gives the same report whether its tables were
// sized from the sample, grew from their smallest size, or were sized far too large;
// the figures are the known ones; and the sample's guesses lie between the truth and
// the most a file can hold.
func TestTablesSizedOrGrown(t *testing.T) {
	t.Parallel()
	torus := meshtest.Torus(120, 200, 100, 30) // 48,000 facets, 24,000 vertices, 72,000 edges
	mixed := append(meshtest.Torus(60, 200, 100, 30), soup(30000)...)
	rim := func(i int) stl.Vec3 {
		a := float64(i) * 0.001
		return stl.Vec3{float32(math.Cos(a) * 10), float32(math.Sin(a) * 10), float32(a)}
	}
	fan := make([]stl.Triangle, 50000) // one vertex on every facet: one long cluster of edges
	for i := range fan {
		fan[i].Vertices = [3]stl.Vec3{{0, 0, 0}, rim(i), rim(i + 1)}
	}
	for _, tc := range []struct {
		name                   string
		facets                 []stl.Triangle
		vertices, edges, parts int
		open                   int
		mixed                  bool // the sample may guess short: only the upper bound holds
	}{
		{"torus", torus, 24000, 72000, 1, 0, false},
		{"soup", soup(60000), 180000, 180000, 60000, 180000, false},
		{"torus then soup", mixed, 12000 + 90000, 36000 + 90000, 1 + 30000, 90000, true},
		{"fan", fan, 50002, 100001, 1, 50002, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := meshtest.Binary(tc.name, tc.facets)
			r := bytes.NewReader(file)
			n := len(tc.facets)
			sized, err := Analyze(r, int64(len(file)))
			if err != nil {
				t.Fatal(err)
			}
			grown, err := analyze(r, int64(len(file)), func(io.ReaderAt, layout) (int, int, int) { return 0, 0, 0 }, choosePath)
			if err != nil {
				t.Fatal(err)
			}
			large, err := analyze(r, int64(len(file)), func(io.ReaderAt, layout) (int, int, int) { return 3 * n, 3 * n, n }, choosePath)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(sized, grown) || !reflect.DeepEqual(sized, large) {
				t.Fatalf("reports differ:\nsized %+v\ngrown %+v\nlarge %+v", sized, grown, large)
			}
			if sized.Parts != tc.parts || sized.OpenEdges != tc.open || sized.Triangles != n {
				t.Fatalf("parts %d open %d facets %d, want %d %d %d", sized.Parts, sized.OpenEdges, sized.Triangles, tc.parts, tc.open, n)
			}
			v, e, f := estimate(r, layout{binary: true, facets: int64(n)})
			if tc.mixed {
				v, e = max(v, tc.vertices), max(e, tc.edges)
			}
			if f != n || v < tc.vertices || v > 3*n || e < tc.edges || e > 3*n {
				t.Fatalf("estimate: %d vertices, %d edges, %d facets; the file has %d, %d, %d", v, e, f, tc.vertices, tc.edges, n)
			}
		})
	}
}
