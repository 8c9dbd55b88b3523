package web

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/png"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/federation"
)

// remoteDesigns lists the designs a hub keeps from origin (a host), by slug.
func (h fedHub) remoteDesigns(t *testing.T, origin string) map[string]map[string]any {
	t.Helper()
	r := h.do(t, call{method: "GET", path: "/api/v1/designs?origin=" + origin})
	r.want(t, 200, "")
	out := map[string]map[string]any{}
	for _, d := range r.json["designs"].([]any) {
		d := d.(map[string]any)
		out[d["title"].(string)] = d
	}
	return out
}

// tamper overwrites the stored blob of key on a hub's disk.
func tamper(t *testing.T, blobDir, key string, data []byte) {
	t.Helper()
	found := false
	filepath.WalkDir(blobDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(filepath.Base(p), key) {
			found = true
			return os.WriteFile(p, data, 0o600)
		}
		return nil
	})
	if !found {
		t.Fatalf("no blob %s under %s", key, blobDir)
	}
}

// TestFederationDesigns runs three hubs on loopback. A publishes before B follows it
// (B's resync brings the design) and after (the Create brings it); B lists and finds
// them with their origin, serves a file fetched from A and checked, refuses a tampered
// one with 502 and keeps nothing; A's new version and its hiding reach B; B follows C
// too and drops C's designs when it blocks C.
func TestFederationDesigns(t *testing.T) {
	t.Parallel()
	a, b, c := newFedHub(t), newFedHub(t), newFedHub(t)
	publish(t, a.bundle, a.admin, map[string]any{"title": "Spool holder", "summary": "Holds <b>1 kg</b> spools", "tags": []string{"spool"}, "license": "CERN-OHL-S-2.0"}).want(t, 201, "")

	// A's design as an object, at its page, and in its author's outbox.
	r := a.do(t, call{method: "GET", path: "/designs/spool-holder", header: map[string]string{"Accept": federation.MediaActivity}})
	r.want(t, 200, "")
	files, _ := r.json["attachment"].([]any)
	if r.json["id"] != a.url+"/designs/spool-holder" || r.json["attributedTo"] != a.url+"/people/ada" || r.json["spdx:licenseId"] != "CERN-OHL-S-2.0" ||
		r.json["fab:version"] != 1.0 || r.json["f3di:concreteType"] != "3DModel" || len(files) != 3 || len(r.json["fab:bom"].([]any)) != 3 ||
		files[0].(map[string]any)["fab:sha256"] == nil || files[0].(map[string]any)["url"] != a.url+"/api/v1/designs/spool-holder/versions/1/files/parts/base.stl" {
		t.Fatalf("the design object: got %s", r.body)
	}
	r = a.do(t, call{method: "GET", path: "/ap/people/ada/outbox?page=true", header: map[string]string{"Accept": federation.MediaActivity}})
	r.want(t, 200, "")
	if items := r.json["orderedItems"].([]any); len(items) != 1 || items[0].(map[string]any)["type"] != "Create" {
		t.Fatalf("ada's outbox: got %s", r.body)
	}

	// B follows A: the resync brings the design published before.
	b.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: b.admin, body: map[string]string{"target": a.url}}).want(t, 201, "")
	eventually(t, "B to keep A's design from its outbox", func() bool { return b.remoteDesigns(t, a.host())["Spool holder"] != nil })
	spool := b.remoteDesigns(t, a.host())["Spool holder"]
	origin, _ := spool["origin"].(map[string]any)
	if spool["owner"] != "@ada@"+a.host() || spool["license"] != "CERN-OHL-S-2.0" || origin["hub"] != a.host() || origin["object"] != a.url+"/designs/spool-holder" {
		t.Fatalf("A's design on B: got %v", spool)
	}
	slug := spool["slug"].(string)

	// Published after the follow: the Create brings it, and search finds it.
	publish(t, a.bundle, a.admin, map[string]any{"title": "Cable clip", "license": "MIT"}).want(t, 201, "")
	eventually(t, "B to hear of A's new design", func() bool { return b.remoteDesigns(t, a.host())["Cable clip"] != nil })
	r = b.do(t, call{method: "GET", path: "/api/v1/designs?q=clip"})
	r.want(t, 200, "")
	if ds := r.json["designs"].([]any); len(ds) != 1 || ds[0].(map[string]any)["origin"] == nil {
		t.Fatalf("B's search for clip: got %s, want A's design with its origin", r.body)
	}

	// The design page says where it comes from, and escapes what came.
	page := b.do(t, call{method: "GET", path: "/designs/" + slug, header: map[string]string{"Accept": "text/html"}})
	page.want(t, 200, "")
	if !strings.Contains(string(page.body), a.url+"/designs/spool-holder") || strings.Contains(string(page.body), "<b>1 kg</b>") {
		t.Fatalf("B's page of A's design: want a link to its origin and the summary escaped; got %s", page.body)
	}
	// Its card shows A's thumbnail, fetched, decoded and encoded afresh.
	thumb := b.do(t, call{method: "GET", path: "/designs/" + slug + "/thumbnail.png"})
	thumb.want(t, 200, "")
	if img, err := png.Decode(bytes.NewReader(thumb.body)); err != nil || img.Bounds().Dx() != 240 || img.Bounds().Dy() != 180 {
		t.Fatalf("B's thumbnail of A's design: got %v, %v; want A's 240×180 card", img.Bounds(), err)
	}
	// Its object is A's to serve.
	b.do(t, call{method: "GET", path: "/designs/" + slug, header: map[string]string{"Accept": federation.MediaActivity}}).want(t, 404, "not_found")

	// Forking it and making it are tested in TestForksAcrossHubs and federation_makes_test.go.

	// A file is fetched from A the first time, checked, and kept.
	before := countBlobs(t, b.blobDir)
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/" + slug + "/versions/1/files/parts/base.stl"})
	r.want(t, 200, "")
	if !bytes.Equal(r.body, cubeSTL) {
		t.Fatalf("B's download of A's file: got %d bytes, want the %d of the STL", len(r.body), len(cubeSTL))
	}
	if got := countBlobs(t, b.blobDir); got != before+1 {
		t.Fatalf("B's blobs after the download: got %d, want %d", got, before+1)
	}
	// Marked as fetched: served from B from now on, even when A changes what it serves.
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/" + slug + "/versions/1"})
	for _, f := range r.json["version"].(map[string]any)["files"].([]any) {
		if f := f.(map[string]any); (f["path"] == "parts/base.stl") != (f["fetched"] == true) {
			t.Fatalf("B's version of A's design after one download: %v fetched %v, want parts/base.stl alone", f["path"], f["fetched"])
		}
	}
	tamper(t, a.blobDir, hexSHA(cubeSTL), []byte("other bytes"))
	if r := b.do(t, call{method: "GET", path: "/api/v1/designs/" + slug + "/versions/1/files/parts/base.stl"}); r.status != 200 || !bytes.Equal(r.body, cubeSTL) {
		t.Fatalf("B's second download of A's file, A's copy changed since: got %d, want the bytes B checked", r.status)
	}
	tamper(t, a.blobDir, hexSHA(cubeSTL), cubeSTL) // A's copy as it was

	// A tampered file on A is refused with 502 and nothing is kept on B.
	clip := b.remoteDesigns(t, a.host())["Cable clip"]
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/" + clip["slug"].(string) + "/versions/1"})
	r.want(t, 200, "")
	var readme string
	for _, f := range r.json["version"].(map[string]any)["files"].([]any) {
		if f := f.(map[string]any); f["path"] == "README.md" {
			readme = f["sha256"].(string)
		}
	}
	tamper(t, a.blobDir, readme, []byte("# Spool holder\nPrint the base upside down.\n"))
	before = countBlobs(t, b.blobDir)
	b.do(t, call{method: "GET", path: "/api/v1/designs/" + clip["slug"].(string) + "/versions/1/files/README.md"}).want(t, 502, "bad_origin")
	if got := countBlobs(t, b.blobDir); got != before {
		t.Fatalf("B's blobs after a tampered download: got %d, want %d (nothing kept)", got, before)
	}
	// The archive fetches the good files it needs and keeps them, but not the tampered one.
	b.do(t, call{method: "GET", path: "/api/v1/designs/" + clip["slug"].(string) + "/versions/1/archive.zip"}).want(t, 502, "bad_origin")
	filepath.WalkDir(b.blobDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(filepath.Base(p), readme) {
			t.Errorf("B keeps a blob for the tampered file: %s", p)
		}
		return nil
	})

	// A's new version reaches B.
	nv := newMultipart().field("meta", map[string]any{"message": "Rounder base"}).file("files", "parts/base.stl", torusSTL).done()
	a.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/versions", body: nv, header: a.admin}).want(t, 201, "")
	eventually(t, "B to show A's version 2", func() bool {
		r := b.do(t, call{method: "GET", path: "/api/v1/designs/" + slug})
		return r.status == 200 && r.json["design"].(map[string]any)["latest_version"] == 2.0
	})

	// A hides it: a tombstone on B.
	a.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/hide", header: a.admin}).want(t, 204, "")
	eventually(t, "B to keep A's hidden design as a tombstone", func() bool {
		r := b.do(t, call{method: "GET", path: "/api/v1/designs/" + slug})
		return r.status == 200 && r.json["design"].(map[string]any)["hidden"] == true && r.json["version"] == nil
	})
	if b.remoteDesigns(t, a.host())["Spool holder"] != nil {
		t.Fatal("B still lists A's hidden design")
	}
	// Shown again on A: a Create, and B lists it again.
	a.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/unhide", header: a.admin}).want(t, 204, "")
	eventually(t, "B to list A's design again", func() bool { return b.remoteDesigns(t, a.host())["Spool holder"] != nil })

	// B follows C and keeps its design; blocking C drops it.
	publish(t, c.bundle, c.admin, map[string]any{"title": "Vise jaw", "license": "CC-BY-4.0"}).want(t, 201, "")
	b.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: b.admin, body: map[string]string{"target": c.url}}).want(t, 201, "")
	eventually(t, "B to keep C's design", func() bool { return b.remoteDesigns(t, c.host())["Vise jaw"] != nil })
	b.do(t, call{method: "POST", path: "/api/v1/federation/blocks", header: b.admin, body: map[string]string{"host": c.host()}}).want(t, 201, "")
	if ds := b.remoteDesigns(t, c.host()); len(ds) != 0 {
		t.Fatalf("B's designs from C after blocking it: got %v, want none", ds)
	}
	if ds := b.remoteDesigns(t, a.host()); ds["Cable clip"] == nil {
		t.Fatal("blocking C dropped A's designs from B")
	}
}

