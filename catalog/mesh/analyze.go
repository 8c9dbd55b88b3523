package mesh

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/hschendel/stl"
)

// Analyze reads the STL in r (size bytes) and reports on it. It fails only when the
// bytes are not STL at all (ErrNotSTL) or cannot be read; defects in an STL are
// reported as lint codes. Memory grows with the facets the file holds and their
// distinct vertices and edges, never with the facet count a header claims.
func Analyze(r io.ReaderAt, size int64) (Report, error) {
	return analyze(r, size, estimate, choosePath)
}

// binaryPath is how a binary STL is analysed.
type binaryPath int

const (
	choosePath    binaryPath = iota // parallel for a soup-like file, else streaming; see analyze
	streamingPath                   // one reader and one topology goroutine (analyzer)
	parallelPath                    // two goroutines in two phases (analyzeBinary)
)

// analyze is Analyze with the way binary tables are sized (see estimate) and the path
// a binary file takes as choices, for tests.
func analyze(r io.ReaderAt, size int64, sizeTables func(io.ReaderAt, layout) (vertices, edges, facets int), path binaryPath) (Report, error) {
	rep := Report{Codes: []string{}}
	l, err := detect(r, size, &rep)
	if err != nil {
		return rep, err
	}
	if l.facets > maxFaces {
		return rep, fmt.Errorf("%w: %d facets", errTooManyFacets, l.facets)
	}
	var a *analyzer
	if l.binary {
		vertices, edges, facets := sizeTables(r, l)
		// The parallel path takes more CPU than the streaming one where vertices are
		// shared (a 100 MB torus: 0.85-1.0 s against 0.7; both decode and hash every
		// vertex, and ids make a round trip through memory) and no less wall time on
		// two busy cores, but where few are shared it takes the same time in less
		// memory (a 100 MB soup: 195 MiB against 255): its phases never hold the
		// vertex and edge tables at once. scripts/bench-mesh.sh.
		if path == parallelPath || path == choosePath && 2*vertices > 3*facets {
			rep.Format = "binary"
			if err := analyzeBinary(r, l, vertices, edges, &rep); err != nil {
				return rep, fmt.Errorf("read binary STL: %w", err)
			}
			return rep, nil
		}
		a = newAnalyzer(vertices, edges, facets)
	} else {
		a = newAnalyzer(0, 0, 0) // the tables grow as the text is read
	}
	defer a.close() // ends the topology goroutine on every path
	if l.binary {
		rep.Format = "binary"
		if err := readBinary(r, l, a); err != nil {
			return rep, fmt.Errorf("read binary STL: %w", err)
		}
	} else {
		rep.Format = "ascii"
		lines := &asciiView{r: io.NewSectionReader(r, 0, size)}
		err := stl.CopyAll(lines, a)
		switch {
		case err != nil && lines.tooLong > 0:
			// The library's line scanner stops quietly at a line this long.
			rep.lint(CodeParseError, fmt.Sprintf("line %d is over %d KiB; reading stopped there", lines.tooLong, maxLine>>10))
		case err != nil:
			if a.triangles == 0 && !strings.Contains(err.Error(), "endsolid") {
				rep.lint(CodeParseError, firstLine(err.Error()))
			} else if strings.Contains(err.Error(), "skipped") {
				rep.lint(CodeParseError, "some facets could not be parsed and were skipped: "+firstError(err.Error()))
			} else {
				rep.lint(CodeTruncated, "the ASCII file ends before endsolid")
			}
		}
	}
	if a.close(); a.topo.overflow {
		return rep, fmt.Errorf("%w: over %d facets", errTooManyFacets, maxFaces)
	}
	a.finish(&rep)
	return rep, nil
}

// errTooManyFacets: the topology numbers facets in 28 bits (see maxFaces).
var errTooManyFacets = errors.New("too many facets to analyse")

// readBinary sends the facets the file holds (l.facets, whatever its header says) to
// a, decoding them in place from a buffer of batchSize facets: no allocation per facet.
// The normal is not read: the analysis works from the vertices alone.
func readBinary(r io.ReaderAt, l layout, a *analyzer) error {
	buf := make([]byte, batchSize*facetSize)
	for done := int64(0); done < l.facets; {
		chunk := buf[:min(int64(batchSize), l.facets-done)*facetSize]
		if n, err := r.ReadAt(chunk, headerSize+done*facetSize); n < len(chunk) {
			return fmt.Errorf("facet %d: %w", done+int64(n/facetSize), cmp.Or(err, io.ErrUnexpectedEOF))
		}
		decodeFacets(chunk, a)
		done += int64(len(chunk) / facetSize)
	}
	return nil
}

