package mesh

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"runtime"
	"testing"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
)

// TestStreamAgrees: a Stream's report is Analyze's on the same bytes, whatever the
// pieces it is written in, or it says ErrNotStreamed (and Analyze is the answer).
func TestStreamAgrees(t *testing.T) {
	t.Parallel()
	torus := meshtest.Torus(300, 200, 100, 30) // 120,000 facets: past the prefix
	// A torus with a hole and a degenerate facet, whose header begins with "solid".
	damaged := append([]stl.Triangle(nil), torus[:len(torus)-1]...)
	damaged[5000].Vertices[1] = damaged[5000].Vertices[0]
	var soup bytes.Buffer
	if err := meshtest.WriteSoupBinary(&soup, 100000); err != nil {
		t.Fatal(err)
	}
	// Shared vertices in the prefix, then a soup: more distinct vertices than the
	// prefix promised.
	late := append(meshtest.Binary("", torus[:80000])[:84+80000*50], soup.Bytes()[84:84+200000*50/2]...)
	late = append([]byte(nil), late...)
	putCount(late)
	mismatch := meshtest.Binary("", torus)
	mismatch = mismatch[:len(mismatch)-7] // the size no longer matches the count
	tests := []struct {
		name     string
		file     []byte
		bound    int64
		streamed bool // the Stream reports on it rather than saying ErrNotStreamed
	}{
		{"torus", meshtest.Binary("fabcommons", torus), 1 << 30, true},
		{"damaged, solid header", meshtest.Binary("solid damaged", damaged), 1 << 30, true},
		{"cube, within the prefix", meshtest.Binary("", meshtest.Cube(stl.Vec3{}, 10)), 1 << 30, true},
		{"ascii cube, within the prefix", meshtest.ASCII("cube", meshtest.Cube(stl.Vec3{}, 10)), 1 << 30, true},
		{"ascii torus", meshtest.ASCII("torus", torus), 1 << 30, false},
		{"soup", soup.Bytes(), 1 << 30, false},
		{"soup after a shared prefix", late, 1 << 30, false},
		{"size and count disagree", mismatch, 1 << 30, false},
		{"count over the bound", meshtest.Binary("", torus), 84 + 50*100000, false},
	}
	for _, tt := range tests {
		want, wantErr := Analyze(bytes.NewReader(tt.file), int64(len(tt.file)))
		for _, piece := range []int{1 << 20, 7777, 49} {
			s := NewStream(tt.bound)
			for b := tt.file; len(b) > 0; {
				k := min(piece, len(b))
				s.Write(b[:k])
				b = b[k:]
			}
			got, err := s.Finish(int64(len(tt.file)))
			s.Close()
			if !tt.streamed {
				if !errors.Is(err, ErrNotStreamed) {
					t.Errorf("%s in pieces of %d: got %v, want ErrNotStreamed", tt.name, piece, err)
				}
				continue
			}
			if err != wantErr || !reflect.DeepEqual(got, want) {
				t.Errorf("%s in pieces of %d:\ngot  %+v, %v\nwant %+v, %v", tt.name, piece, got, err, want, wantErr)
			}
		}
	}
}

// putCount sets a binary STL's header count to what its size holds.
func putCount(b []byte) {
	n := uint32((len(b) - headerSize) / facetSize)
	b[80], b[81], b[82], b[83] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
}

// TestStreamClose: a Stream abandoned part way ends its goroutines.
func TestStreamClose(t *testing.T) {
	t.Parallel()
	b := meshtest.Binary("", meshtest.Torus(300, 200, 100, 30))
	s := NewStream(1 << 30)
	s.Write(b[:len(b)/2])
	s.Close()
	s.Close()
	if _, err := s.Finish(int64(len(b))); !errors.Is(err, ErrNotStreamed) {
		t.Errorf("Finish after Close: got %v, want ErrNotStreamed", err)
	}
}

// TestStreamSmallFile: a small file costs a Stream no more than its own size in
// chunks (most uploads are small; a Stream's four 1 MiB chunks would be made for each).
// Not parallel: it measures the process's allocations.
func TestStreamSmallFile(t *testing.T) {
	cube := meshtest.Binary("", meshtest.Cube(stl.Vec3{}, 10))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		s := NewStream(int64(len(cube)))
		s.Write(cube)
		if _, err := s.Finish(int64(len(cube))); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	runtime.ReadMemStats(&after)
	// Analyze's own buffers take about 0.6 MiB for a cube (mostly the vertex tables'
	// caches); four chunks would be 4 MiB more.
	if per := (after.TotalAlloc - before.TotalAlloc) / 10; per > 2<<20 {
		t.Errorf("got %d KiB allocated per small file, want under 2048", per>>10)
	}
}

