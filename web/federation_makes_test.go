package web

import (
	"testing"
)

// labJobs counts the jobs a lab has in its queue, on machines, pending and ended.
func (h fedHub) labJobs(t *testing.T, lab string) int {
	t.Helper()
	r := h.do(t, call{method: "GET", path: "/api/v1/labs/" + lab})
	r.want(t, 200, "")
	n := 0
	for _, k := range []string{"queue", "active", "pending", "history"} {
		l, _ := r.json[k].([]any)
		n += len(l)
	}
	return n
}

// meshReport is the mesh report of a file of a version, as the API shows it (nil
// when it has none).
func meshReport(t *testing.T, h fedHub, slug string, n int, path string) map[string]any {
	t.Helper()
	r := h.do(t, call{method: "GET", path: "/api/v1/designs/" + slug + "/versions/1"})
	r.want(t, 200, "")
	for _, f := range r.json["version"].(map[string]any)["files"].([]any) {
		if f := f.(map[string]any); f["path"] == path {
			m, _ := f["mesh"].(map[string]any)
			return m
		}
	}
	t.Fatalf("version %d of %s has no file %s", n, slug, path)
	return nil
}

// TestOrderRemoteDesign: B orders A's design at its lab like a local one: its meshes
// are fetched from A, checked and analysed once (their reports kept on B's version);
// a design whose origin serves other bytes is 502 and makes no job.
func TestOrderRemoteDesign(t *testing.T) {
	t.Parallel()
	a, b := newFedHub(t), newFedHub(t)
	publish(t, a.bundle, a.admin, map[string]any{"title": "Spool holder", "license": "CERN-OHL-S-2.0"}).want(t, 201, "")
	clipSTL := append([]byte("cable clip"), cubeSTL[10:]...) // another header: another blob than the spool's cube
	body := newMultipart().field("meta", map[string]any{"title": "Cable clip", "license": "MIT"}).file("files", "clip.stl", clipSTL).done()
	a.do(t, call{method: "POST", path: "/api/v1/designs", body: body, header: a.admin}).want(t, 201, "")
	b.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: b.admin, body: map[string]string{"target": a.url}}).want(t, 201, "")
	eventually(t, "B to keep A's designs", func() bool { return len(b.remoteDesigns(t, a.host())) == 2 })
	spool, clip := b.remoteDesigns(t, a.host())["Spool holder"]["slug"].(string), b.remoteDesigns(t, a.host())["Cable clip"]["slug"].(string)
	b.do(t, call{method: "POST", path: "/api/v1/labs", header: b.admin, body: map[string]any{"slug": "makers", "name": "Makers"}}).want(t, 201, "")

	if m := meshReport(t, b, spool, 1, "parts/base.stl"); m != nil {
		t.Fatalf("a remote mesh before it is made: got report %v, want none", m)
	}
	r := b.do(t, call{method: "POST", path: "/api/v1/orders", header: b.admin, body: map[string]any{"lab": "makers", "design": spool, "files": []string{"parts/base.stl"}}})
	r.want(t, 201, "")
	job := r.json["jobs"].([]any)[0].(map[string]any)
	if bbox := job["bbox"].(map[string]any); bbox["x"] != 20.0 || bbox["y"] != 20.0 || bbox["z"] != 20.0 {
		t.Fatalf("the job of A's cube: got bbox %v, want 20 mm a side", bbox)
	}
	for _, p := range []string{"parts/base.stl", "parts/ring.stl"} {
		if m := meshReport(t, b, spool, 1, p); m == nil || m["triangles"] == 0.0 {
			t.Fatalf("%s after the order: got report %v, want it kept", p, m)
		}
	}
	// Once analysed, another order takes the kept reports: A is not asked again.
	fetched := countBlobs(t, b.blobDir)
	b.do(t, call{method: "POST", path: "/api/v1/orders", header: b.admin, body: map[string]any{"lab": "makers", "design": spool, "bom_refs": []string{"R1"}}}).want(t, 201, "")
	if got := countBlobs(t, b.blobDir); got != fetched {
		t.Fatalf("B's blobs after a second order: got %d, want %d", got, fetched)
	}

	// A's clip is served with other bytes: 502, and no job.
	r = a.do(t, call{method: "GET", path: "/api/v1/designs/cable-clip/versions/1"})
	r.want(t, 200, "")
	for _, f := range r.json["version"].(map[string]any)["files"].([]any) {
		if f := f.(map[string]any); f["path"] == "clip.stl" {
			tamper(t, a.blobDir, f["sha256"].(string), torusSTL)
		}
	}
	before := b.labJobs(t, "makers")
	b.do(t, call{method: "POST", path: "/api/v1/orders", header: b.admin, body: map[string]any{"lab": "makers", "design": clip}}).want(t, 502, "bad_origin")
	if got := b.labJobs(t, "makers"); got != before {
		t.Fatalf("B's lab's jobs after a bad origin: got %d, want %d", got, before)
	}
}