// TestInboxDesignForgery: a followed server may publish designs attributed to its own
// actor only: a Create attributed to another actor, or of an object on another host, is
// refused with 403 and nothing is kept; its own design is kept; a Create from a server
// not followed is ignored; a design over the limits is refused in words.
func TestInboxDesignForgery(t *testing.T) {
	t.Parallel()
	h := newFedHub(t)
	keys := remoteKeys()
	alice := newFakeRemote(t, "mastodon_actor.json", "/users/alice", keys[0])
	stranger := newFakeRemote(t, "mastodon_actor.json", "/users/alice", keys[1])
	followAccepted(t, h, alice, keys[0])

	create := func(from *fakeRemote, id, author string, files int) []byte {
		var attachment []any
		for i := range files {
			attachment = append(attachment, map[string]any{"type": "Document", "name": fmt.Sprintf("part%d.stl", i), "url": from.url + fmt.Sprintf("/files/part%d.stl", i),
				"fab:sha256": strings.Repeat("b", 64), "fab:size": 684})
		}
		b, _ := json.Marshal(map[string]any{"id": id + "#create", "type": "Create", "actor": from.actor, "object": map[string]any{
			"id": id, "type": "Document", "fab:version": 1, "attributedTo": author, "name": "Clip <script>alert(1)</script>", "spdx:licenseId": "MIT",
			"attachment": attachment}})
		return b
	}
	for _, tc := range []struct {
		name       string
		from       *fakeRemote
		key        int
		id, author string
		files      int
		want       int
	}{
		{"attributed to another actor", alice, 0, alice.url + "/designs/a", alice.url + "/users/bob", 1, 403},
		{"attributed to an actor of another host", alice, 0, alice.url + "/designs/b", h.url + "/people/ada", 1, 403},
		{"an object of another host", alice, 0, h.url + "/designs/c", alice.actor, 1, 403},
		{"over the limit of files", alice, 0, alice.url + "/designs/d", alice.actor, 201, 422},
		{"from a server not followed", stranger, 1, stranger.url + "/designs/e", stranger.actor, 1, 202},
		{"its own", alice, 0, alice.url + "/designs/clip", alice.actor, 1, 202},
	} {
		status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", create(tc.from, tc.id, tc.author, tc.files), keys[tc.key], tc.from.actor+"#main-key", time.Now()))
		if status != tc.want {
			t.Errorf("%s: got %d %s, want %d", tc.name, status, resp, tc.want)
		}
	}
	r := h.do(t, call{method: "GET", path: "/api/v1/designs"})
	r.want(t, 200, "")
	ds := r.json["designs"].([]any)
	if len(ds) != 1 || ds[0].(map[string]any)["origin"].(map[string]any)["object"] != alice.url+"/designs/clip" {
		t.Fatalf("the designs kept: got %s, want alice's own alone", r.body)
	}
	// Its server has no thumbnail for it: the card's is empty, and asking again does not
	// ask the server again.
	clip := ds[0].(map[string]any)["slug"].(string)
	for range 2 {
		thumb := h.do(t, call{method: "GET", path: "/designs/" + clip + "/thumbnail.png"})
		if img, err := png.Decode(bytes.NewReader(thumb.body)); thumb.status != 200 || err != nil || img.Bounds().Dx() != 1 {
			t.Fatalf("the thumbnail of a design whose server has none: got %d %v", thumb.status, err)
		}
	}
	if n := strings.Count(h.logs.String(), "thumbnail was not"); n != 1 {
		t.Fatalf("the server without a thumbnail was asked %d times, want once", n)
	}
	page := h.do(t, call{method: "GET", path: "/search?q=clip", header: map[string]string{"Accept": "text/html"}})
	if strings.Contains(string(page.body), "<script>alert(1)</script>") || !strings.Contains(string(page.body), "&lt;script&gt;") {
		t.Fatalf("a remote title on a card: want it escaped; got %s", page.body)
	}

	// An Update with version 2 and a new title: both taken, and search follows.
	var update map[string]any
	json.Unmarshal(create(alice, alice.url+"/designs/clip", alice.actor, 1), &update)
	update["type"], update["id"] = "Update", alice.url+"/designs/clip#update"
	obj := update["object"].(map[string]any)
	obj["fab:version"], obj["name"], obj["tag"] = 2, "Cable clip", []any{map[string]any{"type": "Hashtag", "name": "#Cables"}}
	body, _ := json.Marshal(update)
	if status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", body, keys[0], alice.actor+"#main-key", time.Now())); status != 202 {
		t.Fatalf("the Update: got %d %s, want 202", status, resp)
	}
	r = h.do(t, call{method: "GET", path: "/api/v1/designs?q=cable&tag=cables"})
	r.want(t, 200, "")
	ds = r.json["designs"].([]any)
	if len(ds) != 1 || ds[0].(map[string]any)["title"] != "Cable clip" || ds[0].(map[string]any)["latest_version"] != 2.0 {
		t.Fatalf("after the Update: got %s, want the clip retitled at version 2", r.body)
	}
	// Versions this hub did not hear of (published while a delivery was given up): the
	// next one it hears is kept all the same, and an older one is not.
	for _, n := range []int{5, 3} {
		obj["fab:version"], update["id"] = n, fmt.Sprintf("%s/designs/clip#update%d", alice.url, n)
		if n == 3 {
			obj["name"] = "Stale clip" // late news: nothing of it is taken
		}
		body, _ := json.Marshal(update)
		if status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", body, keys[0], alice.actor+"#main-key", time.Now())); status != 202 {
			t.Fatalf("the Update to version %d: got %d %s, want 202", n, status, resp)
		}
	}
	slug := ds[0].(map[string]any)["slug"].(string)
	r = h.do(t, call{method: "GET", path: "/api/v1/designs/" + slug + "/versions"})
	r.want(t, 200, "")
	var numbers []float64
	for _, v := range r.json["versions"].([]any) {
		numbers = append(numbers, v.(map[string]any)["number"].(float64))
	}
	slices.Sort(numbers)
	if !slices.Equal(numbers, []float64{1, 2, 5}) {
		t.Fatalf("the clip's versions after Updates to 5 and then 3: got %v, want 1, 2 and 5", numbers)
	}
	if r := h.do(t, call{method: "GET", path: "/api/v1/designs/" + slug}); r.json["design"].(map[string]any)["title"] != "Cable clip" {
		t.Fatalf("the clip after a late Update: got %s, want its title of version 5", r.body)
	}
}

