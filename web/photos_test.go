package web

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"

	"github.com/fabcommons/fabcommons/catalog/picture"
	"github.com/fabcommons/fabcommons/fabrication"
)

// testPNG is a w×h PNG with a trailer after its end, which a re-encoded copy drops.
func testPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	img.Set(0, 0, color.Gray{Y: 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return append(b.Bytes(), "<script>alert(1)</script>"...)
}

// testJPEG is a w×h JPEG, as a webcam sends.
func testJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i / 5)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func (f labFixture) snapshot(t *testing.T, machine map[string]string, c claimed, ctype string, body []byte) reply {
	t.Helper()
	return f.do(t, call{method: "POST", path: "/api/v1/agent/jobs/" + c.id + "/photo", body: bytes.NewReader(body),
		header: merge(machine, map[string]string{"X-Fab-Lease": c.lease, "Content-Type": ctype})})
}

func photoForm(replace bool, body []byte) *multipartBody {
	m := newMultipart()
	if replace {
		m.field("replace", []byte("true"))
	}
	return m.file("photo", "bed.png", body).done()
}

func photoKeys(t *testing.T, j map[string]any) []string {
	t.Helper()
	var keys []string
	ps, _ := j["photos"].([]any)
	for _, p := range ps {
		keys = append(keys, p.(map[string]any)["source"].(string))
	}
	return keys
}

// photoKeyOf is the key of the job's photo from source.
func photoKeyOf(t *testing.T, j map[string]any, source string) string {
	t.Helper()
	ps, _ := j["photos"].([]any)
	for _, p := range ps {
		if p := p.(map[string]any); p["source"] == source {
			return p["key"].(string)
		}
	}
	t.Fatalf("the job has no %s photo: %v", source, j["photos"])
	return ""
}