// decodeFacets sends the whole facets in chunk to a.
func decodeFacets(chunk []byte, a *analyzer) {
	for f := 0; f+facetSize <= len(chunk); f += facetSize {
		var t stl.Triangle
		for k := range 3 {
			p := chunk[f+12+12*k:]
			t.Vertices[k] = stl.Vec3{
				math.Float32frombits(binary.LittleEndian.Uint32(p)),
				math.Float32frombits(binary.LittleEndian.Uint32(p[4:])),
				math.Float32frombits(binary.LittleEndian.Uint32(p[8:])),
			}
		}
		a.AppendTriangle(t)
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// firstError skips the library's summary line and returns its first located error.
func firstError(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 1 {
		return lines[1]
	}
	return lines[0]
}

// maxLine is the longest line hschendel/stl's ASCII reader (a bufio.Scanner) accepts.
const maxLine = 64 << 10

// asciiView passes an ASCII STL through lower-cased, and notes the first line that
// comes near maxLine (the scanner's buffer also holds the lines before it, so it can
// give up a little short of maxLine characters into the line). Lower case because
// exporters write SOLID and FACET as often as solid and facet, and admesh reads both,
// while hschendel/stl matches keywords exactly; numbers read the same either way.
type asciiView struct {
	r       io.ReadSeeker
	line    int
	run     int // length of the current line so far
	tooLong int // line number of the first over-long line, or 0
}

func (w *asciiView) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	for i, c := range p[:n] {
		if 'A' <= c && c <= 'Z' {
			p[i] = c + 'a' - 'A'
		}
		if c == '\n' {
			w.line++
			w.run = 0
			continue
		}
		if w.run++; w.run > maxLine-8<<10 && w.tooLong == 0 {
			w.tooLong = w.line + 1
		}
	}
	return n, err
}

func (w *asciiView) Seek(offset int64, whence int) (int64, error) {
	w.line, w.run = 0, 0
	return w.r.Seek(offset, whence)
}

// analyzer implements stl.Writer: it sees each facet once, as it is read. Geometry
// (box, volume, area) is summed on the reading goroutine; facets go in batches to a
// second goroutine that owns the topology (vertex ids, edges, parts), so reading and
// matching run on two cores.
type analyzer struct {
	triangles int
	geom      geometry // of the blocks before the current one
	block     geometry // of the current block of geomBlock facets

	batch   []stl.Triangle
	batches chan []stl.Triangle
	free    chan []stl.Triangle
	done    chan struct{}
	closed  bool
	topo    topology
}

const batchSize = 4096

// topology is the state the second goroutine owns.
type topology struct {
	degenerate int
	vertices   vertexTable
	edges      edgeTable
	parts      unionFind
	faces      uint32 // non-degenerate facets, numbered for union-find
	overflow   bool   // more than maxFaces facets: the rest were not matched
}

// newAnalyzer sizes its tables for the distinct vertices and edges of facets facets
// (zeros when unknown: the tables then grow as they fill).
func newAnalyzer(vertices, edges, facets int) *analyzer {
	a := &analyzer{
		batches: make(chan []stl.Triangle, 4),
		free:    make(chan []stl.Triangle, 6),
		done:    make(chan struct{}),
	}
	a.geom, a.block = newGeometry(), newGeometry()
	// A small file's batches are its size: six full ones are 1.3 MB to clear, which
	// was over half a 12-facet cube's cost (BenchmarkAnalyzeSmall: 550 µs and 1.4 MB, now
	// 170 µs and 0.6 MB). A batch outgrowing its guess grows by append.
	for range 6 {
		a.free <- make([]stl.Triangle, 0, min(batchSize, max(facets, 16)))
	}
	a.batch = <-a.free
	a.topo.vertices.init(vertices)
	a.topo.edges.init(edges)
	a.topo.parts.grow(facets)
	go a.matchTopology()
	return a
}

func (a *analyzer) SetName(string)         {}
func (a *analyzer) SetBinaryHeader([]byte) {}
func (a *analyzer) SetASCII(bool)          {}

func (a *analyzer) SetTriangleCount(uint32) {} // Analyze has sized the tables

func (a *analyzer) AppendTriangle(t stl.Triangle) {
	if a.triangles%geomBlock == 0 && a.triangles > 0 {
		a.geom.fold(a.block)
		a.block = newGeometry()
	}
	a.triangles++
	if !a.block.add(&t.Vertices) {
		return // no sensible geometry: left out of box, volume and topology
	}
	a.batch = append(a.batch, t)
	if len(a.batch) == batchSize {
		a.batches <- a.batch
		a.batch = (<-a.free)[:0]
	}
}

// close sends the last batch and waits for the topology goroutine to finish.
func (a *analyzer) close() {
	if a.closed {
		return
	}
	a.closed = true
	if len(a.batch) > 0 {
		a.batches <- a.batch
	}
	close(a.batches)
	<-a.done
}

func (a *analyzer) matchTopology() {
	defer close(a.done)
	t := &a.topo
	ids := make([][3]uint32, batchSize)
	for batch := range a.batches {
		if t.vertices.short || t.edges.short {
			a.free <- batch // a Stream's tables were too small: it gives up, so skip the work
			continue
		}
		// Two passes per batch: the vertex lookups of a batch do not depend on each
		// other, so the CPU overlaps their cache misses instead of waiting on each.
		for i := range batch {
			for k := range 3 {
				ids[i][k] = t.vertices.id(batch[i].Vertices[k])
			}
		}
		a.free <- batch
		for _, id := range ids[:len(batch)] {
			if id[0] == id[1] || id[1] == id[2] || id[0] == id[2] {
				t.degenerate++ // as admesh: two identical vertices; the facet is left out
				continue
			}
			if t.faces == maxFaces {
				t.overflow = true
				continue
			}
			face := t.faces
			t.faces++
			t.parts.add()
			for k := range 3 {
				if first, shared := t.edges.add(id[k], id[(k+1)%3], face); shared {
					t.parts.union(first, face)
				}
			}
		}
	}
}

func (a *analyzer) finish(rep *Report) {
	a.close()
	a.geom.fold(a.block)
	a.block = newGeometry()
	open, nonmanifold, backwards := a.topo.edges.summary()
	report(rep, a.triangles, a.geom, a.topo.degenerate, int(a.topo.faces), a.topo.parts.roots(), open, nonmanifold, backwards)
}

// report fills rep from the figures of an analysis: triangles read, their geometry,
// the degenerate facets, the facets matched (faces) and their parts (roots), and the
// edges used once, more than twice, and twice the same way.
func report(rep *Report, triangles int, g geometry, degenerate, faces, roots, open, nonmanifold, backwards int) {
	rep.Triangles = triangles
	if triangles == 0 || g.nan == triangles {
		rep.lint(CodeEmpty, "the file has no facets with usable coordinates")
		if g.nan > 0 {
			rep.lint(CodeNaN, fmt.Sprintf("%d facets have NaN or infinite coordinates and were left out", g.nan))
		}
		return
	}
	for k := range 3 {
		rep.BBox.Min[k], rep.BBox.Max[k] = g.min[k], g.max[k]
		rep.BBox.Size[k] = g.max[k] - g.min[k]
	}
	rep.Volume = g.volume / 6
	rep.Area = g.area / 2
	rep.Degenerate = degenerate
	rep.OpenEdges, rep.NonmanifoldEdges, rep.BackwardsEdges = open, nonmanifold, backwards
	rep.Parts = roots
	rep.Watertight = open == 0 && nonmanifold == 0 && faces > 0

	if g.nan > 0 {
		rep.lint(CodeNaN, fmt.Sprintf("%d facets have NaN or infinite coordinates and were left out", g.nan))
	}
	if rep.Degenerate > 0 {
		rep.lint(CodeDegenerate, fmt.Sprintf("%d facets have two identical vertices", rep.Degenerate))
	}
	if rep.OpenEdges > 0 {
		rep.lint(CodeOpenEdges, fmt.Sprintf("%d edges belong to one facet only: the mesh has holes", rep.OpenEdges))
	}
	if rep.NonmanifoldEdges > 0 {
		rep.lint(CodeNonmanifoldEdges, fmt.Sprintf("%d edges are shared by more than two facets", rep.NonmanifoldEdges))
	}
	if rep.BackwardsEdges > 0 {
		rep.lint(CodeInconsistentWinding, fmt.Sprintf("%d shared edges join facets wound opposite ways", rep.BackwardsEdges))
	}
	if rep.Watertight && rep.Volume < 0 {
		rep.lint(CodeInverted, "the facets are wound inside-out: the volume is negative")
	}
	largest := max(rep.BBox.Size[0], rep.BBox.Size[1], rep.BBox.Size[2])
	switch {
	case largest < 1:
		rep.lint(CodeUnitsSuspect, fmt.Sprintf("the largest side is %.3g units; if that is millimetres the part is tiny (metres or inches?)", largest))
	case largest > 10000:
		rep.lint(CodeUnitsSuspect, fmt.Sprintf("the largest side is %.4g units; if that is millimetres the part is over 10 m (micrometres?)", largest))
	}
}

func sub(a, b [3]float64) [3]float64 { return [3]float64{a[0] - b[0], a[1] - b[1], a[2] - b[2]} }
func dot(a, b [3]float64) float64    { return a[0]*b[0] + a[1]*b[1] + a[2]*b[2] }
func crossProduct(a, b [3]float64) [3]float64 {
	return [3]float64{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}