// TestRemoteDesignLineage: a remote design names two parents on other hubs by URL; the
// lineage credits both, and the page and the graph link the first by its URL.
func TestRemoteDesignLineage(t *testing.T) {
	t.Parallel()
	h := newFedHub(t)
	keys := remoteKeys()
	alice := newFakeRemote(t, "mastodon_actor.json", "/users/alice", keys[0])
	followAccepted(t, h, alice, keys[0])
	parent := "https://elsewhere.example/designs/vise"
	create, _ := json.Marshal(map[string]any{"id": alice.url + "/designs/jaw#create", "type": "Create", "actor": alice.actor, "object": map[string]any{
		"id": alice.url + "/designs/jaw", "type": "Document", "fab:version": 1, "attributedTo": alice.actor, "name": "Soft jaw", "spdx:licenseId": "CERN-OHL-S-2.0",
		"attachment": []any{map[string]any{"name": "jaw.stl", "url": alice.url + "/f/jaw.stl", "fab:sha256": strings.Repeat("c", 64), "fab:size": 684}},
		"fab:parents": []any{map[string]any{"id": parent, "fab:version": 2, "name": "Bench vise", "fab:owner": "@lin@elsewhere.example", "spdx:licenseId": "CERN-OHL-S-2.0"},
			map[string]any{"id": "https://third.example/designs/jaw-pad", "fab:version": 1, "name": "Jaw pad", "fab:owner": "@kim@third.example", "spdx:licenseId": "CERN-OHL-S-2.0"}}}})
	if status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", create, keys[0], alice.actor+"#main-key", time.Now())); status != 202 {
		t.Fatalf("the Create: got %d %s", status, resp)
	}
	r := h.do(t, call{method: "GET", path: "/api/v1/designs"})
	r.want(t, 200, "")
	slug := r.json["designs"].([]any)[0].(map[string]any)["slug"].(string)
	r = h.do(t, call{method: "GET", path: "/api/v1/designs/" + slug + "/lineage"})
	r.want(t, 200, "")
	ancestors := r.json["ancestors"].([]any)
	if len(ancestors) != 2 || ancestors[0].(map[string]any)["url"] != parent || ancestors[0].(map[string]any)["hidden"] != false ||
		ancestors[0].(map[string]any)["credit"] != "@lin@elsewhere.example" || ancestors[1].(map[string]any)["origin"].(map[string]any)["hub"] != "third.example" {
		t.Fatalf("the lineage: got %s, want the vise and the pad by their URLs", r.body)
	}
	page := h.do(t, call{method: "GET", path: "/designs/" + slug, header: map[string]string{"Accept": "text/html"}})
	page.want(t, 200, "")
	if n := strings.Count(string(page.body), `href="`+parent+`"`); n != 2 {
		t.Fatalf("the page: got %d links to the parent, want 2 (built on, and the graph)", n)
	}
}

