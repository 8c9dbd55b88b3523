package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/agent"
	"github.com/fabcommons/fabcommons/federation"
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

	// The pages: a remote design has its "Make it"; the make page offers its meshes, or
	// says in words that its origin failed.
	page := b.do(t, call{method: "GET", path: "/designs/" + spool, header: merge(b.admin, map[string]string{"Accept": "text/html"})})
	page.want(t, 200, "")
	if !strings.Contains(string(page.body), `href="/designs/`+spool+`/make"`) {
		t.Fatalf("B's page of A's design: want a link to make it; got %s", page.body)
	}
	page = b.do(t, call{method: "GET", path: "/designs/" + spool + "/make?lab=makers", header: merge(b.admin, map[string]string{"Accept": "text/html"})})
	page.want(t, 200, "")
	if !strings.Contains(string(page.body), `value="parts/ring.stl"`) {
		t.Fatalf("B's make page of A's design: want its meshes offered; got %s", page.body)
	}
	page = b.do(t, call{method: "GET", path: "/designs/" + clip + "/make?lab=makers", header: merge(b.admin, map[string]string{"Accept": "text/html"})})
	if page.status != 502 || !strings.Contains(string(page.body), "is not the file its design names") {
		t.Fatalf("B's make page of a design its origin serves wrong: got %d %s, want 502 saying so", page.status, page.body)
	}
}

// TestOrderRemoteDesignNotAMesh: a remote design whose "mesh" is not one (its bytes
// are those its design names, but no STL) cannot be ordered: 422 in words, no job.
func TestOrderRemoteDesignNotAMesh(t *testing.T) {
	t.Parallel()
	h := newFedHub(t)
	keys := remoteKeys()
	alice := newFakeRemote(t, "mastodon_actor.json", "/users/alice", keys[0])
	followAccepted(t, h, alice, keys[0])
	junk := []byte("this is not a mesh, whatever its name says")
	sum := sha256.Sum256(junk)
	alice.mu.Lock()
	alice.files = map[string][]byte{"/files/clip.stl": junk}
	alice.mu.Unlock()
	create, _ := json.Marshal(map[string]any{"id": alice.url + "/designs/clip#create", "type": "Create", "actor": alice.actor, "object": map[string]any{
		"id": alice.url + "/designs/clip", "type": "Document", "fab:version": 1, "attributedTo": alice.actor, "name": "Clip", "spdx:licenseId": "MIT",
		"attachment": []any{map[string]any{"name": "clip.stl", "url": alice.url + "/files/clip.stl", "fab:sha256": hex.EncodeToString(sum[:]), "fab:size": len(junk)}}}})
	if status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", create, keys[0], alice.actor+"#main-key", time.Now())); status != 202 {
		t.Fatalf("the Create: got %d %s", status, resp)
	}
	h.do(t, call{method: "POST", path: "/api/v1/labs", header: h.admin, body: map[string]any{"slug": "makers", "name": "Makers"}}).want(t, 201, "")
	slug := h.remoteDesigns(t, strings.TrimPrefix(alice.url, "http://"))["Clip"]["slug"].(string)
	r := h.do(t, call{method: "POST", path: "/api/v1/orders", header: h.admin, body: map[string]any{"lab": "makers", "design": slug}})
	r.want(t, 422, "invalid")
	if !strings.Contains(string(r.body), "clip.stl") || !strings.Contains(string(r.body), "not a mesh this hub can read") {
		t.Fatalf("the order of a design whose mesh is junk: got %s, want it said which file and why", r.body)
	}
	if n := h.labJobs(t, "makers"); n != 0 {
		t.Fatalf("jobs after the refused order: got %d, want none", n)
	}
}

// makesOf is a design's makes at other hubs' labs, as its API lists them.
func makesOf(t *testing.T, h fedHub, slug string) []map[string]any {
	t.Helper()
	r := h.do(t, call{method: "GET", path: "/api/v1/designs/" + slug + "/makes"})
	r.want(t, 200, "")
	var out []map[string]any
	for _, m := range r.json["remote"].([]any) {
		out = append(out, m.(map[string]any))
	}
	return out
}

