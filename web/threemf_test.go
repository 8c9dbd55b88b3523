package web

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"testing"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
	"github.com/fabcommons/fabcommons/fabrication"
)

// lid3MF is a 60×40×5 mm plate in centimetres, placed by its build item; with a
// thumbnail it carries a red picture with a text chunk that must not be served.
func lid3MF(thumbnail []byte) []byte {
	plate := meshtest.Cube(stl.Vec3{0, 0, 0}, 1)
	return meshtest.ThreeMF(meshtest.Model3MF("centimeter", meshtest.MeshObject(1, "lid", plate),
		meshtest.Item(1, "6 0 0 0 4 0 0 0 0.5 0 0 0")), thumbnail)
}

func redPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 64, 48))
	for i := range img.Pix {
		img.Pix[i] = []uint8{220, 20, 20, 255}[i%4]
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	// A tEXt chunk after the header: decoders skip it, a copy served as uploaded keeps it.
	data := b.Bytes()
	text := []byte("tEXtsecret\x00GPS1")
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(text)-4))
	chunk = append(chunk, text...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(text))
	return append(append(append([]byte{}, data[:33]...), chunk...), data[33:]...)
}

// TestDesignWith3MF: a 3MF is a mesh: analysed on upload (figures in millimetres), named
// by a BOM line, ordered, handed to an agent, and shown on a card by its own thumbnail
// (re-encoded) or, without one, drawn from its build.
func TestDesignWith3MF(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	thumb := redPNG(t)
	body := newMultipart().field("meta", map[string]any{"message": "A lid"}).
		file("files", "parts/lid.3mf", lid3MF(thumb)).
		field("bom", []byte("ref,kind,name,qty,file,material\nB1,printed,Base,1,parts/base.stl,PETG\nL1,printed,Lid,1,parts/lid.3mf,PLA\n")).done()
	r := f.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/versions", body: body, header: f.maker})
	r.want(t, 201, "")
	var lid map[string]any
	for _, file := range r.json["version"].(map[string]any)["files"].([]any) {
		if file.(map[string]any)["path"] == "parts/lid.3mf" {
			lid = file.(map[string]any)
		}
	}
	if lid == nil || lid["kind"] != "mesh" {
		t.Fatalf("got %v, want parts/lid.3mf as a mesh", lid)
	}
	rep := lid["mesh"].(map[string]any)
	size := rep["bbox"].(map[string]any)["size"].([]any)
	if rep["format"] != "3mf" || size[0] != 60.0 || size[1] != 40.0 || size[2] != 5.0 || rep["volume"] != 12000.0 {
		t.Fatalf("got report %v, want a 60×40×5 mm plate of 12000 mm³", rep)
	}

	// A card (of a design whose first mesh is the 3MF): the package's thumbnail,
	// re-encoded, fitted to the card.
	body = newMultipart().field("meta", map[string]any{"title": "Red lid", "license": "MIT"}).file("files", "lid.3mf", lid3MF(thumb)).done()
	f.do(t, call{method: "POST", path: "/api/v1/designs", body: body, header: f.maker}).want(t, 201, "")
	r = f.do(t, call{method: "GET", path: "/designs/red-lid/thumbnail.png"})
	r.want(t, 200, "")
	img, err := png.Decode(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if c := color.NRGBAModel.Convert(img.At(thumbW/2, thumbH/2)).(color.NRGBA); c.R < 200 || c.G > 40 {
		t.Fatalf("the card's middle is %v, want the 3MF's red thumbnail", c)
	}
	if bytes.Contains(r.body, []byte("GPS1")) {
		t.Fatal("the thumbnail was served with the chunk it was uploaded with")
	}

	// An order names the 3MF, by file and by BOM line; the agent gets its bytes.
	jobs := f.order(t, map[string]any{"bom_refs": []string{"L1"}, "material": "PLA"})
	if len(jobs) != 1 || jobs[0].(map[string]any)["file"] != "parts/lid.3mf" {
		t.Fatalf("got jobs %v, want one of parts/lid.3mf", jobs)
	}
	c, _ := f.poll(t, f.machine)
	if c.id == "" {
		t.Fatal("no job offered")
	}
	got := f.do(t, call{method: "GET", path: c.file, header: merge(f.machine, map[string]string{"X-Fab-Lease": c.lease})})
	got.want(t, 200, "")
	if !bytes.Equal(got.body, lid3MF(thumb)) {
		t.Fatalf("file: got %d bytes, want the 3MF", len(got.body))
	}

	// Without a thumbnail the card is drawn from the build; a damaged 3MF is refused.
	body = newMultipart().field("meta", map[string]any{"title": "Plain lid", "license": "MIT"}).file("files", "lid.3mf", lid3MF(nil)).done()
	f.do(t, call{method: "POST", path: "/api/v1/designs", body: body, header: f.maker}).want(t, 201, "")
	r = f.do(t, call{method: "GET", path: "/designs/plain-lid/thumbnail.png"})
	r.want(t, 200, "")
	if img, err = png.Decode(bytes.NewReader(r.body)); err != nil {
		t.Fatal(err)
	}
	if c := color.NRGBAModel.Convert(img.At(thumbW/2, thumbH/2)).(color.NRGBA); c.A != 255 || c.B < c.R {
		t.Fatalf("the card's middle is %v, want the drawn (blue) plate", c)
	}
	for name, data := range map[string][]byte{"cut short": lid3MF(nil)[:300], "an STL": cubeSTL} {
		body = newMultipart().field("meta", map[string]any{"title": "Broken", "license": "MIT"}).file("files", "broken.3mf", data).done()
		r = f.do(t, call{method: "POST", path: "/api/v1/designs", body: body, header: f.maker})
		r.want(t, 422, "invalid")
		t.Logf("%s: %s", name, r.body)
	}
}