// TestInboxForkNotice: a server this hub does not follow is heard only when it tells of
// a fork of one of this hub's own designs: that fork is kept and listed among the
// design's descendants; a design naming no parent here, or a parent URL of this hub
// that is no design, is ignored.
func TestInboxForkNotice(t *testing.T) {
	t.Parallel()
	h := newFedHub(t)
	publish(t, h.bundle, h.admin, map[string]any{"title": "Spool holder", "license": "CC-BY-4.0"}).want(t, 201, "")
	keys := remoteKeys()
	stranger := newFakeRemote(t, "mastodon_actor.json", "/users/alice", keys[0])
	// Someone here takes the slug the fork below would be kept under: it takes a longer one.
	squat := catalog.RemoteSlug("wide", stranger.url+"/designs/wide")
	publish(t, h.bundle, login(t, h.bundle, "mallory"), map[string]any{"title": "Squat", "slug": squat, "license": "MIT"}).want(t, 201, "")
	create := func(id, parent string) []byte {
		b, _ := json.Marshal(map[string]any{"id": id + "#create", "type": "Create", "actor": stranger.actor, "object": map[string]any{
			"id": id, "type": "Document", "fab:version": 1, "attributedTo": stranger.actor, "name": path.Base(id), "spdx:licenseId": "CC-BY-4.0",
			"attachment":  []any{map[string]any{"name": "a.stl", "url": stranger.url + "/f/a.stl", "fab:sha256": strings.Repeat("d", 64), "fab:size": 684}},
			"fab:parents": []any{map[string]any{"id": parent, "fab:version": 1, "name": "Spool holder", "fab:owner": "@ada@" + h.host(), "spdx:licenseId": "CC-BY-4.0"}}}})
		return b
	}
	for _, tc := range []struct{ id, parent string }{
		{stranger.url + "/designs/elsewhere", "https://elsewhere.example/designs/spool-holder"},
		{stranger.url + "/designs/nothing", h.url + "/designs/no-such-design"},
		{stranger.url + "/designs/deeper", h.url + "/designs/spool-holder/versions/1"},
		{stranger.url + "/designs/wide", h.url + "/designs/spool-holder"},
	} {
		if status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", create(tc.id, tc.parent), keys[0], stranger.actor+"#main-key", time.Now())); status != 202 {
			t.Fatalf("%s: got %d %s", tc.id, status, resp)
		}
	}
	if ds := h.remoteDesigns(t, strings.TrimPrefix(stranger.url, "http://")); len(ds) != 1 || ds["wide"] == nil || ds["wide"]["slug"] == squat {
		t.Fatalf("the designs kept from a server not followed: got %v, want the fork of spool-holder alone, not at %s", ds, squat)
	}
	r := h.do(t, call{method: "GET", path: "/api/v1/designs/spool-holder/lineage"})
	r.want(t, 200, "")
	if ds := r.json["descendants"].([]any); len(ds) != 1 || ds[0].(map[string]any)["title"] != "wide" {
		t.Fatalf("spool-holder's descendants: got %s, want the remote fork", r.body)
	}

	// A host not followed may have 100 designs kept here; the 101st is ignored, and an
	// Update of one it has is still taken.
	for i := range 100 {
		body := create(fmt.Sprintf("%s/designs/fork%03d", stranger.url, i), h.url+"/designs/spool-holder")
		if status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", body, keys[0], stranger.actor+"#main-key", time.Now())); status != 202 {
			t.Fatalf("fork %d: got %d %s", i, status, resp)
		}
	}
	kept := func() int {
		r := h.do(t, call{method: "GET", path: "/api/v1/designs?limit=100&origin=" + strings.TrimPrefix(stranger.url, "http://")})
		n := len(r.json["designs"].([]any))
		if r.json["next_cursor"] != "" {
			n++ // more than a page
		}
		return n
	}
	if n := kept(); n != 100 {
		t.Fatalf("designs kept from a host not followed after 101 forks: got %d, want 100", n)
	}
	// A Delete makes a tombstone, not room for another.
	del, _ := json.Marshal(map[string]any{"id": stranger.url + "/designs/fork000#delete", "type": "Delete", "actor": stranger.actor,
		"object": map[string]any{"id": stranger.url + "/designs/fork000", "type": "Tombstone"}})
	if status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", del, keys[0], stranger.actor+"#main-key", time.Now())); status != 202 {
		t.Fatalf("the Delete: got %d %s", status, resp)
	}
	more := create(stranger.url+"/designs/another", h.url+"/designs/spool-holder")
	if status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", more, keys[0], stranger.actor+"#main-key", time.Now())); status != 202 {
		t.Fatalf("a fork after a Delete: got %d %s", status, resp)
	}
	if r := h.do(t, call{method: "GET", path: "/api/v1/designs?q=another"}); len(r.json["designs"].([]any)) != 0 || kept() != 99 {
		t.Fatalf("after a Delete and another fork: got %s and %d kept, want the fork ignored and 99", r.body, kept())
	}
	var update map[string]any
	json.Unmarshal(create(stranger.url+"/designs/wide", h.url+"/designs/spool-holder"), &update)
	update["type"], update["id"] = "Update", stranger.url+"/designs/wide#update"
	update["object"].(map[string]any)["fab:version"] = 2
	body, _ := json.Marshal(update)
	if status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", body, keys[0], stranger.actor+"#main-key", time.Now())); status != 202 {
		t.Fatalf("the Update of a kept fork: got %d %s", status, resp)
	}
	r = h.do(t, call{method: "GET", path: "/api/v1/designs?q=wide"})
	if ds := r.json["designs"].([]any); len(ds) != 1 || ds[0].(map[string]any)["latest_version"] != 2.0 {
		t.Fatalf("the kept fork after its Update: got %s, want version 2", r.body)
	}
}