// TestMakeAcrossHubs: A publishes a design, B follows A, B's lab makes A's design
// with a simulated printer, and A's design (its API and its page) shows the make with
// B's host and lab; B's own record shows it too.
func TestMakeAcrossHubs(t *testing.T) {
	t.Parallel()
	a, b := newFedHub(t), newFedHub(t)
	publish(t, a.bundle, a.admin, map[string]any{"title": "Spool holder", "license": "CERN-OHL-S-2.0"}).want(t, 201, "")
	b.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: b.admin, body: map[string]string{"target": a.url}}).want(t, 201, "")
	eventually(t, "B to keep A's design", func() bool { return b.remoteDesigns(t, a.host())["Spool holder"] != nil })
	slug := b.remoteDesigns(t, a.host())["Spool holder"]["slug"].(string)

	b.do(t, call{method: "POST", path: "/api/v1/labs", header: b.admin, body: map[string]any{"slug": "makers", "name": "Makers & <Co>"}}).want(t, 201, "")
	r := b.do(t, call{method: "POST", path: "/api/v1/labs/makers/machines", header: b.admin, body: map[string]any{
		"name": "Prusa", "process": "fdm", "build_volume": map[string]float64{"x": 250, "y": 210, "z": 220}, "materials": []string{"PLA"}, "driver": "sim"}})
	r.want(t, 201, "")
	r = b.do(t, call{method: "POST", path: "/api/v1/agent/enroll", body: map[string]string{"code": r.json["enrollment_code"].(string)}})
	r.want(t, 200, "")
	token := r.json["token"].(string)

	r = b.do(t, call{method: "POST", path: "/api/v1/orders", header: b.admin, body: map[string]any{"lab": "makers", "design": slug, "files": []string{"parts/base.stl"}}})
	r.want(t, 201, "")
	jobID := r.json["jobs"].([]any)[0].(map[string]any)["id"].(string)
	if got := makesOf(t, a, "spool-holder"); len(got) != 0 {
		t.Fatalf("A's design before B made it: got makes %v, want none", got)
	}

	// The printer-side agent of B's machine, with a simulated printer.
	state := t.TempDir()
	journal, err := agent.OpenJournal(state)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		a := &agent.Agent{Client: agent.NewClient(b.url, token), Journal: journal, StateDir: state, Log: testLogger(t),
			Driver: &agent.Sim{Dir: state, Speed: 1, BaseSeconds: 0.2}}
		a.Run(ctx)
	}()
	defer func() { stop(); <-stopped }()
	eventually(t, "B's agent to make the job", func() bool {
		r := b.do(t, call{method: "GET", path: "/api/v1/jobs/" + jobID})
		return r.status == 200 && r.json["job"].(map[string]any)["state"] == "done"
	})

	eventually(t, "A to hear of B's make", func() bool { return len(makesOf(t, a, "spool-holder")) == 1 })
	m := makesOf(t, a, "spool-holder")[0]
	if m["hub"] != b.host() || m["lab"] != b.url+"/labs/makers" || m["lab_name"] != "Makers & <Co>" || m["id"] != b.url+"/jobs/"+jobID ||
		m["version"] != 1.0 || m["file"] != "parts/base.stl" {
		t.Fatalf("A's record of B's make: got %v", m)
	}
	page := a.do(t, call{method: "GET", path: "/designs/spool-holder", header: map[string]string{"Accept": "text/html"}})
	page.want(t, 200, "")
	if !strings.Contains(string(page.body), "Makers &amp; &lt;Co&gt;") || strings.Contains(string(page.body), "Makers & <Co>") ||
		!strings.Contains(string(page.body), "on "+b.host()) || !strings.Contains(string(page.body), `href="`+b.url+`/labs/makers"`) {
		t.Fatalf("A's design page: want B's lab, escaped, with B's host; got %s", page.body)
	}
	// B's record of its own lab's make is B's, not told back to B.
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/" + slug + "/makes"})
	r.want(t, 200, "")
	if labs := r.json["labs"].([]any); len(labs) != 1 || labs[0].(map[string]any)["done"] != 1.0 || len(r.json["remote"].([]any)) != 0 {
		t.Fatalf("B's record of A's design: got %s, want its lab's one make", r.body)
	}
}