// TestPhotosOfMakes: the agent's snapshot while its job prints, with its own lease
// only; a person's at harvest, by the lab's operators only; each re-encoded and served
// as an image that can run nothing.
func TestPhotosOfMakes(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{HarvestConfirm: true})
	f.order(t, map[string]any{"files": []string{"parts/base.stl"}, "quantity": 2})
	c, _ := f.poll(t, f.machine)
	f.event(t, f.machine, c, "started", nil).want(t, 200, "")
	shot := testPNG(t, 64, 48)

	// Who may send one: the machine holding the lease, nobody else.
	f.do(t, call{method: "POST", path: "/api/v1/labs", header: f.maker, body: map[string]any{"slug": "garage", "name": "Garage"}}).want(t, 201, "")
	r := f.do(t, call{method: "POST", path: "/api/v1/labs/garage/machines", header: f.maker, body: map[string]any{
		"name": "Garage printer", "process": "fdm", "build_volume": map[string]float64{"x": 300, "y": 300, "z": 300}, "materials": []string{"PLA"}}})
	r = f.do(t, call{method: "POST", path: "/api/v1/agent/enroll", body: map[string]string{"code": r.json["enrollment_code"].(string)}})
	otherLab := bearer(r.json["token"].(string))
	_, sameLab := f.addMachine(t, "makerspace", "Prusa 2", 250, 210, 220)
	f.snapshot(t, otherLab, c, "image/png", shot).want(t, 403, "forbidden")
	f.snapshot(t, sameLab, c, "image/png", shot).want(t, 409, "stale_lease")
	f.snapshot(t, f.machine, claimed{id: c.id, lease: "fab_l_wrong"}, "image/png", shot).want(t, 409, "stale_lease")
	f.snapshot(t, f.owner, c, "image/png", shot).want(t, 401, "unauthenticated")
	f.snapshot(t, nil, c, "image/png", shot).want(t, 401, "unauthenticated")

	// What is refused: another declared type, bytes that are no image, too many
	// pixels, too many bytes.
	f.snapshot(t, f.machine, c, "text/html", shot).want(t, 415, "unsupported_media_type")
	f.snapshot(t, f.machine, c, "image/svg+xml", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)).want(t, 415, "unsupported_media_type")
	f.snapshot(t, f.machine, c, "image/png", []byte("<html>not a photo</html>")).want(t, 422, "invalid")
	f.snapshot(t, f.machine, c, "image/png", testPNG(t, picture.MaxSide+1, 1)).want(t, 422, "invalid")
	f.snapshot(t, f.machine, c, "image/jpeg", make([]byte, picture.MaxBytes+1)).want(t, 413, "too_large")
	if got := photoKeys(t, f.jobState(t, c.id)); len(got) != 0 {
		t.Fatalf("refused photos were kept: %v", got)
	}

	r = f.snapshot(t, f.machine, c, "image/png", shot)
	r.want(t, 201, "")
	key := r.json["key"].(string)
	f.snapshot(t, f.machine, c, "image/png", shot).want(t, 201, "") // a retry: still one camera photo
	if got := strings.Join(photoKeys(t, f.jobState(t, c.id)), ","); got != "camera" {
		t.Fatalf("photos after a repeated snapshot: got %s, want camera", got)
	}

	// Served to anyone, re-encoded, as its own type, never sniffed, running nothing.
	r = f.do(t, call{method: "GET", path: "/api/v1/jobs/" + c.id + "/photos/" + key})
	r.want(t, 200, "")
	if ct := r.header.Get("Content-Type"); ct != "image/png" {
		t.Errorf("Content-Type: got %q, want image/png", ct)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(r.header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("headers: got %v, want nosniff and a CSP of default-src 'none'", r.header)
	}
	if bytes.Contains(r.body, []byte("<script>")) || bytes.Equal(r.body, shot) {
		t.Error("the photo was served as it was uploaded")
	}
	if img, err := png.Decode(bytes.NewReader(r.body)); err != nil || img.Bounds().Dx() != 64 {
		t.Errorf("served photo: %v", err)
	}
	f.do(t, call{method: "GET", path: "/api/v1/jobs/" + c.id + "/photos/" + strings.Repeat("0", 64)}).want(t, 404, "not_found")

	// Once the print is reported the lease is spent: no more snapshots.
	f.event(t, f.machine, c, "finished", nil).want(t, 200, "")
	f.snapshot(t, f.machine, c, "image/png", shot).want(t, 409, "stale_lease")

	// At harvest: the lab's operators add or replace; nobody else.
	path := "/api/v1/jobs/" + c.id + "/photos"
	f.do(t, call{method: "POST", path: path, body: photoForm(false, testPNG(t, 10, 10))}).want(t, 401, "unauthenticated")
	f.do(t, call{method: "POST", path: path, header: f.maker, body: photoForm(false, testPNG(t, 10, 10))}).want(t, 403, "forbidden")
	f.do(t, call{method: "POST", path: path, header: f.machine, body: photoForm(false, testPNG(t, 10, 10))}).want(t, 401, "unauthenticated")
	f.do(t, call{method: "POST", path: path, header: f.owner, body: photoForm(false, []byte("GIF89a but not really"))}).want(t, 422, "invalid")
	f.do(t, call{method: "POST", path: path, header: f.owner, body: photoForm(false, testPNG(t, 10, 10))}).want(t, 201, "")
	if got := strings.Join(photoKeys(t, f.jobState(t, c.id)), ","); got != "camera,operator" {
		t.Fatalf("photos after an operator's: got %s, want camera,operator", got)
	}
	r = f.do(t, call{method: "POST", path: path, header: f.owner, body: photoForm(true, testPNG(t, 12, 12))})
	r.want(t, 201, "")
	if got := strings.Join(photoKeys(t, f.jobState(t, c.id)), ","); got != "operator" {
		t.Fatalf("photos after replace: got %s, want operator", got)
	}
	f.do(t, call{method: "GET", path: "/api/v1/jobs/" + c.id + "/photos/" + key}).want(t, 404, "not_found") // replaced

	// A job whose print has not ended has nothing to photograph yet.
	next, _ := f.poll(t, sameLab)
	if next.id == "" {
		t.Fatal("the second copy was not offered")
	}
	f.do(t, call{method: "POST", path: "/api/v1/jobs/" + next.id + "/photos", header: f.owner, body: photoForm(false, testPNG(t, 10, 10))}).want(t, 409, "conflict")

	// The photos of a design the maintainers hid are the site admins' to see (ada is
	// the first account), as the design is.
	operatorKey := photoKeyOf(t, f.jobState(t, c.id), "operator")
	f.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/hide", header: f.owner}).want(t, 204, "")
	photo := "/api/v1/jobs/" + c.id + "/photos/" + operatorKey
	f.do(t, call{method: "GET", path: photo}).want(t, 404, "not_found")
	f.do(t, call{method: "GET", path: photo, header: f.maker}).want(t, 404, "not_found")
	f.do(t, call{method: "GET", path: photo, header: f.owner}).want(t, 200, "")
}