// followAccepted has h follow the remote account and answers its Follow with the
// account's Accept, signed with key as Mastodon signs.
func followAccepted(t *testing.T, h fedHub, account *fakeRemote, key *rsa.PrivateKey) {
	t.Helper()
	h.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: h.admin, body: map[string]string{"target": account.actor}}).want(t, 201, "")
	var follow map[string]any
	select {
	case <-account.got:
		json.Unmarshal(<-account.body, &follow)
	case <-time.After(10 * time.Second):
		t.Fatal("no Follow reached the account's inbox")
	}
	accept, _ := json.Marshal(map[string]any{"id": account.actor + "#accepts/1", "type": "Accept", "actor": account.actor, "object": follow})
	if status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", accept, key, account.actor+"#main-key", time.Now())); status != 202 {
		t.Fatalf("the Accept: got %d %s", status, resp)
	}
}

// TestForksAcrossHubs runs three hubs on loopback: B follows A and C follows B. On B,
// A's designs fork under the same license rules as local ones (share-alike stays,
// no-derivatives refuses); the fork names its parent by A's URL, takes its files from
// A at once, and credits A's design with its hub in ATTRIBUTION.md. A hears of the
// fork (it does not follow B) and lists it among its design's descendants with B's
// host; C keeps B's fork with its parent named by A's URL. A hiding its design leaves
// B's fork standing; B hiding its fork makes a tombstone of it on A.
func TestForksAcrossHubs(t *testing.T) {
	t.Parallel()
	a, b, c := newFedHub(t), newFedHub(t), newFedHub(t)
	publish(t, a.bundle, a.admin, map[string]any{"title": "Spool holder", "license": "CC-BY-SA-4.0"}).want(t, 201, "")
	publish(t, a.bundle, a.admin, map[string]any{"title": "Logo plate", "license": "CC-BY-ND-4.0"}).want(t, 201, "")
	b.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: b.admin, body: map[string]string{"target": a.url}}).want(t, 201, "")
	c.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: c.admin, body: map[string]string{"target": b.url}}).want(t, 201, "")
	eventually(t, "B to keep A's designs", func() bool { return len(b.remoteDesigns(t, a.host())) == 2 })
	spool := b.remoteDesigns(t, a.host())["Spool holder"]["slug"].(string)
	plate := b.remoteDesigns(t, a.host())["Logo plate"]["slug"].(string)

	// The license rules of a local fork.
	r := b.do(t, call{method: "GET", path: "/api/v1/designs/" + spool + "/fork-options"})
	r.want(t, 200, "")
	var allowed []string
	for _, o := range r.json["allowed"].([]any) {
		allowed = append(allowed, o.(map[string]any)["id"].(string))
	}
	if r.json["forkable"] != true || !slices.Contains(allowed, "CC-BY-SA-4.0") || slices.Contains(allowed, "MIT") || slices.Contains(allowed, "CC-BY-4.0") {
		t.Fatalf("fork options of A's share-alike design on B: got %s", r.body)
	}
	b.do(t, call{method: "POST", path: "/api/v1/designs/" + spool + "/forks", header: b.admin, body: map[string]any{"license": "MIT"}}).want(t, 422, "invalid")
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/" + plate + "/fork-options"})
	if r.want(t, 200, ""); r.json["forkable"] != false {
		t.Fatalf("fork options of A's no-derivatives design on B: got %s", r.body)
	}
	b.do(t, call{method: "POST", path: "/api/v1/designs/" + plate + "/forks", header: b.admin, body: map[string]any{"license": "CC-BY-ND-4.0"}}).want(t, 403, "forbidden")

	// Its page offers the fork, and the fork page lists the licenses it allows.
	page := b.do(t, call{method: "GET", path: "/designs/" + spool, header: map[string]string{"Accept": "text/html"}})
	if page.want(t, 200, ""); !strings.Contains(string(page.body), `href="/designs/`+spool+`/fork"`) {
		t.Fatalf("B's page of A's design offers no fork: %s", page.body)
	}
	page = b.do(t, call{method: "GET", path: "/designs/" + spool + "/fork", header: b.admin})
	if page.want(t, 200, ""); !strings.Contains(string(page.body), "CC-BY-SA-4.0") {
		t.Fatalf("the fork page of A's design: %s", page.body)
	}

	// The fork: its parent named by A's URL, its files fetched from A now.
	before := countBlobs(t, b.blobDir)
	r = b.do(t, call{method: "POST", path: "/api/v1/designs/" + spool + "/forks", header: b.admin, body: map[string]any{"license": "CC-BY-SA-4.0", "title": "Wide spool holder"}})
	r.want(t, 201, "")
	fork := r.json["design"].(map[string]any)
	parents := fork["parents"].([]any)
	if fork["origin"] != nil || len(parents) != 1 || parents[0].(map[string]any)["url"] != a.url+"/designs/spool-holder" || parents[0].(map[string]any)["slug"] != spool {
		t.Fatalf("B's fork of A's design: got %s, want a local design whose parent is named by A's URL", r.body)
	}
	if got := countBlobs(t, b.blobDir); got != before+3 {
		t.Fatalf("B's blobs after the fork: got %d, want %d (A's three files, fetched and checked)", got, before+3)
	}
	// Its meshes were analysed as an upload's are: it is drawn, and made, as any design.
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/wide-spool-holder/versions/1"})
	r.want(t, 200, "")
	for _, f := range r.json["version"].(map[string]any)["files"].([]any) {
		if f := f.(map[string]any); strings.HasSuffix(f["path"].(string), ".stl") && f["mesh"] == nil {
			t.Fatalf("the fork's %s has no mesh report: %s", f["path"], r.body)
		}
	}
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/wide-spool-holder/versions/1/archive.zip"})
	r.want(t, 200, "")
	attribution := zipEntry(t, r.body, "ATTRIBUTION.md")
	if want := "Spool holder by @ada@" + a.host() + ", version 1, licensed CC-BY-SA-4.0, published on " + a.host() + ": " + a.url + "/designs/spool-holder"; !strings.Contains(string(attribution), want) {
		t.Fatalf("the fork's ATTRIBUTION.md: want %q; got %s", want, attribution)
	}

	// A hears of it, and lists it with B's host.
	var forkOnA map[string]any
	eventually(t, "A to list B's fork among its design's descendants", func() bool {
		r := a.do(t, call{method: "GET", path: "/api/v1/designs/spool-holder/lineage"})
		for _, d := range r.json["descendants"].([]any) {
			if d := d.(map[string]any); d["title"] == "Wide spool holder" {
				forkOnA = d
			}
		}
		return forkOnA != nil
	})
	if o, _ := forkOnA["origin"].(map[string]any); o["hub"] != b.host() || o["url"] != b.url+"/designs/wide-spool-holder" || forkOnA["owner"] != "@ada@"+b.host() {
		t.Fatalf("B's fork on A: got %v, want it from %s", forkOnA, b.host())
	}
	page = a.do(t, call{method: "GET", path: "/designs/spool-holder", header: map[string]string{"Accept": "text/html"}})
	if page.want(t, 200, ""); !strings.Contains(string(page.body), "Wide spool holder") {
		t.Fatalf("A's design page does not show B's fork: %s", page.body)
	}
	if len(a.remoteDesigns(t, b.host())) != 1 {
		t.Fatalf("A's designs from B: want the fork alone")
	}

	// C, following B, keeps the fork with its parent named by A's URL.
	eventually(t, "C to keep B's fork", func() bool { return c.remoteDesigns(t, b.host())["Wide spool holder"] != nil })
	r = c.do(t, call{method: "GET", path: "/api/v1/designs/" + c.remoteDesigns(t, b.host())["Wide spool holder"]["slug"].(string) + "/lineage"})
	r.want(t, 200, "")
	if an := r.json["ancestors"].([]any); len(an) != 1 || an[0].(map[string]any)["url"] != a.url+"/designs/spool-holder" ||
		an[0].(map[string]any)["origin"].(map[string]any)["hub"] != a.host() {
		t.Fatalf("the lineage of B's fork on C: got %s, want A's design by its URL", r.body)
	}

	// A hides its design: a tombstone on B, and the fork stands, with its files.
	a.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/hide", header: a.admin}).want(t, 204, "")
	eventually(t, "B to keep A's hidden design as a tombstone", func() bool {
		r := b.do(t, call{method: "GET", path: "/api/v1/designs/" + spool})
		return r.json["design"].(map[string]any)["hidden"] == true
	})
	b.do(t, call{method: "GET", path: "/api/v1/designs/wide-spool-holder/versions/1/files/parts/base.stl"}).want(t, 200, "")
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/wide-spool-holder/lineage"})
	if an := r.json["ancestors"].([]any); len(an) != 1 || an[0].(map[string]any)["hidden"] != true || an[0].(map[string]any)["title"] != "Spool holder" {
		t.Fatalf("the fork's lineage after A hid its parent: got %s, want the parent credited as a tombstone", r.body)
	}

	// B hides its fork: A, which does not follow B, keeps a tombstone of it.
	b.do(t, call{method: "POST", path: "/api/v1/designs/wide-spool-holder/hide", header: b.admin}).want(t, 204, "")
	eventually(t, "A to keep B's hidden fork as a tombstone", func() bool { return len(a.remoteDesigns(t, b.host())) == 0 })
}