// TestInboxMakeForgery: a make is kept only when it is signed, its job and its lab are
// on the signer's host (the lab is the signer), and it names a visible design of this
// hub at a version it has; a repeated make is kept once; a host is kept to its bound.
func TestInboxMakeForgery(t *testing.T) {
	t.Parallel()
	h := newFedHub(t, func(o *federation.Options) { o.MakesPerHost = 2 })
	publish(t, h.bundle, h.admin, map[string]any{"title": "Spool holder", "license": "CERN-OHL-S-2.0"}).want(t, 201, "")
	publish(t, h.bundle, h.admin, map[string]any{"title": "Taken down", "license": "MIT"}).want(t, 201, "")
	h.do(t, call{method: "POST", path: "/api/v1/designs/taken-down/hide", header: h.admin}).want(t, 204, "")
	keys := remoteKeys()
	lab := newFakeRemote(t, "mastodon_actor.json", "/users/alice", keys[0])
	design := h.url + "/designs/spool-holder"
	made := func(id, attributedTo, target string, version int) []byte {
		b, _ := json.Marshal(map[string]any{"id": id + "#made", "type": "Create", "actor": lab.actor, "object": map[string]any{
			"id": id, "type": federation.TypeMake, "attributedTo": attributedTo, "target": target, "fab:version": version,
			"fab:file": "parts/base.stl", "endTime": "2026-11-30T10:00:00Z"}})
		return b
	}
	for _, tc := range []struct {
		name string
		body []byte
		want int
	}{
		{"a design of another hub", made(lab.url+"/jobs/1", lab.actor, "https://elsewhere.example/designs/spool-holder", 1), 403},
		{"a job on another host", made("https://elsewhere.example/jobs/2", lab.actor, design, 1), 403},
		{"attributed to another lab", made(lab.url+"/jobs/3", lab.url+"/users/bob", design, 1), 403},
		{"a version the design lacks", made(lab.url+"/jobs/4", lab.actor, design, 9), 422},
		{"a hidden design", made(lab.url+"/jobs/5", lab.actor, h.url+"/designs/taken-down", 1), 202},
		{"no such design", made(lab.url+"/jobs/6", lab.actor, h.url+"/designs/nothing", 1), 202},
		{"its own", made(lab.url+"/jobs/7", lab.actor, design, 1), 202},
		{"its own again", made(lab.url+"/jobs/7", lab.actor, design, 1), 202},
		{"another", made(lab.url+"/jobs/8", lab.actor, design, 1), 202},
		{"one over the bound", made(lab.url+"/jobs/9", lab.actor, design, 1), 202},
	} {
		status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", tc.body, keys[0], lab.actor+"#main-key", time.Now()))
		if status != tc.want {
			t.Errorf("%s: got %d %s, want %d", tc.name, status, resp, tc.want)
		}
	}
	// Unsigned: 401, and nothing kept.
	unsigned, _ := http.NewRequest(http.MethodPost, h.url+"/ap/inbox", strings.NewReader(string(made(lab.url+"/jobs/10", lab.actor, design, 1))))
	unsigned.Header.Set("Content-Type", federation.MediaActivity)
	if status, resp := send(t, unsigned); status != 401 {
		t.Errorf("an unsigned make: got %d %s, want 401", status, resp)
	}
	got := makesOf(t, h, "spool-holder")
	var ids []string
	for _, m := range got {
		ids = append(ids, m["id"].(string))
	}
	if want := []string{lab.url + "/jobs/7", lab.url + "/jobs/8"}; fmt.Sprint(ids) != fmt.Sprint(want) && fmt.Sprint(ids) != fmt.Sprint([]string{want[1], want[0]}) {
		t.Fatalf("the makes kept: got %v, want %v (once each, none over the bound)", ids, want)
	}
	if got[0]["lab_name"] != "Alice <script>alert(1)</script>" || got[0]["hub"] != strings.TrimPrefix(lab.url, "http://") {
		t.Fatalf("a make's lab: got %v, want alice's name and host", got[0])
	}
	page := h.do(t, call{method: "GET", path: "/designs/spool-holder", header: map[string]string{"Accept": "text/html"}})
	if strings.Contains(string(page.body), "<script>alert(1)</script>") || !strings.Contains(string(page.body), "Alice &lt;script&gt;") {
		t.Fatalf("a remote lab's name on the page: want it escaped; got %s", page.body)
	}
}

