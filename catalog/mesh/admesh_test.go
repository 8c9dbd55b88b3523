package mesh_test

import (
	"flag"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog/mesh"
	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
)

// admeshReport is what `admesh FILE` prints, in the fields we compare.
type admeshReport struct {
	facets, parts, openEdges int
	min, max                 [3]float64
	volume                   float64
	repaired                 bool // admesh changed the mesh, so its volume is of another mesh
}

var (
	admeshFacets = regexp.MustCompile(`Number of facets\s*:\s*(\d+)`)
	admeshAxis   = regexp.MustCompile(`Min ([XYZ]) =\s*(\S+), Max [XYZ] =\s*(\S+)`)
	admeshVolume = regexp.MustCompile(`Volume\s*:\s*(\S+)`)
	admeshParts  = regexp.MustCompile(`Number of parts\s*:\s*(\d+)`)
	admeshOpen   = regexp.MustCompile(`Facets with (\d) disconnected edges?\s*:\s*(\d+)`)
	admeshRepair = regexp.MustCompile(`(Edges fixed|Facets removed|Facets added|Facets reversed|Degenerate facets)\s*:\s*(\d+)`)
)

func needAdmesh(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("admesh")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("admesh is not installed: scripts/test.sh installs it (apt-get install admesh)")
	}
	t.Skip("admesh is not installed: run scripts/test.sh, which installs it")
	return ""
}

func runAdmesh(t *testing.T, file string) admeshReport {
	t.Helper()
	out, err := exec.Command("admesh", file).CombinedOutput()
	if err != nil {
		t.Fatalf("admesh %s: %v\n%s", file, err, out)
	}
	s := string(out)
	var r admeshReport
	atoi := func(x string) int { n, _ := strconv.Atoi(x); return n }
	atof := func(x string) float64 { f, _ := strconv.ParseFloat(x, 64); return f }
	m := admeshFacets.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("admesh output without a facet count:\n%s", s)
	}
	r.facets = atoi(m[1])
	for _, m := range admeshAxis.FindAllStringSubmatch(s, -1) {
		k := int(m[1][0] - 'X')
		r.min[k], r.max[k] = atof(m[2]), atof(m[3])
	}
	if m := admeshVolume.FindStringSubmatch(s); m != nil {
		r.volume = atof(m[1])
	}
	if m := admeshParts.FindStringSubmatch(s); m != nil {
		r.parts = atoi(m[1])
	}
	// The "Original" column: facets with N unmatched edges before any repair.
	for _, m := range admeshOpen.FindAllStringSubmatch(s, -1) {
		r.openEdges += atoi(m[1]) * atoi(m[2])
	}
	for _, m := range admeshRepair.FindAllStringSubmatch(s, -1) {
		if m[2] != "0" {
			r.repaired = true
		}
	}
	return r
}

// realWorldFiles are STL files made by other programs: admesh's own example and the
// sample files hschendel/stl ships (found through the module cache).
func realWorldFiles(t *testing.T) []string {
	files := []string{"/usr/share/doc/admesh/examples/block.stl"}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/hschendel/stl").Output()
	if err == nil {
		dir := strings.TrimSpace(string(out))
		for _, f := range []string{"complex_bin.stl", "complex_ascii.stl", "simple_bin.stl", "simple_ascii.stl", "confusingheader_bin.stl"} {
			files = append(files, filepath.Join(dir, "testdata", f))
		}
	}
	var found []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			found = append(found, f)
		}
	}
	if len(found) < 3 {
		t.Fatalf("found only %v of the real-world STL files", found)
	}
	return found
}

func TestAgreesWithAdmesh(t *testing.T) {
	t.Parallel()
	needAdmesh(t)
	dir := t.TempDir()
	cube := meshtest.Cube(stl.Vec3{1.5, -2.25, 3}, 12.7)
	generated := map[string][]byte{
		"cube_binary.stl":         meshtest.Binary("cube", cube),
		"cube_ascii.stl":          meshtest.ASCII("cube", cube),
		"solid_header_binary.stl": meshtest.Binary("solid torus from a CAD exporter", meshtest.Torus(48, 24, 40, 9.5)),
		"two_parts.stl":           meshtest.Binary("parts", append(meshtest.Torus(30, 12, 20, 5), meshtest.Cube(stl.Vec3{60, 0, 0}, 8)...)),
		"hole.stl":                meshtest.Binary("hole", meshtest.Torus(30, 12, 20, 5)[7:]),
		"torus_ascii.stl":         meshtest.ASCII("torus", meshtest.Torus(36, 18, 25, 6)),
		"inverted.stl":            meshtest.Binary("inside out", reversed(meshtest.Torus(30, 12, 20, 5))),
		"two_holes_two_parts.stl": meshtest.Binary("holes", append(cube[2:], meshtest.Torus(20, 10, 20, 5)[1:]...)),
	}
	var files []string
	for name, data := range generated {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	files = append(files, realWorldFiles(t)...)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			want := runAdmesh(t, file)
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, _ := f.Stat()
			got, err := mesh.Analyze(f, fi.Size())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: ours %d facets, %d parts, %d open, volume %.6f; admesh %d facets, %d parts, %d open, volume %.6f, repaired %v",
				filepath.Base(file), got.Triangles, got.Parts, got.OpenEdges, got.Volume, want.facets, want.parts, want.openEdges, want.volume, want.repaired)
			if got.Triangles != want.facets {
				t.Fatalf("facets: got %d, admesh %d", got.Triangles, want.facets)
			}
			for k := range 3 {
				// admesh prints six decimals: compare to 1e-4 plus that rounding.
				if math.Abs(got.BBox.Min[k]-want.min[k]) > 1e-4+5e-7 || math.Abs(got.BBox.Max[k]-want.max[k]) > 1e-4+5e-7 {
					t.Fatalf("bbox axis %d: got %v..%v, admesh %v..%v", k, got.BBox.Min[k], got.BBox.Max[k], want.min[k], want.max[k])
				}
			}
			if got.OpenEdges != want.openEdges && got.NonmanifoldEdges == 0 {
				t.Fatalf("open edges: got %d, admesh %d", got.OpenEdges, want.openEdges)
			}
			if want.repaired {
				return // admesh's volume and parts are of the mesh it repaired
			}
			// admesh turns an inside-out mesh around and reports its volume positive.
			if rel := math.Abs(math.Abs(got.Volume)-want.volume) / want.volume; rel > 1e-4 {
				t.Fatalf("volume: got %v, admesh %v (relative difference %.2g)", got.Volume, want.volume, rel)
			}
			if got.Parts != want.parts {
				t.Fatalf("parts: got %d, admesh %d", got.Parts, want.parts)
			}
		})
	}
}