// TestInboxRefusesThisHubAsSigner: a person of this hub uploads an actor document (a
// file of a design, served by this hub) that claims to be another person here, and
// signs a fork notice with its URL as the key id. The hub does not take its own host
// as a remote signer, nor a document served as a file as an actor: 401, nothing kept.
func TestInboxRefusesThisHubAsSigner(t *testing.T) {
	t.Parallel()
	h := newFedHub(t)
	publish(t, h.bundle, h.admin, map[string]any{"title": "Spool holder", "license": "CC-BY-ND-4.0"}).want(t, 201, "")
	key := remoteKeys()[0]
	fileURL := h.url + "/api/v1/designs/keys/versions/1/files/actor.kicad_pro"
	var publicPEM string
	json.Unmarshal(pemJSON(key), &publicPEM)
	actor, _ := json.Marshal(map[string]any{"@context": "https://www.w3.org/ns/activitystreams", "id": h.url + "/people/ada", "type": "Person",
		"inbox": h.url + "/ap/people/ada/inbox", "publicKey": map[string]any{"id": fileURL + "#main-key", "owner": h.url + "/people/ada",
			"publicKeyPem": publicPEM}})
	body := newMultipart().field("meta", map[string]any{"title": "Keys", "license": "MIT"}).file("files", "actor.kicad_pro", actor).done()
	mallory := login(t, h.bundle, "mallory")
	h.do(t, call{method: "POST", path: "/api/v1/designs", body: body, header: mallory}).want(t, 201, "")

	create, _ := json.Marshal(map[string]any{"id": h.url + "/designs/official#create", "type": "Create", "actor": h.url + "/people/ada", "object": map[string]any{
		"id": h.url + "/designs/official", "type": "Document", "fab:version": 1, "attributedTo": h.url + "/people/ada", "name": "Official remix", "spdx:licenseId": "CC0-1.0",
		"attachment":  []any{map[string]any{"name": "a.stl", "url": h.url + "/f/a.stl", "fab:sha256": strings.Repeat("d", 64), "fab:size": 684}},
		"fab:parents": []any{map[string]any{"id": h.url + "/designs/spool-holder", "fab:version": 1, "name": "Spool holder", "spdx:licenseId": "CC-BY-ND-4.0"}}}})
	if status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", create, key, fileURL+"#main-key", time.Now())); status != 401 {
		t.Fatalf("a Create signed with a key served as a file of this hub: got %d %s, want 401", status, resp)
	}
	r := h.do(t, call{method: "GET", path: "/api/v1/designs/spool-holder/lineage"})
	if r.want(t, 200, ""); len(r.json["descendants"].([]any)) != 0 {
		t.Fatalf("spool-holder's descendants: got %s, want none", r.body)
	}
}

