package mesh

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"runtime"

	"github.com/hschendel/stl"
)

// ErrNotStreamed means a Stream could not analyse the file as it came: analyse the
// stored file instead (Analyze), which gives the report the Stream would have.
var ErrNotStreamed = errors.New("the mesh was not analysed as it streamed")

const (
	// streamPrefixFacets are held before a Stream starts, for estimate to sample: twice
	// what it samples, so its runs fall at random places (3.3 MB).
	streamPrefixFacets = 2 * sampleRuns * runFacets
	streamPrefix       = headerSize + streamPrefixFacets*facetSize
	// Bytes written wait in streamChunks chunks of streamChunk for the analysis, which
	// the writer waits for when they are all taken.
	streamChunk  = 1 << 20
	streamChunks = 4
)

// Stream analyses a binary STL as its bytes are written to it, so an upload is
// analysed in the same pass that stores it instead of being read back afterwards. It
// holds the first streamPrefix bytes, sizes the tables from the vertices and edges
// they hold (Analyze samples the whole file instead), and then matches facets as they come, on two goroutines
// (the Write side copies, one decodes and sums geometry, one matches topology).
//
// Finish ends one of three ways: the report Analyze gives on the same bytes; an error
// Analyze gives on them (a file no bigger than the prefix is analysed by Analyze
// itself); or ErrNotStreamed, when the file is not one it can read as it comes: ASCII,
// a size other than the header's count says (detect's rule), a count over the bound,
// a prefix where few vertices are shared (the two-phase path takes less memory), or
// more distinct vertices or edges than the prefix promised (the tables grow as facets
// arrive, but never past what the prefix promised for the header's count, so a file
// cannot make them grow unbudgeted). Write never fails.
type Stream struct {
	bound  int64 // the most bytes the file can be
	chunks chan []byte
	free   chan []byte
	cur    []byte
	made   int // chunks allocated, up to streamChunks
	done   chan struct{}
	ended  bool

	// Owned by the decoding goroutine until done is closed.
	prefix  []byte
	count   int64 // facets the header claims
	a       *analyzer
	fed     int64
	partial []byte // the start of a facet split across chunks
	gaveUp  bool
}

// NewStream starts a Stream for a file of at most bound bytes. Close or Finish it.
func NewStream(bound int64) *Stream {
	s := &Stream{
		bound:  bound,
		chunks: make(chan []byte, streamChunks),
		free:   make(chan []byte, streamChunks),
		done:   make(chan struct{}),
	}
	go s.run()
	return s
}

// Write hands p to the analysis, waiting while it is streamChunks chunks behind.
func (s *Stream) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && !s.ended {
		if s.cur == nil {
			s.cur = s.chunk()
		}
		k := copy(s.cur[len(s.cur):cap(s.cur)], p)
		s.cur, p = s.cur[:len(s.cur)+k], p[k:]
		if len(s.cur) == cap(s.cur) {
			s.chunks <- s.cur
			s.cur = nil
		}
	}
	return n, nil
}

// chunk returns an empty chunk: a free one, else a new one while fewer than
// streamChunks exist (no larger than the file can be: most files are small), else
// the first to be freed.
func (s *Stream) chunk() []byte {
	select {
	case c := <-s.free:
		return c
	default:
	}
	if s.made < streamChunks {
		s.made++
		return make([]byte, 0, min(streamChunk, max(s.bound, 1)))
	}
	return <-s.free
}

func (s *Stream) end() {
	if s.ended {
		return
	}
	s.ended = true
	if len(s.cur) > 0 {
		s.chunks <- s.cur
	}
	close(s.chunks)
	<-s.done
}

// Close abandons the analysis (the upload failed); a Finish after it says
// ErrNotStreamed.
func (s *Stream) Close() {
	s.end()
	s.gaveUp = true
	if s.a != nil {
		s.a.close()
		s.a = nil
	}
}

// Finish waits for the analysis of the size bytes written and reports on them.
func (s *Stream) Finish(size int64) (Report, error) {
	s.end()
	if s.gaveUp {
		return Report{}, ErrNotStreamed
	}
	if s.a == nil { // the whole file is in the prefix
		if int64(len(s.prefix)) != size {
			return Report{}, ErrNotStreamed
		}
		return Analyze(bytes.NewReader(s.prefix), size)
	}
	a := s.a
	s.a = nil
	a.close()
	rep := Report{Codes: []string{}}
	l, err := detect(bytes.NewReader(s.prefix), size, &rep)
	if err != nil || !l.binary || l.facets != s.count || s.fed != s.count ||
		a.topo.overflow || a.topo.vertices.short || a.topo.edges.short {
		// The tables are garbage now: collect them before the stored file is analysed,
		// or both analyses' tables would be held at once.
		a = nil
		runtime.GC()
		return Report{}, ErrNotStreamed
	}
	rep.Format = "binary"
	a.finish(&rep)
	return rep, nil
}

