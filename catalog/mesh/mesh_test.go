package mesh_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog/mesh"
	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
)

func analyze(t *testing.T, b []byte) mesh.Report {
	t.Helper()
	rep, err := mesh.Analyze(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	return rep
}

func reversed(ts []stl.Triangle) []stl.Triangle {
	out := slices.Clone(ts)
	for i := range out {
		out[i].Vertices[1], out[i].Vertices[2] = out[i].Vertices[2], out[i].Vertices[1]
	}
	return out
}

func TestAnalyzeShapes(t *testing.T) {
	t.Parallel()
	cube := meshtest.Cube(stl.Vec3{1, 2, 3}, 10)
	twoCubes := append(meshtest.Cube(stl.Vec3{0, 0, 0}, 10), meshtest.Cube(stl.Vec3{20, 0, 0}, 5)...)
	// Three facets on one edge: the cube plus a fin hanging off its bottom front edge.
	fin := append(slices.Clone(cube), stl.Triangle{Vertices: [3]stl.Vec3{{1, 2, 3}, {11, 2, 3}, {6, -5, 3}}})
	degenerate := append(slices.Clone(cube), stl.Triangle{Vertices: [3]stl.Vec3{{1, 2, 3}, {1, 2, 3}, {5, 5, 5}}})
	tiny := meshtest.Cube(stl.Vec3{0, 0, 0}, 0.05)
	for _, tc := range []struct {
		name                         string
		data                         []byte
		format                       string
		triangles, parts, open, nonm int
		degenerate                   int
		volume, area                 float64
		watertight                   bool
		codes                        []string
	}{
		{"binary cube", meshtest.Binary("cube", cube), "binary", 12, 1, 0, 0, 0, 1000, 600, true, nil},
		{"ascii cube", meshtest.ASCII("cube", cube), "ascii", 12, 1, 0, 0, 0, 1000, 600, true, nil},
		{"upper-case ascii", bytes.ToUpper(meshtest.ASCII("cube", cube)), "ascii", 12, 1, 0, 0, 0, 1000, 600, true, nil},
		{"binary with solid header", meshtest.Binary("solid cube exported by CAD", cube), "binary", 12, 1, 0, 0, 0, 1000, 600, true, []string{mesh.CodeSolidHeaderBinary}},
		{"two parts", meshtest.Binary("two", twoCubes), "binary", 24, 2, 0, 0, 0, 1125, 750, true, nil},
		{"hole", meshtest.Binary("open", cube[1:]), "binary", 11, 1, 3, 0, 0, math.NaN(), 550, false, []string{mesh.CodeOpenEdges}},
		{"inverted", meshtest.Binary("inside out", reversed(cube)), "binary", 12, 1, 0, 0, 0, -1000, 600, true, []string{mesh.CodeInverted}},
		{"non-manifold", meshtest.Binary("fin", fin), "binary", 13, 1, 2, 1, 0, math.NaN(), 635, false, []string{mesh.CodeOpenEdges, mesh.CodeNonmanifoldEdges}},
		{"degenerate", meshtest.Binary("degenerate", degenerate), "binary", 13, 1, 0, 0, 1, 1000, 600, true, []string{mesh.CodeDegenerate}},
		{"tiny", meshtest.Binary("metres?", tiny), "binary", 12, 1, 0, 0, 0, 0.000125, 0.015, true, []string{mesh.CodeUnitsSuspect}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := analyze(t, tc.data)
			if r.Format != tc.format || r.Triangles != tc.triangles || r.Parts != tc.parts || r.OpenEdges != tc.open ||
				r.NonmanifoldEdges != tc.nonm || r.Degenerate != tc.degenerate || r.Watertight != tc.watertight {
				t.Fatalf("got %+v\nwant format %s, %d facets, %d parts, %d open, %d non-manifold, %d degenerate, watertight %v",
					r, tc.format, tc.triangles, tc.parts, tc.open, tc.nonm, tc.degenerate, tc.watertight)
			}
			// An open mesh has no volume of its own (the sum depends on the origin): NaN skips it.
			if !math.IsNaN(tc.volume) && math.Abs(r.Volume-tc.volume) > 1e-6*math.Max(1, math.Abs(tc.volume)) || math.Abs(r.Area-tc.area) > 1e-6*math.Max(1, tc.area) {
				t.Fatalf("got volume %v area %v, want %v and %v", r.Volume, r.Area, tc.volume, tc.area)
			}
			if !slices.Equal(r.Codes, tc.codes) && !(len(r.Codes) == 0 && tc.codes == nil) {
				t.Fatalf("got codes %v, want %v", r.Codes, tc.codes)
			}
			if len(r.Notes) != len(r.Codes) {
				t.Fatalf("got %d notes for %d codes", len(r.Notes), len(r.Codes))
			}
		})
	}
	r := analyze(t, meshtest.Binary("cube", cube))
	if r.BBox.Min != [3]float64{1, 2, 3} || r.BBox.Max != [3]float64{11, 12, 13} || r.BBox.Size != [3]float64{10, 10, 10} {
		t.Fatalf("got bbox %+v", r.BBox)
	}
}