// TestMakesToldAgain: a job of a remote design saved done with no word of it reaching
// the feed is told to its design's hub when the makes are looked at again: by a hub
// that starts on the store (as after a stop in between), and after a make was dropped
// because too many waited. A job of a design of the hub's own is not told.
func TestMakesToldAgain(t *testing.T) {
	t.Parallel()
	a, b := newFedHub(t), newFedHub(t)
	publish(t, a.bundle, a.admin, map[string]any{"title": "Spool holder", "license": "CERN-OHL-S-2.0"}).want(t, 201, "")
	publish(t, b.bundle, b.admin, map[string]any{"title": "Cable clip", "license": "MIT"}).want(t, 201, "")
	b.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: b.admin, body: map[string]string{"target": a.url}}).want(t, 201, "")
	eventually(t, "B to keep A's design", func() bool { return b.remoteDesigns(t, a.host())["Spool holder"] != nil })
	slug := b.remoteDesigns(t, a.host())["Spool holder"]["slug"].(string)

	b.do(t, call{method: "POST", path: "/api/v1/labs", header: b.admin, body: map[string]any{"slug": "makers", "name": "Makers"}}).want(t, 201, "")
	b.do(t, call{method: "POST", path: "/api/v1/labs/makers/machines", header: b.admin, body: map[string]any{
		"name": "Prusa", "process": "fdm", "build_volume": map[string]float64{"x": 250, "y": 210, "z": 220}, "materials": []string{"PLA"}, "driver": "sim"}}).want(t, 201, "")
	doneBehindTheFeed := func(design string) fabrication.Job {
		r := b.do(t, call{method: "POST", path: "/api/v1/orders", header: b.admin, body: map[string]any{"lab": "makers", "design": design, "files": []string{"parts/base.stl"}}})
		r.want(t, 201, "")
		ctx := context.Background()
		j, err := b.db.Fabrication().Job(ctx, r.json["jobs"].([]any)[0].(map[string]any)["id"].(string))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		j.State, j.StartedAt, j.FinishedAt, j.UpdatedAt = fabrication.JobDone, &now, &now, now
		if err := b.db.Fabrication().SaveJob(ctx, j, j.Rev); err != nil {
			t.Fatal(err)
		}
		return j
	}
	told := func(want int) {
		t.Helper()
		eventually(t, fmt.Sprintf("A to hear of %d makes", want), func() bool { return len(makesOf(t, a, "spool-holder")) == want })
	}
	first := doneBehindTheFeed(slug)
	doneBehindTheFeed("cable-clip")
	time.Sleep(200 * time.Millisecond) // what would be told unprompted has had its time
	if got := makesOf(t, a, "spool-holder"); len(got) != 0 {
		t.Fatalf("A heard of a make no one told of: %v", got)
	}

	// B starts again on its store (a second hub, as after a restart).
	logs := startAgain(t, b.bundle, HubConfig{Web: Config{PublicURL: b.url},
		Federation: federation.Options{AllowHosts: []string{"127.0.0.1"}, Backoff: []time.Duration{20 * time.Millisecond}}})
	told(1)
	if m := makesOf(t, a, "spool-holder")[0]; m["id"] != b.url+"/jobs/"+first.ID || m["lab"] != b.url+"/labs/makers" {
		t.Fatalf("A's record of B's make: got %v", m)
	}
	if n := strings.Count(logs.String(), "a make is sent to its design's hub"); n != 1 {
		t.Fatalf("the restarted hub sent %d makes, want the remote design's one: %s", n, logs)
	}

	// A make dropped by B (too many waiting) is told when the makes since it are.
	b.hub.made.drop(doneBehindTheFeed(slug))
	told(2)
	if logs := b.logs.String(); strings.Contains(logs, "a make is not told") {
		t.Fatalf("B's log: %s", logs)
	}
}
