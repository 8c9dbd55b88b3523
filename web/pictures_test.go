package web

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/png"
	"strings"
	"testing"
)

// Source files, drawings and pictures travel with a design, each listed as what it is;
// pictures are shown re-encoded and scaled, never as uploaded.
func TestDesignFilesAndPictures(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ada := login(t, b, "ada")
	photo := append(testPNG(t, 1000, 500), []byte("<script>alert(1)</script>")...) // trailing bytes after IEND
	files := map[string][]byte{
		"clamp.stl": cubeSTL, "src/clamp.scad": []byte("cube(20);"), "src/clamp.step": []byte("ISO-10303-21;"),
		"pcb/clamp.kicad_pcb": []byte("(kicad_pcb)"), "drawings/clamp.svg": []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`),
		"drawings/clamp.pdf": []byte("%PDF-1.4"), "photos/clamp_in-use.png": photo, "notes.txt": []byte("hi"),
	}
	body := newMultipart().field("meta", map[string]any{"title": "Clamp", "license": "CERN-OHL-P-2.0"})
	for name, data := range files {
		body.file("files", name, data)
	}
	r := b.do(t, call{method: "POST", path: "/api/v1/designs", body: body.done(), header: ada})
	r.want(t, 201, "")
	want := map[string]string{"clamp.stl": "mesh", "src/clamp.scad": "source", "src/clamp.step": "source", "pcb/clamp.kicad_pcb": "source",
		"drawings/clamp.svg": "drawing", "drawings/clamp.pdf": "drawing", "photos/clamp_in-use.png": "image", "notes.txt": "document"}
	for _, f := range r.json["version"].(map[string]any)["files"].([]any) {
		f := f.(map[string]any)
		if want[f["path"].(string)] != f["kind"] {
			t.Errorf("%s: kind %v, want %s", f["path"], f["kind"], want[f["path"].(string)])
		}
		if pic, _ := f["picture"].(map[string]any); (pic != nil) != (f["kind"] == "image") || pic != nil && (pic["width"] != 1000.0 || pic["height"] != 500.0) {
			t.Errorf("%s: picture %v", f["path"], f["picture"])
		}
	}

	base := "/api/v1/designs/clamp/versions/1/"
	for size, width := range map[string]int{"small": 480, "large": 1000} {
		r = b.do(t, call{method: "GET", path: base + "pictures/photos/clamp_in-use.png?size=" + size})
		r.want(t, 200, "")
		cfg, format, err := image.DecodeConfig(bytes.NewReader(r.body))
		if err != nil || format != "png" || cfg.Width != width || r.header.Get("Content-Type") != "image/png" {
			t.Fatalf("%s picture: %v %s %d wide, %s", size, err, format, cfg.Width, r.header.Get("Content-Type"))
		}
		if bytes.Contains(r.body, []byte("<script>")) || r.header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(r.header.Get("Content-Security-Policy"), "sandbox") {
			t.Fatalf("%s picture served unsafely: headers %v", size, r.header)
		}
	}
	b.do(t, call{method: "GET", path: base + "pictures/photos/clamp_in-use.png?size=huge"}).want(t, 400, "invalid")
	b.do(t, call{method: "GET", path: base + "pictures/src/clamp.scad"}).want(t, 404, "not_found")
	b.do(t, call{method: "GET", path: base + "pictures/nothing.png"}).want(t, 404, "not_found")

	// Only pictures are shown in the browser; a drawing is a download.
	r = b.do(t, call{method: "GET", path: base + "files/drawings/clamp.svg"})
	if !strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("an SVG is served inline: %v", r.header)
	}
	r = b.do(t, call{method: "GET", path: base + "files/src/clamp.step"})
	if r.header.Get("Content-Type") != "model/step" || !strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("STEP file served as %v", r.header)
	}

	// The design page has the gallery and says what each file is.
	r = b.do(t, call{method: "GET", path: "/designs/clamp"})
	for _, s := range []string{`alt="clamp in use"`, "pictures/photos/clamp_in-use.png?size=small", "OpenSCAD source", "KiCad board", "SVG drawing", "STEP model (CAD)"} {
		if !strings.Contains(string(r.body), s) {
			t.Errorf("the design page lacks %q", s)
		}
	}

	// A file named as a picture that is not one is refused, naming it.
	bad := newMultipart().field("meta", map[string]any{"title": "Bad", "license": "CC0-1.0"}).
		file("files", "a.stl", cubeSTL).file("files", "fake.jpg", []byte("<html>not a picture</html>")).done()
	r = b.do(t, call{method: "POST", path: "/api/v1/designs", body: bad, header: ada})
	r.want(t, 422, "invalid")
	if !strings.Contains(string(r.body), "fake.jpg") {
		t.Fatalf("refusal does not name the file: %s", r.body)
	}
	huge := newMultipart().field("meta", map[string]any{"title": "Huge", "license": "CC0-1.0"}).
		file("files", "a.stl", cubeSTL).file("files", "wide.png", pngHeaderOnly(20000, 20000)).done()
	b.do(t, call{method: "POST", path: "/api/v1/designs", body: huge, header: ada}).want(t, 422, "invalid")
}

// pngHeaderOnly is a 1×1 PNG whose header claims w×h: a decompression bomb's shape.
func pngHeaderOnly(w, h uint32) []byte {
	var b bytes.Buffer
	png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1)))
	p := b.Bytes()
	binary.BigEndian.PutUint32(p[16:], w) // IHDR data starts at 16: 8 signature + 4 length + 4 type
	binary.BigEndian.PutUint32(p[20:], h)
	binary.BigEndian.PutUint32(p[29:], crc32.ChecksumIEEE(p[12:29]))
	return p
}
