package mesh_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog/mesh"
	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
)

func analyze3MF(t *testing.T, data []byte) (mesh.Report, error) {
	t.Helper()
	return mesh.Analyze3MF(bytes.NewReader(data), int64(len(data)))
}

var cube10 = meshtest.MeshObject(1, "cube", meshtest.Cube(stl.Vec3{0, 0, 0}, 10))

// TestAnalyze3MFPlacesTheBuild: transforms (items and components, composed in the
// spec's order) and units are applied before anything is measured.
func TestAnalyze3MFPlacesTheBuild(t *testing.T) {
	t.Parallel()
	two := cube10 + `  <object id="2" type="model"><components>
   <component objectid="1"/>
   <component objectid="1" transform="1 0 0 0 1 0 0 0 1 20 0 0"/>
  </components></object>
`
	tests := []struct {
		name      string
		model     string
		triangles int
		min, max  [3]float64
		volume    float64
		parts     int
		objects   int
		codes     []string
	}{
		{"identity", meshtest.Model3MF("", cube10, meshtest.Item(1, "")),
			12, [3]float64{0, 0, 0}, [3]float64{10, 10, 10}, 1000, 1, 1, nil},
		// x' = -2y + 10, y' = 2x + 20, z' = 2z + 30: a quarter turn about Z, doubled, moved.
		{"item turned, scaled and moved", meshtest.Model3MF("", cube10, meshtest.Item(1, "0 2 0 -2 0 0 0 0 2 10 20 30")),
			12, [3]float64{-10, 20, 30}, [3]float64{10, 40, 50}, 8000, 1, 1, nil},
		{"inch", meshtest.Model3MF("inch", cube10, meshtest.Item(1, "")),
			12, [3]float64{0, 0, 0}, [3]float64{254, 254, 254}, 254 * 254 * 254, 1, 1, nil},
		{"centimeter", meshtest.Model3MF("centimeter", cube10, meshtest.Item(1, "")),
			12, [3]float64{0, 0, 0}, [3]float64{100, 100, 100}, 1e6, 1, 1, nil},
		{"micron", meshtest.Model3MF("micron", cube10, meshtest.Item(1, "1 0 0 0 1 0 0 0 1 1000 0 0")),
			12, [3]float64{1, 0, 0}, [3]float64{1.01, 0.01, 0.01}, 1e-6, 1, 1, []string{mesh.CodeUnitsSuspect}},
		{"unknown unit is millimetres", meshtest.Model3MF("furlong", cube10, meshtest.Item(1, "")),
			12, [3]float64{0, 0, 0}, [3]float64{10, 10, 10}, 1000, 1, 1, []string{mesh.Code3MFUnknownUnit}},
		// Components first, then the item: the second cube at x 20..30, then the item
		// moves everything up 5 in inches.
		{"components under an item", meshtest.Model3MF("inch", two, meshtest.Item(2, "1 0 0 0 1 0 0 0 1 0 0 5")),
			24, [3]float64{0, 0, 127}, [3]float64{762, 254, 381}, 2 * 254 * 254 * 254, 2, 1, nil},
		// Stacked, the cubes share a face: its edges join four facets, and one part.
		{"two items of one object", meshtest.Model3MF("", cube10, meshtest.Item(1, "")+meshtest.Item(1, "1 0 0 0 1 0 0 0 1 0 0 10")),
			24, [3]float64{0, 0, 0}, [3]float64{10, 10, 20}, 2000, 1, 2, []string{mesh.CodeNonmanifoldEdges}},
		// A mirror image: the spec's consumer reverses the triangles, so the placed
		// mesh still faces out and its volume is positive.
		{"mirrored", meshtest.Model3MF("", cube10, meshtest.Item(1, "-1 0 0 0 1 0 0 0 1 0 0 0")),
			12, [3]float64{-10, 0, 0}, [3]float64{0, 10, 10}, 1000, 1, 1, []string{mesh.Code3MFMirrored}},
		{"object in no build item", meshtest.Model3MF("", cube10+strings.Replace(cube10, `id="1"`, `id="7"`, 1), meshtest.Item(1, "")),
			12, [3]float64{0, 0, 0}, [3]float64{10, 10, 10}, 1000, 1, 1, []string{mesh.Code3MFUnplaced}},
		{"item names a missing object", meshtest.Model3MF("", cube10, meshtest.Item(1, "")+meshtest.Item(9, "")),
			12, [3]float64{0, 0, 0}, [3]float64{10, 10, 10}, 1000, 1, 1, []string{mesh.Code3MFMissingObject}},
		{"triangle names a missing vertex", meshtest.Model3MF("", strings.Replace(cube10, `v1="0"`, `v1="99"`, 1), meshtest.Item(1, "")),
			11, [3]float64{0, 0, 0}, [3]float64{10, 10, 10}, -1, 1, 1, []string{mesh.CodeOpenEdges, mesh.Code3MFBadIndex}},
		{"triangle names one vertex twice", meshtest.Model3MF("", strings.Replace(cube10, `v1="0" v2="1"`, `v1="0" v2="0"`, 1), meshtest.Item(1, "")),
			11, [3]float64{0, 0, 0}, [3]float64{10, 10, 10}, -1, 1, 1, []string{mesh.CodeOpenEdges, mesh.Code3MFRepeatedIndex}},
		{"no build", meshtest.Model3MF("", cube10, ""),
			0, [3]float64{}, [3]float64{}, 0, 0, 0, []string{mesh.CodeEmpty, mesh.Code3MFNoBuild, mesh.Code3MFUnplaced}},
		{"unsupported required extension", strings.Replace(meshtest.Model3MF("", cube10, meshtest.Item(1, "")), `xml:lang`,
			`xmlns:b="http://schemas.microsoft.com/3dmanufacturing/beamlattice/2017/02" requiredextensions="b" xml:lang`, 1),
			12, [3]float64{0, 0, 0}, [3]float64{10, 10, 10}, 1000, 1, 1, []string{mesh.Code3MFUnsupportedExt}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rep, err := analyze3MF(t, meshtest.ThreeMF(tt.model, nil))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Format != "3mf" || rep.Triangles != tt.triangles {
				t.Fatalf("got format %q, %d triangles; want 3mf, %d", rep.Format, rep.Triangles, tt.triangles)
			}
			for k := range 3 {
				if !near(rep.BBox.Min[k], tt.min[k]) || !near(rep.BBox.Max[k], tt.max[k]) {
					t.Fatalf("bbox: got %v..%v, want %v..%v", rep.BBox.Min, rep.BBox.Max, tt.min, tt.max)
				}
			}
			if tt.volume >= 0 && math.Abs(rep.Volume-tt.volume) > 1e-6*max(1, tt.volume) {
				t.Fatalf("volume: got %v, want %v", rep.Volume, tt.volume)
			}
			if rep.Parts != tt.parts || len(rep.Objects) != tt.objects {
				t.Fatalf("got %d parts, %d objects; want %d, %d", rep.Parts, len(rep.Objects), tt.parts, tt.objects)
			}
			codes := slices.Clone(rep.Codes)
			want := slices.Clone(tt.codes)
			slices.Sort(codes)
			slices.Sort(want)
			if !slices.Equal(codes, want) && !(len(codes) == 0 && len(want) == 0) {
				t.Fatalf("codes: got %v, want %v (%v)", rep.Codes, tt.codes, rep.Notes)
			}
			var sum float64
			for _, o := range rep.Objects {
				sum += o.Volume
			}
			if tt.volume >= 0 && math.Abs(sum-rep.Volume) > 1e-6*max(1, tt.volume) {
				t.Fatalf("the items' volumes add up to %v, the build's is %v", sum, rep.Volume)
			}
		})
	}
}