func (s *Stream) run() {
	defer close(s.done)
	for chunk := range s.chunks {
		if !s.gaveUp {
			s.consume(chunk)
		}
		s.free <- chunk[:0]
	}
}

func (s *Stream) consume(p []byte) {
	if s.a == nil {
		take := min(streamPrefix-len(s.prefix), len(p))
		s.prefix = append(s.prefix, p[:take]...)
		if p = p[take:]; len(s.prefix) < streamPrefix {
			return
		}
		if !s.start() {
			s.gaveUp = true
			return
		}
		s.feed(s.prefix[headerSize:])
	}
	s.feed(p)
}

// start sizes the analyzer from the prefix, or says the file is not for a Stream.
func (s *Stream) start() bool {
	head := s.prefix[:min(len(s.prefix), 512)]
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	if len(trimmed) >= 5 && bytes.EqualFold(trimmed[:5], []byte("solid")) && isText(head) {
		return false // maybe ASCII: detect needs the size to say
	}
	s.count = int64(binary.LittleEndian.Uint32(s.prefix[80:84]))
	if s.count > maxFaces || s.count < streamPrefixFacets || headerSize+facetSize*s.count > s.bound {
		return false // the size cannot match the count, or tables for it would be unbudgeted
	}
	v, e := distinct(s.prefix[headerSize:])
	if 2*v > 3*streamPrefixFacets {
		return false // soup-like: see analyze
	}
	// The whole prefix is one run of consecutive facets, so its rate misses little of
	// the sharing there is (estimate's short runs miss the sharing across their ends:
	// on a torus they guess twice the vertices there are); a tenth more covers a file
	// whose later facets share a little less, and one that shares much less is read
	// back instead.
	scale := func(n int, facets int64) int {
		return min(3*int(facets), int(1.1*float64(n)/streamPrefixFacets*float64(facets))+1)
	}
	// The tables are sized for four times the facets received, and grow by quarters
	// of their size for the count the header claims (see grown): a header that
	// claims more than is sent costs what is sent. (Sized for the claim at once, a
	// 3.3 MB upload whose header claimed 5.4 million facets cost 1 s of CPU and 490 MB
	// of allocations, where the honest header cost 65 ms and 26 MB: hashing into the
	// tables touched every page of them.)
	first := min(s.count, 4*streamPrefixFacets)
	sized := func(n int) (start, most int) {
		start, all := scale(n, first), scale(n, s.count)
		if 4*slotsFor(start) > slotsFor(all) {
			start = all // no growth would end at a quarter of the bound: see grown
		}
		return start, slotsFor(all)
	}
	v0, vMost := sized(v)
	e0, eMost := sized(e)
	s.a = newAnalyzer(v0, e0, int(s.count))
	s.a.topo.vertices.most, s.a.topo.edges.most = vMost, eMost
	return true
}

// distinct counts the distinct vertices and edges of the facets in p, as the
// topology matches them (degenerate facets left out).
func distinct(p []byte) (vertices, edges int) {
	n := len(p) / facetSize
	var vt vertexTable
	var et edgeTable
	vt.init(3 * n)
	et.init(3 * n)
	for f := 0; f < n; f++ {
		var ids [3]uint32
		for k := range 3 {
			q := p[f*facetSize+12+12*k:]
			ids[k] = vt.id(stl.Vec3{
				math.Float32frombits(binary.LittleEndian.Uint32(q)),
				math.Float32frombits(binary.LittleEndian.Uint32(q[4:])),
				math.Float32frombits(binary.LittleEndian.Uint32(q[8:])),
			})
		}
		if ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
			continue
		}
		for k := range 3 {
			et.add(ids[k], ids[(k+1)%3], uint32(f))
		}
	}
	return vt.used, et.used
}

// feed decodes the facets in p (after any partial one held from before) into the
// analyzer, up to the count the header claims.
func (s *Stream) feed(p []byte) {
	if len(s.partial) > 0 {
		k := min(facetSize-len(s.partial), len(p))
		s.partial = append(s.partial, p[:k]...)
		p = p[k:]
		if len(s.partial) < facetSize {
			return
		}
		s.facets(s.partial)
		s.partial = s.partial[:0]
	}
	whole := len(p) / facetSize * facetSize
	s.facets(p[:whole])
	s.partial = append(s.partial, p[whole:]...)
}

func (s *Stream) facets(p []byte) {
	n := min(int64(len(p)/facetSize), s.count-s.fed)
	if n > 0 {
		decodeFacets(p[:n*facetSize], s.a)
	}
	s.fed += int64(len(p) / facetSize) // more than count: the size will not match
}
