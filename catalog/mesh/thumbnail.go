package mesh

import (
	"image"
	"image/color"
	"io"
	"math"

	"github.com/hschendel/stl"
)

// Thumbnail draws an STL as a small picture: an isometric view from the front right,
// flat-shaded, fitted to w×h. It streams the triangles through a z-buffer, so memory is
// the picture's whatever the mesh's size. bbox is the mesh's box (from its Report).
func Thumbnail(r io.ReadSeeker, bbox BBox, w, h int) (*image.NRGBA, error) {
	t := newThumb(bbox, w, h)
	if err := stl.CopyAll(r, t); err != nil {
		return nil, err
	}
	return t.img, nil
}

// Draw draws the 3MF's build as placed, as Thumbnail draws an STL. bbox is the build's
// box (from its Report).
func (p *Package3MF) Draw(bbox BBox, w, h int) *image.NRGBA {
	t := newThumb(bbox, w, h)
	p.Place(t, nil)
	return t.img
}

func newThumb(bbox BBox, w, h int) *thumb {
	t := &thumb{img: image.NewNRGBA(image.Rect(0, 0, w, h)), z: make([]float64, w*h), w: w, h: h}
	for i := range t.z {
		t.z[i] = math.Inf(-1)
	}
	// View: turn 45° about Z, then tilt 35° toward the viewer; X right, Y up, depth toward us.
	az, el := math.Pi/4, 35*math.Pi/180
	t.ca, t.sa, t.ce, t.se = math.Cos(az), math.Sin(az), math.Cos(el), math.Sin(el)
	center := [3]float64{(bbox.Min[0] + bbox.Max[0]) / 2, (bbox.Min[1] + bbox.Max[1]) / 2, (bbox.Min[2] + bbox.Max[2]) / 2}
	t.center = center
	// Fit: the projected box of the bounding box's corners.
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for i := range 8 {
		p := [3]float64{bbox.Min[0], bbox.Min[1], bbox.Min[2]}
		for a := range 3 {
			if i&(1<<a) != 0 {
				p[a] = bbox.Max[a]
			}
		}
		x, y, _ := t.project(p)
		minX, maxX, minY, maxY = min(minX, x), max(maxX, x), min(minY, y), max(maxY, y)
	}
	spanX, spanY := max(maxX-minX, 1e-9), max(maxY-minY, 1e-9)
	t.scale = 0.9 * min(float64(w)/spanX, float64(h)/spanY)
	t.offX, t.offY = float64(w)/2-t.scale*(minX+maxX)/2, float64(h)/2+t.scale*(minY+maxY)/2
	return t
}

type thumb struct {
	img               *image.NRGBA
	z                 []float64
	w, h              int
	ca, sa, ce, se    float64
	center            [3]float64
	scale, offX, offY float64
	triangles         int
}

// project maps a model point to view space: x right, y up, z toward the viewer.
func (t *thumb) project(p [3]float64) (x, y, z float64) {
	px, py, pz := p[0]-t.center[0], p[1]-t.center[1], p[2]-t.center[2]
	// about Z by az (so the viewer looks from +X-Y toward the centre)
	rx := px*t.ca + py*t.sa
	ry := -px*t.sa + py*t.ca
	// tilt: the viewer is toward -Y, raised by el, looking down at the centre
	y = ry*t.se + pz*t.ce
	z = -ry*t.ce + pz*t.se
	return rx, y, z
}

func (t *thumb) SetName(string)          {}
func (t *thumb) SetBinaryHeader([]byte)  {}
func (t *thumb) SetASCII(bool)           {}
func (t *thumb) SetTriangleCount(uint32) {}

func (t *thumb) AppendTriangle(tr stl.Triangle) {
	t.triangles++
	var sx, sy, sz [3]float64
	var v [3][3]float64
	for i, p := range tr.Vertices {
		v[i] = [3]float64{float64(p[0]), float64(p[1]), float64(p[2])}
		x, y, z := t.project(v[i])
		sx[i], sy[i], sz[i] = t.offX+t.scale*x, t.offY-t.scale*y, z
	}
	// Shade by the face's own normal (the stored one may be zero), lit from the viewer's
	// upper left; both sides lit so a mesh wound inside out still shows.
	a := [3]float64{v[1][0] - v[0][0], v[1][1] - v[0][1], v[1][2] - v[0][2]}
	b := [3]float64{v[2][0] - v[0][0], v[2][1] - v[0][1], v[2][2] - v[0][2]}
	n := [3]float64{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
	l := math.Sqrt(n[0]*n[0] + n[1]*n[1] + n[2]*n[2])
	if l == 0 {
		return
	}
	nx, ny, nz := t.project([3]float64{n[0]/l + t.center[0], n[1]/l + t.center[1], n[2]/l + t.center[2]})
	light := math.Abs(-0.4*nx+0.6*ny+0.7*nz) / math.Sqrt(0.16+0.36+0.49)
	shade := 0.35 + 0.65*light
	col := color.NRGBA{R: uint8(40 * shade), G: uint8(120 * shade), B: uint8(200 * shade), A: 255}

	minX := max(0, int(math.Floor(min(sx[0], sx[1], sx[2]))))
	maxX := min(t.w-1, int(math.Ceil(max(sx[0], sx[1], sx[2]))))
	minY := max(0, int(math.Floor(min(sy[0], sy[1], sy[2]))))
	maxY := min(t.h-1, int(math.Ceil(max(sy[0], sy[1], sy[2]))))
	area := (sx[1]-sx[0])*(sy[2]-sy[0]) - (sx[2]-sx[0])*(sy[1]-sy[0])
	if area == 0 {
		return
	}
	for py := minY; py <= maxY; py++ {
		for px := minX; px <= maxX; px++ {
			cx, cy := float64(px)+0.5, float64(py)+0.5
			w0 := ((sx[1]-cx)*(sy[2]-cy) - (sx[2]-cx)*(sy[1]-cy)) / area
			w1 := ((sx[2]-cx)*(sy[0]-cy) - (sx[0]-cx)*(sy[2]-cy)) / area
			w2 := 1 - w0 - w1
			if w0 < 0 || w1 < 0 || w2 < 0 {
				continue
			}
			z := w0*sz[0] + w1*sz[1] + w2*sz[2]
			if i := py*t.w + px; z > t.z[i] {
				t.z[i] = z
				t.img.SetNRGBA(px, py, col)
			}
		}
	}
}
