// Package meshtest makes STL files for tests and benchmarks: cubes, tori with any
// number of facets, and the damaged variants a mesh checker must cope with.
package meshtest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"math"

	"github.com/hschendel/stl"
)

// Cube returns the 12 facets of an axis-aligned cube with corner at origin, wound
// outward (counter-clockwise seen from outside).
func Cube(origin stl.Vec3, side float32) []stl.Triangle {
	o := origin
	p := func(x, y, z float32) stl.Vec3 { return stl.Vec3{o[0] + x*side, o[1] + y*side, o[2] + z*side} }
	quads := [][4]stl.Vec3{
		{p(0, 0, 0), p(0, 1, 0), p(1, 1, 0), p(1, 0, 0)}, // bottom, normal -z
		{p(0, 0, 1), p(1, 0, 1), p(1, 1, 1), p(0, 1, 1)}, // top, +z
		{p(0, 0, 0), p(1, 0, 0), p(1, 0, 1), p(0, 0, 1)}, // front, -y
		{p(0, 1, 0), p(0, 1, 1), p(1, 1, 1), p(1, 1, 0)}, // back, +y
		{p(0, 0, 0), p(0, 0, 1), p(0, 1, 1), p(0, 1, 0)}, // left, -x
		{p(1, 0, 0), p(1, 1, 0), p(1, 1, 1), p(1, 0, 1)}, // right, +x
	}
	var ts []stl.Triangle
	for _, q := range quads {
		ts = append(ts, tri(q[0], q[1], q[2]), tri(q[0], q[2], q[3]))
	}
	return ts
}

func tri(a, b, c stl.Vec3) stl.Triangle {
	t := stl.Triangle{Vertices: [3]stl.Vec3{a, b, c}}
	t.Normal = normal(a, b, c)
	return t
}

func normal(a, b, c stl.Vec3) stl.Vec3 {
	u := [3]float64{float64(b[0] - a[0]), float64(b[1] - a[1]), float64(b[2] - a[2])}
	v := [3]float64{float64(c[0] - a[0]), float64(c[1] - a[1]), float64(c[2] - a[2])}
	n := [3]float64{u[1]*v[2] - u[2]*v[1], u[2]*v[0] - u[0]*v[2], u[0]*v[1] - u[1]*v[0]}
	l := math.Sqrt(n[0]*n[0] + n[1]*n[1] + n[2]*n[2])
	if l == 0 {
		return stl.Vec3{}
	}
	return stl.Vec3{float32(n[0] / l), float32(n[1] / l), float32(n[2] / l)}
}

// Torus returns a closed torus of 2·rings·sides facets (major radius R, minor r),
// centred on the origin. Vertices are computed once per grid point so neighbouring
// facets share them exactly.
func Torus(rings, sides int, R, r float64) []stl.Triangle {
	grid := make([]stl.Vec3, rings*sides)
	for i := range rings {
		u := 2 * math.Pi * float64(i) / float64(rings)
		for j := range sides {
			v := 2 * math.Pi * float64(j) / float64(sides)
			grid[i*sides+j] = stl.Vec3{
				float32((R + r*math.Cos(v)) * math.Cos(u)),
				float32((R + r*math.Cos(v)) * math.Sin(u)),
				float32(r * math.Sin(v)),
			}
		}
	}
	at := func(i, j int) stl.Vec3 { return grid[(i%rings)*sides+j%sides] }
	ts := make([]stl.Triangle, 0, 2*rings*sides)
	for i := range rings {
		for j := range sides {
			a, b, c, d := at(i, j), at(i+1, j), at(i+1, j+1), at(i, j+1)
			ts = append(ts, tri(a, b, c), tri(a, c, d))
		}
	}
	return ts
}

// Binary encodes facets as binary STL with the given 80-byte header text.
func Binary(header string, ts []stl.Triangle) []byte {
	var buf bytes.Buffer
	buf.Grow(84 + 50*len(ts))
	h := make([]byte, 80)
	copy(h, header)
	buf.Write(h)
	binary.Write(&buf, binary.LittleEndian, uint32(len(ts)))
	var f [50]byte
	for _, t := range ts {
		put := func(off int, v stl.Vec3) {
			for k := range 3 {
				binary.LittleEndian.PutUint32(f[off+4*k:], math.Float32bits(v[k]))
			}
		}
		put(0, t.Normal)
		put(12, t.Vertices[0])
		put(24, t.Vertices[1])
		put(36, t.Vertices[2])
		buf.Write(f[:])
	}
	return buf.Bytes()
}

// ASCII encodes facets as ASCII STL through hschendel/stl's writer.
func ASCII(name string, ts []stl.Triangle) []byte {
	var buf bytes.Buffer
	s := stl.Solid{Name: name, IsAscii: true, Triangles: ts}
	if err := s.WriteAll(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// WriteTorusBinary streams a torus of 2·rings·sides facets as binary STL to w without
// holding it in memory, for files of any size.
func WriteTorusBinary(w io.Writer, rings, sides int, R, r float64) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	h := make([]byte, 84)
	copy(h, "fabcommons torus")
	binary.LittleEndian.PutUint32(h[80:], uint32(2*rings*sides))
	bw.Write(h)
	point := func(i, j int) stl.Vec3 {
		u := 2 * math.Pi * float64(i%rings) / float64(rings)
		v := 2 * math.Pi * float64(j%sides) / float64(sides)
		return stl.Vec3{float32((R + r*math.Cos(v)) * math.Cos(u)), float32((R + r*math.Cos(v)) * math.Sin(u)), float32(r * math.Sin(v))}
	}
	var f [50]byte
	put := func(off int, v stl.Vec3) {
		for k := range 3 {
			binary.LittleEndian.PutUint32(f[off+4*k:], math.Float32bits(v[k]))
		}
	}
	emit := func(t stl.Triangle) {
		put(0, t.Normal)
		put(12, t.Vertices[0])
		put(24, t.Vertices[1])
		put(36, t.Vertices[2])
		bw.Write(f[:])
	}
	for i := range rings {
		for j := range sides {
			a, b, c, d := point(i, j), point(i+1, j), point(i+1, j+1), point(i, j+1)
			emit(tri(a, b, c))
			emit(tri(a, c, d))
		}
	}
	return bw.Flush()
}

// WriteSoupBinary streams n facets that share no vertex (a triangle soup: every
// vertex distinct, the worst case for the vertex and edge tables: small triangles at
// pseudo-random places) as binary STL to w.
func WriteSoupBinary(w io.Writer, n int) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	h := make([]byte, 84)
	copy(h, "fabcommons soup")
	binary.LittleEndian.PutUint32(h[80:], uint32(n))
	bw.Write(h)
	var f [50]byte
	put := func(off int, v stl.Vec3) {
		for k := range 3 {
			binary.LittleEndian.PutUint32(f[off+4*k:], math.Float32bits(v[k]))
		}
	}
	state := uint64(17)
	random := func() float32 { // splitmix64, scaled to [0, 1000)
		state += 0x9E3779B97F4A7C15
		z := state
		z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
		z = (z ^ z>>27) * 0x94D049BB133111EB
		return float32((z^z>>31)>>40) / (1 << 24) * 1000
	}
	for range n {
		x, y, z := random(), random(), random()
		put(12, stl.Vec3{x, y, z})
		put(24, stl.Vec3{x + 0.5, y, z})
		put(36, stl.Vec3{x, y + 0.5, z + 0.25})
		bw.Write(f[:])
	}
	return bw.Flush()
}