// TestRemoteFileByAHashItLearnt: a design hidden here had a file whose SHA-256 was
// public while it was visible. A server names that hash for a file of its own design
// (a fork notice, so no follow is needed) but does not serve the bytes: the hub does
// not hand out its copy; it asks the origin, which cannot show them: 502.
func TestRemoteFileByAHashItLearnt(t *testing.T) {
	t.Parallel()
	h := newFedHub(t)
	publish(t, h.bundle, h.admin, map[string]any{"title": "Spool holder", "license": "CC-BY-4.0"}).want(t, 201, "")
	secret := []byte("SECRET: the notes of a design taken down\n")
	body := newMultipart().field("meta", map[string]any{"title": "Secret", "license": "MIT"}).file("files", "notes.md", secret).done()
	h.do(t, call{method: "POST", path: "/api/v1/designs", body: body, header: h.admin}).want(t, 201, "")
	h.do(t, call{method: "POST", path: "/api/v1/designs/secret/hide", header: h.admin}).want(t, 204, "")
	sum := sha256.Sum256(secret)

	keys := remoteKeys()
	stranger := newFakeRemote(t, "mastodon_actor.json", "/users/alice", keys[0])
	create, _ := json.Marshal(map[string]any{"id": stranger.url + "/designs/peek#create", "type": "Create", "actor": stranger.actor, "object": map[string]any{
		"id": stranger.url + "/designs/peek", "type": "Document", "fab:version": 1, "attributedTo": stranger.actor, "name": "Peek", "spdx:licenseId": "CC-BY-4.0",
		"attachment":  []any{map[string]any{"name": "notes.md", "url": stranger.url + "/f/notes.md", "fab:sha256": hex.EncodeToString(sum[:]), "fab:size": len(secret)}},
		"fab:parents": []any{map[string]any{"id": h.url + "/designs/spool-holder", "fab:version": 1, "name": "Spool holder", "spdx:licenseId": "CC-BY-4.0"}}}})
	if status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", create, keys[0], stranger.actor+"#main-key", time.Now())); status != 202 {
		t.Fatalf("the fork notice: got %d %s", status, resp)
	}
	peek := h.remoteDesigns(t, strings.TrimPrefix(stranger.url, "http://"))["Peek"]
	if peek == nil {
		t.Fatal("the fork notice was not kept")
	}
	r := h.do(t, call{method: "GET", path: "/api/v1/designs/" + peek["slug"].(string) + "/versions/1/files/notes.md"})
	if r.status != 502 || bytes.Contains(r.body, []byte("SECRET")) {
		t.Fatalf("the remote file named by the hidden file's hash: got %d %q, want 502 and not the hidden bytes", r.status, r.body)
	}
}

func hexSHA(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
