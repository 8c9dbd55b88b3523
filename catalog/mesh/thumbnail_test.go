package mesh_test

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog/mesh"
	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
)

func TestThumbnail(t *testing.T) {
	t.Parallel()
	cube := meshtest.Binary("cube", meshtest.Cube(stl.Vec3{10, 10, 0}, 20))
	rep, err := mesh.Analyze(bytes.NewReader(cube), int64(len(cube)))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mesh.Thumbnail(bytes.NewReader(cube), rep.BBox, 160, 120)
	if err != nil {
		t.Fatal(err)
	}
	// An isometric cube shows three faces in three shades, filling the middle of the
	// picture and leaving the corners empty.
	shades := map[[3]uint8]int{}
	for y := range 120 {
		for x := range 160 {
			c := img.NRGBAAt(x, y)
			if c.A != 0 {
				shades[[3]uint8{c.R, c.G, c.B}]++
			}
		}
	}
	if len(shades) != 3 {
		t.Errorf("got %d shades, want 3 (the three faces in view): %v", len(shades), shades)
	}
	if c := img.NRGBAAt(80, 60); c.A == 0 {
		t.Error("the centre is empty")
	}
	for _, p := range [][2]int{{0, 0}, {159, 0}, {0, 119}, {159, 119}} {
		if img.NRGBAAt(p[0], p[1]).A != 0 {
			t.Errorf("corner %v is drawn", p)
		}
	}
	if dir := os.Getenv("FAB_THUMBNAIL_DIR"); dir != "" { // to look at it
		var buf bytes.Buffer
		png.Encode(&buf, img)
		os.WriteFile(filepath.Join(dir, "cube.png"), buf.Bytes(), 0o644)
	}
	if _, err := mesh.Thumbnail(bytes.NewReader([]byte("solid x\nfacet oops")), rep.BBox, 16, 16); err == nil {
		t.Error("a broken STL: got no error")
	}
}