// BenchmarkAnalyze2M analyses a generated 2-million-facet (100 MB) binary STL and
// reports MB/s, admesh's time on the same file and our time as a fraction of it.
// Peak memory is measured on fresh processes by scripts/bench-mesh.sh.
func BenchmarkAnalyze2M(b *testing.B) {
	file := filepath.Join(b.TempDir(), "torus-2m.stl")
	out, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	if err := meshtest.WriteTorusBinary(out, 1000, 1000, 100, 30); err != nil {
		b.Fatal(err)
	}
	out.Close()
	f, err := os.Open(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	runtime.GC()
	b.SetBytes(fi.Size())
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := mesh.Analyze(f, fi.Size()); err != nil {
			b.Fatal(err)
		}
	}
	ours := time.Since(start) / time.Duration(b.N)
	b.StopTimer()
	if _, err := exec.LookPath("admesh"); err == nil {
		best := time.Duration(math.MaxInt64)
		for range 3 {
			s := time.Now()
			if err := exec.Command("admesh", file).Run(); err != nil {
				b.Fatal(err)
			}
			best = min(best, time.Since(s))
		}
		b.ReportMetric(best.Seconds(), "admesh-s")
		b.ReportMetric(ours.Seconds()/best.Seconds(), "ours/admesh")
	}
}

var (
	benchFile = flag.String("benchfile", "", "TestWriteBenchFile writes the 2-million-facet benchmark STL here")
	benchSoup = flag.String("benchsoup", "", "TestWriteBenchSoup writes the 2-million-facet triangle soup here")
)

// TestWriteBenchSoup writes the soup for scripts/bench-mesh.sh (2 million facets, no
// shared vertex); without -benchsoup it checks a small one is the soup it claims to be.
func TestWriteBenchSoup(t *testing.T) {
	t.Parallel()
	path, n := *benchSoup, 2000000
	if path == "" {
		path, n = filepath.Join(t.TempDir(), "soup.stl"), 3000
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := meshtest.WriteSoupBinary(f, n); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f, _ = os.Open(path)
	defer f.Close()
	fi, _ := f.Stat()
	rep, err := mesh.Analyze(f, fi.Size())
	if err != nil || rep.Triangles != n || rep.Parts != n || rep.OpenEdges != 3*n || rep.Degenerate != 0 {
		t.Fatalf("got %+v, %v; want a soup of %d facets", rep, err, n)
	}
}

// TestWriteBenchFile writes the benchmark's STL for scripts/bench-mesh.sh; without
// -benchfile it checks that the streamed torus is the mesh it claims to be.
func TestWriteBenchFile(t *testing.T) {
	t.Parallel()
	path, rings, sides := *benchFile, 1000, 1000
	if path == "" {
		path, rings, sides = filepath.Join(t.TempDir(), "torus.stl"), 40, 30
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := meshtest.WriteTorusBinary(f, rings, sides, 100, 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f, _ = os.Open(path)
	defer f.Close()
	fi, _ := f.Stat()
	rep, err := mesh.Analyze(f, fi.Size())
	if err != nil || rep.Triangles != 2*rings*sides || !rep.Watertight || rep.Parts != 1 || len(rep.Codes) != 0 {
		t.Fatalf("got %+v, %v; want a clean torus of %d facets", rep, err, 2*rings*sides)
	}
}

// BenchmarkAnalyzeSmall analyses a 12-facet cube, the size of most parts people
// upload one at a time: its cost is the analyser's fixed cost (goroutine, tables,
// buffers), which every upload and every fuzz input pays.
func BenchmarkAnalyzeSmall(b *testing.B) {
	data := meshtest.Binary("cube", meshtest.Cube(stl.Vec3{0, 0, 0}, 10))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := mesh.Analyze(strings.NewReader(string(data)), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}