// TestAnalyze3MFParts: the production extension's components in other model parts,
// as Bambu Studio and OrcaSlicer write every mesh.
func TestAnalyze3MFParts(t *testing.T) {
	t.Parallel()
	const prod = `xmlns:p="http://schemas.microsoft.com/3dmanufacturing/production/2015/06" requiredextensions="p" xml:lang`
	root := strings.Replace(meshtest.Model3MF("centimeter",
		`  <object id="5" type="model"><components>
   <component p:path="/3D/Objects/object_1.model" objectid="1" transform="1 0 0 0 1 0 0 0 1 0 0 0"/>
   <component p:path="/3D/Objects/object_1.model" objectid="2" transform="1 0 0 0 1 0 0 0 1 2 0 0"/>
  </components></object>
  <object id="6" type="model"><components><component p:path="/3D/Objects/missing.model" objectid="1"/></components></object>
`, meshtest.Item(5, "1 0 0 0 1 0 0 0 1 0 0 1")+meshtest.Item(6, "")), "xml:lang", prod, 1)
	part := strings.Replace(meshtest.Model3MF("", meshtest.MeshObject(1, "cube", meshtest.Cube(stl.Vec3{0, 0, 0}, 1))+
		// Object 2 is object 1 again, through a component within the part; the
		// second component names another part, which only the root may do.
		`<object id="2"><components><component objectid="1"/><component p:path="/3D/3dmodel.model" objectid="5"/></components></object>`,
		// A build in another part does not count.
		meshtest.Item(1, "1 0 0 0 1 0 0 0 1 50 50 50")), "xml:lang", prod, 1)
	data := meshtest.ThreeMFParts(root, nil, map[string]string{"3D/Objects/object_1.model": part})
	rep, err := analyze3MF(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Triangles != 24 || !near(rep.Volume, 2000) || rep.BBox.Min != [3]float64{0, 0, 10} || !near(rep.BBox.Max[0], 30) || !near(rep.BBox.Max[2], 20) {
		t.Fatalf("got %d triangles, volume %v, box %v..%v; want two 10 mm cubes, 20 mm apart, 10 mm up", rep.Triangles, rep.Volume, rep.BBox.Min, rep.BBox.Max)
	}
	for _, code := range []string{mesh.Code3MFMissingObject, mesh.Code3MFExternalPart} {
		if !slices.Contains(rep.Codes, code) {
			t.Fatalf("codes %v (%v): want %s", rep.Codes, rep.Notes, code)
		}
	}
	if slices.Contains(rep.Codes, mesh.Code3MFUnsupportedExt) {
		t.Fatalf("codes %v: the production extension is read", rep.Codes)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-4*max(1, math.Abs(b)) }

// TestAnalyze3MFRefuses: what cannot be read, or would not end, is Err3MF.
func TestAnalyze3MFRefuses(t *testing.T) {
	t.Parallel()
	nest := func(depth int) string { // object i holds object i-1; object 1 is the cube
		var b strings.Builder
		b.WriteString(cube10)
		for i := 2; i <= depth; i++ {
			fmt.Fprintf(&b, "  <object id=\"%d\"><components><component objectid=\"%d\"/></components></object>\n", i, i-1)
		}
		return meshtest.Model3MF("", b.String(), meshtest.Item(depth, ""))
	}
	fan := func(levels, width int) string { // each level holds width of the one below
		var b strings.Builder
		b.WriteString(cube10)
		for i := 2; i <= levels; i++ {
			fmt.Fprintf(&b, "  <object id=\"%d\"><components>", i)
			for range width {
				fmt.Fprintf(&b, "<component objectid=\"%d\"/>", i-1)
			}
			b.WriteString("</components></object>\n")
		}
		return meshtest.Model3MF("", b.String(), meshtest.Item(levels, ""))
	}
	zipOf := func(files map[string]string) []byte {
		var buf bytes.Buffer
		z := zip.NewWriter(&buf)
		for name, data := range files {
			w, _ := z.Create(name)
			w.Write([]byte(data))
		}
		z.Close()
		return buf.Bytes()
	}
	tests := []struct {
		name, want string
		data       []byte
	}{
		{"not a zip", "not a zip", meshtest.Binary("cube", meshtest.Cube(stl.Vec3{}, 1))},
		{"no model part", "no model part", zipOf(map[string]string{"hello.txt": "hi"})},
		{"broken XML", "model XML", meshtest.ThreeMF(`<model xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02"><resources>`, nil)},
		{"not a model", "not a 3MF core model", meshtest.ThreeMF(`<svg xmlns="http://www.w3.org/2000/svg"/>`, nil)},
		{"self-reference", "contains itself", meshtest.ThreeMF(meshtest.Model3MF("", cube10+`<object id="2"><components><component objectid="2"/></components></object>`, meshtest.Item(2, "")), nil)},
		{"cycle", "contains itself", meshtest.ThreeMF(meshtest.Model3MF("",
			`<object id="2"><components><component objectid="3"/></components></object><object id="3"><components><component objectid="2"/></components></object>`, meshtest.Item(1, "")+cube10[:0]), nil)},
		{"cycle off the build", "contains itself", meshtest.ThreeMF(meshtest.Model3MF("",
			cube10+`<object id="2"><components><component objectid="3"/></components></object><object id="3"><components><component objectid="2"/></components></object>`, meshtest.Item(1, "")), nil)},
		{"too deep", "nest deeper", meshtest.ThreeMF(nest(40), nil)},
		{"placed too often", "places over", meshtest.ThreeMF(fan(8, 10), nil)},
		// Components of components and no triangles: nothing to count but the walk.
		{"empty objects placed too often", "places objects over", meshtest.ThreeMF(strings.Replace(fan(30, 10), cube10,
			`<object id="1"><mesh><vertices/><triangles/></mesh></object>`, 1), nil)},
		{"unclean name", "not a clean path", zipOf(map[string]string{"../3D/3dmodel.model": "x"})},
		{"vertex without z", "without x, y and z", meshtest.ThreeMF(meshtest.Model3MF("", strings.Replace(cube10, ` z="0"`, ``, 1), meshtest.Item(1, "")), nil)},
		{"bad transform", "want 12 numbers", meshtest.ThreeMF(meshtest.Model3MF("", cube10, meshtest.Item(1, "1 0 0")), nil)},
		{"undeclared required prefix", "does not declare", meshtest.ThreeMF(strings.Replace(meshtest.Model3MF("", cube10, meshtest.Item(1, "")), `xml:lang`, `requiredextensions="q" xml:lang`, 1), nil)},
		{"duplicate object id", "two objects have id 1", meshtest.ThreeMF(meshtest.Model3MF("", cube10+cube10, meshtest.Item(1, "")), nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := analyze3MF(t, tt.data)
			if !errors.Is(err, mesh.Err3MF) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want Err3MF saying %q", err, tt.want)
			}
		})
	}
}

// TestAnalyze3MFZipBomb: a model part that inflates to 1.1 GiB (from a few hundred
// kilobytes) is refused without being inflated, whether its header tells its size or
// lies about it.
func TestAnalyze3MFZipBomb(t *testing.T) {
	t.Parallel()
	head := []byte(meshtest.Model3MF("", cube10, meshtest.Item(1, ""))[:200])
	// One deflate block of 1 MiB of spaces, flushed so it ends on a byte: the same
	// block repeated is a valid stream (its back-references stay within the spaces).
	var block bytes.Buffer
	fw, _ := flate.NewWriter(&block, flate.BestCompression)
	fw.Write(bytes.Repeat([]byte(" "), 1<<20))
	fw.Flush()
	const blocks = 1100
	var first, last bytes.Buffer
	fw, _ = flate.NewWriter(&first, flate.BestCompression)
	fw.Write(head)
	fw.Flush()
	fw, _ = flate.NewWriter(&last, flate.BestCompression)
	fw.Close()
	raw := slices.Concat(first.Bytes(), bytes.Repeat(block.Bytes(), blocks), last.Bytes())
	crc := crc32.NewIEEE()
	crc.Write(head)
	spaces := bytes.Repeat([]byte(" "), 1<<20)
	for range blocks {
		crc.Write(spaces)
	}
	for _, tt := range []struct {
		name string
		size uint64
		want string
	}{
		{"honest header", uint64(len(head)) + blocks<<20, "over"},
		{"lying header", 300, "zip"},
	} {
		var buf bytes.Buffer
		z := zip.NewWriter(&buf)
		w, err := z.CreateRaw(&zip.FileHeader{Name: "3D/3dmodel.model", Method: zip.Deflate, CRC32: crc.Sum32(),
			CompressedSize64: uint64(len(raw)), UncompressedSize64: tt.size})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(raw)
		z.Close()
		_, err = analyze3MF(t, buf.Bytes())
		t.Logf("%s: %d bytes compressed: %v", tt.name, buf.Len(), err)
		if !errors.Is(err, mesh.Err3MF) || !strings.Contains(err.Error(), tt.want) {
			t.Fatalf("%s: got %v, want Err3MF saying %q", tt.name, err, tt.want)
		}
	}
}

func TestThumbnail3MF(t *testing.T) {
	t.Parallel()
	var pic bytes.Buffer
	png.Encode(&pic, image.NewNRGBA(image.Rect(0, 0, 4, 3)))
	model := meshtest.Model3MF("", cube10, meshtest.Item(1, ""))
	for _, tt := range []struct {
		name  string
		thumb []byte
	}{{"with", pic.Bytes()}, {"without", nil}} {
		data := meshtest.ThreeMF(model, tt.thumb)
		p, err := mesh.Open3MF(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := p.EmbeddedThumbnail()
		if err != nil || ok != (tt.thumb != nil) || !bytes.Equal(got, tt.thumb) {
			t.Fatalf("%s: got %d bytes, %v, %v; want %d bytes", tt.name, len(got), ok, err, len(tt.thumb))
		}
	}
}

// BenchmarkAnalyze3MF analyses a 3MF of a 500,000-triangle torus (the model part about
// 40 MB of XML) and reports triangles a second; BenchmarkAnalyze2M is the STL figure.
func BenchmarkAnalyze3MF(b *testing.B) {
	torus := meshtest.Torus(500, 500, 100, 30)
	data := meshtest.ThreeMF(meshtest.Model3MF("", meshtest.MeshObject(1, "torus", torus), meshtest.Item(1, "")), nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep, err := mesh.Analyze3MF(bytes.NewReader(data), int64(len(data)))
		if err != nil || rep.Triangles != len(torus) {
			b.Fatalf("got %d triangles, %v", rep.Triangles, err)
		}
	}
	b.ReportMetric(float64(len(torus))*float64(b.N)/b.Elapsed().Seconds(), "triangles/s")
}