// TestStreamCostFollowsTheBytes: a header that claims more facets than are sent costs
// a Stream about what is sent, not what is claimed. The first 65,536 facets of a torus
// are streamed twice: with an honest count, and with a count that claims a 256 MiB
// file (a multipart upload can declare that length and end early). Sized for the
// claim at once, the tables took 9.6 times the honest file's allocations (now about
// 2). Not parallel: it measures the process's allocations.
func TestStreamCostFollowsTheBytes(t *testing.T) {
	const bound = 256 << 20
	torus := meshtest.Binary("", meshtest.Torus(400, 200, 100, 30))[:streamPrefix]
	stream := func(count uint32) (uint64, error) {
		file := bytes.Clone(torus)
		binary.LittleEndian.PutUint32(file[80:], count)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := NewStream(bound)
		defer s.Close()
		s.Write(file)
		_, err := s.Finish(int64(len(file)))
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, err
	}
	honest, err := stream(streamPrefixFacets)
	if err != nil {
		t.Fatalf("the honest file: %v", err)
	}
	claimed, err := stream((bound - headerSize) / facetSize)
	if !errors.Is(err, ErrNotStreamed) {
		t.Fatalf("the file that claims more than it is: got %v, want ErrNotStreamed", err)
	}
	t.Logf("allocated: honest %d KiB, claiming 256 MiB %d KiB", honest>>10, claimed>>10)
	if claimed > 4*honest {
		t.Errorf("claiming 256 MiB: %d KiB allocated, %.1f times the honest file's %d KiB; want at most 4 times",
			claimed>>10, float64(claimed)/float64(honest), honest>>10)
	}
}

// TestStreamGrows: files large enough that a Stream's tables start under a quarter of
// their bound and grow to it as the facets arrive agree with Analyze, and the tables
// end at their bound, not short; the last growth was from a quarter of it.
func TestStreamGrows(t *testing.T) {
	t.Parallel()
	big := meshtest.Torus(1000, 600, 100, 30) // 1.2 million facets
	two := append(append([]stl.Triangle(nil), meshtest.Torus(300, 200, 100, 30)...), meshtest.Torus(1000, 500, 300, 30)...)
	for name, tris := range map[string][]stl.Triangle{"torus": big, "two tori": two} {
		file := meshtest.Binary("", tris)
		want, err := Analyze(bytes.NewReader(file), int64(len(file)))
		if err != nil {
			t.Fatal(err)
		}
		s := NewStream(1 << 30)
		for b := file; len(b) > 0; {
			k := min(1<<20, len(b))
			s.Write(b[:k])
			b = b[k:]
		}
		s.end()
		v, e := &s.a.topo.vertices, &s.a.topo.edges
		if v.short || e.short || len(v.slots) != v.most || len(e.slots) != e.most || v.grew == 0 || e.grew == 0 {
			t.Errorf("%s: vertex table %d of %d slots (short %v, grown %d times), edge table %d of %d (short %v, grown %d times); want both grown to their bound",
				name, len(v.slots), v.most, v.short, v.grew, len(e.slots), e.most, e.short, e.grew)
		}
		got, err := s.Finish(int64(len(file)))
		s.Close()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\ngot  %+v, %v\nwant %+v", name, got, err, want)
		}
	}
}

// TestGrown: a table without a bound grows by half; one with a bound grows to the
// least of most, most/4, most/16 ... over it, and by more than a few slots, so that
// its last growth is from at most a quarter of the bound.
func TestGrown(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ n, most, want int }{
		{1000, 0, 1500},
		{1000, 65536, 4096},
		{4095, 65536, 16384}, // not 4096: one slot more would rehash for nothing
		{4096, 65536, 16384},
		{16384, 65536, 65536},
		{65536, 65536, 0},
		{70000, 65536, 0},
	} {
		if got := grown(c.n, c.most); got != c.want {
			t.Errorf("grown(%d, %d) = %d, want %d", c.n, c.most, got, c.want)
		}
	}
}