func TestAnalyzeBadInputs(t *testing.T) {
	t.Parallel()
	cube := meshtest.Binary("cube", meshtest.Cube(stl.Vec3{0, 0, 0}, 10))
	hugeCount := slices.Clone(cube)
	binary.LittleEndian.PutUint32(hugeCount[80:], 4_000_000_000)
	nan := meshtest.Cube(stl.Vec3{0, 0, 0}, 10)
	nan[0].Vertices[0][1] = float32(math.NaN())
	nan[1].Vertices[2][2] = float32(math.Inf(1))
	random := make([]byte, 10_000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	longLine := []byte("solid long\nfacet normal 0 0 1 " + strings.Repeat("9", 1<<20) + "\nendsolid long\n")
	noEnd := bytes.TrimSuffix(meshtest.ASCII("cube", meshtest.Cube(stl.Vec3{0, 0, 0}, 10)), []byte("endsolid cube\n"))
	for _, tc := range []struct {
		name      string
		data      []byte
		triangles int
		codes     []string
	}{
		{"truncated mid-facet", cube[:len(cube)-20], 11, []string{mesh.CodeCountMismatch, mesh.CodeTruncated}},
		{"header claims 4 billion", hugeCount, 12, []string{mesh.CodeCountMismatch}},
		{"zero triangles", cube[:84:84], 0, []string{mesh.CodeCountMismatch, mesh.CodeEmpty}},
		{"NaN and Inf vertices", meshtest.Binary("nan", nan), 12, []string{mesh.CodeNaN}},
		{"random bytes", random, (10_000 - 84) / 50, []string{mesh.CodeCountMismatch, mesh.CodeTruncated}},
		{"ASCII with a 1 MB line", longLine, 0, []string{mesh.CodeParseError}},
		{"ASCII without endsolid", noEnd, 12, []string{mesh.CodeTruncated}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := analyze(t, tc.data)
			if r.Triangles != tc.triangles {
				t.Errorf("got %d facets, want %d", r.Triangles, tc.triangles)
			}
			for _, c := range tc.codes {
				if !slices.Contains(r.Codes, c) {
					t.Errorf("got codes %v, want %s among them", r.Codes, c)
				}
			}
		})
	}
	zero := make([]byte, 84) // a valid, empty binary STL
	if r := analyze(t, zero); r.Triangles != 0 || !slices.Contains(r.Codes, mesh.CodeEmpty) {
		t.Errorf("empty binary STL: got %+v", r)
	}
	for _, notSTL := range [][]byte{nil, []byte("hello"), []byte("\x00\x01\x02")} {
		if _, err := mesh.Analyze(bytes.NewReader(notSTL), int64(len(notSTL))); !errors.Is(err, mesh.ErrNotSTL) {
			t.Errorf("%q: got %v, want ErrNotSTL", notSTL, err)
		}
	}
}

// TestEdgeFan covers the worst case of placing edges by vertex id: one vertex shared
// by thousands of facets (a cone's apex), which must neither hang nor miscount.
func TestEdgeFan(t *testing.T) {
	t.Parallel()
	const n = 20000
	apex, base := stl.Vec3{0, 0, 10}, stl.Vec3{0, 0, 0}
	var ts []stl.Triangle
	ring := func(i int) stl.Vec3 {
		a := 2 * math.Pi * float64(i%n) / n
		return stl.Vec3{float32(10 * math.Cos(a)), float32(10 * math.Sin(a)), 0}
	}
	for i := range n {
		ts = append(ts, stl.Triangle{Vertices: [3]stl.Vec3{apex, ring(i), ring(i + 1)}})
		ts = append(ts, stl.Triangle{Vertices: [3]stl.Vec3{base, ring(i + 1), ring(i)}})
	}
	r := analyze(t, meshtest.Binary("cone", ts))
	if r.Triangles != 2*n || !r.Watertight || r.Parts != 1 || r.OpenEdges != 0 || r.BackwardsEdges != 0 {
		t.Fatalf("got %+v, want a closed cone of %d facets", r, 2*n)
	}
}
