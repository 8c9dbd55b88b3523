package mesh

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/hschendel/stl"
)

// Analyze reads the STL in r (size bytes) and reports on it. It fails only when the
// bytes are not STL at all (ErrNotSTL) or cannot be read; defects in an STL are
// reported as lint codes. Memory grows with the number of distinct vertices and
// edges, never with the facet count a header claims.
func Analyze(r io.ReaderAt, size int64) (Report, error) {
	rep := Report{Codes: []string{}}
	l, err := detect(r, size, &rep)
	if err != nil {
		return rep, err
	}
	a := newAnalyzer()
	defer a.close() // ends the topology goroutine on every path
	if l.binary {
		rep.Format = "binary"
		view, err := newBinaryView(r, l)
		if err != nil {
			return rep, fmt.Errorf("read STL: %w", err)
		}
		if err := stl.CopyAll(view, a); err != nil {
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
	a.finish(&rep)
	return rep, nil
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
	nan       int
	volume    float64 // six times the signed volume, summed
	area      float64 // twice the area, summed
	min, max  [3]float64

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
}

func newAnalyzer() *analyzer {
	a := &analyzer{
		batches: make(chan []stl.Triangle, 4),
		free:    make(chan []stl.Triangle, 6),
		done:    make(chan struct{}),
	}
	for i := range 3 {
		a.min[i], a.max[i] = math.Inf(1), math.Inf(-1)
	}
	for range 6 {
		a.free <- make([]stl.Triangle, 0, batchSize)
	}
	a.batch = <-a.free
	a.topo.vertices.init(1 << 10)
	a.topo.edges.init(1 << 10)
	go a.matchTopology()
	return a
}

func (a *analyzer) SetName(string)         {}
func (a *analyzer) SetBinaryHeader([]byte) {}
func (a *analyzer) SetASCII(bool)          {}

// SetTriangleCount sizes the tables once for a binary file, whose count detect has
// already checked against the file size. It runs before the first facet is sent.
func (a *analyzer) SetTriangleCount(n uint32) {
	a.topo.vertices.init(int(n))
	a.topo.edges.init(int(n) * 2)
	a.topo.parts.grow(int(n))
}

func (a *analyzer) AppendTriangle(t stl.Triangle) {
	a.triangles++
	for _, p := range t.Vertices {
		for _, f := range p {
			if math.Float32bits(f)&0x7f800000 == 0x7f800000 { // NaN or ±Inf
				a.nan++
				return // no sensible geometry: left out of box, volume and topology
			}
		}
	}
	var v [3][3]float64
	for i, p := range t.Vertices {
		for k := range 3 {
			f := float64(p[k])
			v[i][k] = f
			if f < a.min[k] {
				a.min[k] = f
			}
			if f > a.max[k] {
				a.max[k] = f
			}
		}
	}
	cross := crossProduct(sub(v[1], v[0]), sub(v[2], v[0]))
	a.area += math.Sqrt(dot(cross, cross))
	a.volume += dot(v[0], crossProduct(v[1], v[2]))

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
			face := t.faces
			t.faces++
			t.parts.add()
			t.edges.add(id[0], id[1], face, &t.parts)
			t.edges.add(id[1], id[2], face, &t.parts)
			t.edges.add(id[2], id[0], face, &t.parts)
		}
	}
}

func (a *analyzer) finish(rep *Report) {
	a.close()
	rep.Triangles = a.triangles
	if a.triangles == 0 || a.nan == a.triangles {
		rep.lint(CodeEmpty, "the file has no facets with usable coordinates")
		if a.nan > 0 {
			rep.lint(CodeNaN, fmt.Sprintf("%d facets have NaN or infinite coordinates and were left out", a.nan))
		}
		return
	}
	for k := range 3 {
		rep.BBox.Min[k], rep.BBox.Max[k] = a.min[k], a.max[k]
		rep.BBox.Size[k] = a.max[k] - a.min[k]
	}
	rep.Volume = a.volume / 6
	rep.Area = a.area / 2
	rep.Degenerate = a.topo.degenerate
	rep.OpenEdges, rep.NonmanifoldEdges, rep.BackwardsEdges = a.topo.edges.summary()
	rep.Parts = a.topo.parts.roots()
	rep.Watertight = rep.OpenEdges == 0 && rep.NonmanifoldEdges == 0 && a.topo.faces > 0

	if a.nan > 0 {
		rep.lint(CodeNaN, fmt.Sprintf("%d facets have NaN or infinite coordinates and were left out", a.nan))
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
