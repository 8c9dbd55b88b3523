package web

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/fabcommons/fabcommons/catalog"
)

// okhPackage zips name/content pairs, in order.
func okhPackage(t *testing.T, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i+1 < len(files); i += 2 {
		w, err := zw.Create(files[i])
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(files[i+1]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func importCall(auth map[string]string, zipped []byte, lic string) call {
	body := newMultipart().file("archive", "package.zip", zipped)
	if lic != "" {
		body = body.field("license", []byte(lic))
	}
	return call{method: "POST", path: "/api/v1/designs/import", body: body.done(), header: auth}
}

func reportItems(r reply, list string) []string {
	var out []string
	rep, _ := r.json["report"].(map[string]any)
	items, _ := rep[list].([]any)
	for _, it := range items {
		switch x := it.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			key, _ := x["key"].(string)
			path, _ := x["path"].(string)
			note, _ := x["note"].(string)
			out = append(out, strings.Join(strings.Fields(key+" "+path+" "+note), " "))
		}
	}
	return out
}

func anyHas(items []string, sub string) bool {
	for _, s := range items {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

const messyManifest = `okhv = "1.0"
title = "Messy lamp"
description = "A lamp, described the OKH v1 way."
licensor = {name = "Bea", email = "bea@example.org"}
version = "0.3"
bom = "/BoM.csv"
shade = "green"
[license]
hardware = "cern-ohl-w-2.0"
[[part]]
name = "foot"
export = ["/foot.stl", "./gone.stl", "https://example.org/remote.stl"]
source = "foot.scad"
`

func TestImportOKHPackage(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ada := login(t, b, "ada")
	pkg := okhPackage(t, "lamp-main/okh.toml", messyManifest, "lamp-main/foot.stl", string(cubeSTL),
		"lamp-main/foot.scad", "cube(20);", "lamp-main/BoM.csv", "ref,kind,name,qty,file\nF,printed,Foot,1,foot.stl\n",
		"lamp-main/photos/lamp.jpg", "jpeg")

	b.do(t, importCall(nil, pkg, "")).want(t, 401, "unauthenticated")
	r := b.do(t, importCall(ada, pkg, ""))
	r.want(t, 201, "")
	d := r.json["design"].(map[string]any)
	v := r.json["version"].(map[string]any)
	if d["title"] != "Messy lamp" || d["summary"] != "A lamp, described the OKH v1 way." || d["license"] != "CERN-OHL-W-2.0" || d["owner"] != "ada" || d["licensor"] != "Bea" {
		t.Errorf("got design %v", d)
	}
	if len(v["files"].([]any)) != 2 || len(v["bom"].([]any)) != 1 || !strings.Contains(v["message"].(string), "licensor Bea") {
		t.Errorf("got version %v", v)
	}
	for list, want := range map[string][]string{
		"used":    {"title", "license.hardware", "part[0].export foot.stl", "bom BoM.csv"},
		"ignored": {"shade unknown key", "part[0].export https://example.org/remote.stl a link"},
		"missing": {"part[0].export gone.stl"},
		"unnamed": {"photos/lamp.jpg"},
	} {
		got := reportItems(r, list)
		for _, w := range want {
			if !anyHas(got, w) {
				t.Errorf("report %s: got %q, want an item with %q", list, got, w)
			}
		}
	}
	// The design is there, as any other.
	b.do(t, call{method: "GET", path: "/api/v1/designs/" + d["slug"].(string)}).want(t, 200, "")
}

func TestImportOKHRefusals(t *testing.T) {
	t.Parallel()
	b := setupWithLimits(t, Config{}, catalog.Limits{VersionBytes: 256 << 10, FileBytes: 128 << 10})
	ada := login(t, b, "ada")
	ok := `name = "X"` + "\nlicense = 'MIT'\nexport = 'a.stl'\n"
	tests := []struct {
		name   string
		call   call
		status int
		code   string
		says   string
	}{
		{"no manifest", importCall(ada, okhPackage(t, "a.stl", string(cubeSTL)), ""), 422, "invalid", "no okh.toml at the root"},
		{"syntax", importCall(ada, okhPackage(t, "okh.toml", "name = \"X\"\nlicense = MIT\n", "a.stl", string(cubeSTL)), ""), 422, "invalid", "line 2"},
		{"traversal", importCall(ada, okhPackage(t, "okh.toml", ok, "a.stl", string(cubeSTL), "../../etc/cron.d/x", "x"), ""), 422, "invalid", "climbs out"},
		{"unknown license", importCall(ada, okhPackage(t, "okh.toml", strings.Replace(ok, "MIT", "WTFPL", 1), "a.stl", string(cubeSTL)), ""), 422, "invalid", "WTFPL"},
		{"not a zip", importCall(ada, []byte("hello"), ""), 422, "invalid", "not a zip"},
		{"no archive", call{method: "POST", path: "/api/v1/designs/import", header: ada, body: newMultipart().field("license", []byte("MIT")).done()}, 400, "bad_request", "no archive"},
		{"not multipart", call{method: "POST", path: "/api/v1/designs/import", header: ada, body: map[string]string{}}, 400, "bad_request", "multipart"},
		{"a file too large", importCall(ada, okhPackage(t, "okh.toml", ok, "a.stl", strings.Repeat("x", 129<<10)), ""), 413, "too_large", "a.stl"},
		{"a body too large", importCall(ada, bytes.Repeat([]byte("x"), 17<<20+256<<10), ""), 413, "too_large", "bytes"},
	}
	for _, tt := range tests {
		r := b.do(t, tt.call)
		if r.status != tt.status || r.errorCode() != tt.code || !strings.Contains(string(r.body), tt.says) {
			t.Errorf("%s: got %d %s, want %d %s saying %q", tt.name, r.status, r.body, tt.status, tt.code, tt.says)
		}
	}
	// A refusal after the manifest was read says what else it found.
	r := b.do(t, importCall(ada, okhPackage(t, "okh.toml", strings.Replace(ok, "MIT", "WTFPL", 1)+"colour = 'red'\n", "a.stl", string(cubeSTL)), ""))
	r.want(t, 422, "invalid")
	if !anyHas(reportItems(r, "ignored"), "colour unknown key") {
		t.Errorf("got %s, want the report beside the error", r.body)
	}
	// A license chosen on import stands in for the unknown one, and the report says so.
	r = b.do(t, importCall(ada, okhPackage(t, "okh.toml", strings.Replace(ok, "MIT", "WTFPL", 1), "a.stl", string(cubeSTL)), "CC0-1.0"))
	r.want(t, 201, "")
	if r.json["design"].(map[string]any)["license"] != "CC0-1.0" || !anyHas(reportItems(r, "ignored"), "CC0-1.0 was chosen on import") {
		t.Fatalf("got %s", r.body)
	}
}

// TestImportOKHNeedsCSRFWithACookie: the page's import rides the session cookie, so
// without the session's CSRF token it is refused.
func TestImportOKHNeedsCSRFWithACookie(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	signUp(t, b, "ada")
	r := b.do(t, call{method: "POST", path: "/api/v1/sessions", body: map[string]string{"handle": "ada", "password": "correct horse battery"}})
	r.want(t, 200, "")
	csrf := r.json["csrf_token"].(string)
	jar := (&http.Response{Header: r.header}).Cookies()
	pkg := okhPackage(t, "okh.toml", "name = 'X'\nlicense = 'MIT'\nexport = 'a.stl'\n", "a.stl", string(cubeSTL))
	c := importCall(nil, pkg, "")
	c.cookies = jar
	b.do(t, c).want(t, 403, "csrf")
	c = importCall(map[string]string{csrfHeader: csrf}, pkg, "")
	c.cookies = jar
	b.do(t, c).want(t, 201, "")
}

// TestOKHRoundTrip: a design's download is an OKH package; imported, it is the same
// design again: name, summary, license, licensor, version, files and BOM, so that its
// manifest reads as the first one's (but for where it lives). Imported by someone else,
// it still names its first author as licensor, in okh.toml and in ATTRIBUTION.md.
func TestOKHRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{PublicURL: "https://fab.example.org"})
	ada, grace := login(t, b, "ada"), login(t, b, "grace")
	publish(t, b, ada, map[string]any{"title": "Filament spool holder", "summary": "Holds 1 kg spools", "license": "CERN-OHL-S-2.0"}).want(t, 201, "")
	first := b.do(t, call{method: "GET", path: "/api/v1/designs/filament-spool-holder/versions/1"})
	pkg := b.do(t, call{method: "GET", path: "/api/v1/designs/filament-spool-holder/versions/1/archive.zip"})
	pkg.want(t, 200, "")

	r := b.do(t, importCall(grace, pkg.body, ""))
	r.want(t, 201, "")
	d := r.json["design"].(map[string]any)
	slug := d["slug"].(string)
	if slug == "filament-spool-holder" || d["title"] != "Filament spool holder" || d["summary"] != "Holds 1 kg spools" || d["license"] != "CERN-OHL-S-2.0" ||
		d["owner"] != "grace" || d["licensor"] != "ada" {
		t.Fatalf("got design %v", d)
	}
	if got := reportItems(r, "missing"); len(got) != 0 {
		t.Errorf("missing: got %q, want none", got)
	}
	if got := reportItems(r, "unnamed"); len(got) != 0 {
		t.Errorf("unnamed: got %q, want none (ATTRIBUTION.md is the hub's to write)", got)
	}
	v := r.json["version"].(map[string]any)
	want := first.json["version"].(map[string]any)
	fileSet := func(v map[string]any) map[string]any {
		out := map[string]any{}
		for _, f := range v["files"].([]any) {
			f := f.(map[string]any)
			out[f["path"].(string)] = f["sha256"]
		}
		return out
	}
	if got, want := fileSet(v), fileSet(want); !maps.Equal(got, want) {
		t.Errorf("files: got %v, want %v", got, want)
	}
	if got, want := jsonOf(v["bom"]), jsonOf(want["bom"]); got != want {
		t.Errorf("BOM: got %s, want %s", got, want)
	}
	manifest := func(slug string) string {
		r := b.do(t, call{method: "GET", path: "/api/v1/designs/" + slug + "/versions/1/okh.toml"})
		r.want(t, 200, "")
		return strings.ReplaceAll(string(r.body), "/designs/"+slug+"'", "/designs/SLUG'")
	}
	if got, want := manifest(slug), manifest("filament-spool-holder"); got != want {
		t.Errorf("the imported design's okh.toml:\n%s\nwant\n%s", got, want)
	}
	zipped := b.do(t, call{method: "GET", path: "/api/v1/designs/" + slug + "/versions/1/archive.zip"})
	zr, err := zip.NewReader(bytes.NewReader(zipped.body), int64(len(zipped.body)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "ATTRIBUTION.md") {
			rc, _ := f.Open()
			text, _ := io.ReadAll(rc)
			rc.Close()
			if !strings.Contains(string(text), "- Licensor: ada (published here by grace)") {
				t.Errorf("ATTRIBUTION.md of the import does not credit ada:\n%s", text)
			}
		}
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestImportOKHCountsAgainstQuotas: an import is a publication, counted as uploads are.
func TestImportOKHCountsAgainstQuotas(t *testing.T) {
	t.Parallel()
	b := setupWithLimits(t, Config{}, catalog.Limits{DesignsPerDay: 1})
	login(t, b, "rootie") // the first account is the site's admin, whom quotas do not bind
	ada := login(t, b, "ada")
	pkg := okhPackage(t, "okh.toml", "name = 'X'\nlicense = 'MIT'\nexport = 'a.stl'\n", "a.stl", string(cubeSTL))
	b.do(t, importCall(ada, pkg, "")).want(t, 201, "")
	r := b.do(t, importCall(ada, pkg, ""))
	r.want(t, 429, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("got no Retry-After on %s", r.body)
	}
}

// TestDesignSlugsLeavePagesAlone: a design titled "Import" (or "New") does not take the
// slug of the page /designs/import (or /designs/new), where it could never be seen.
func TestDesignSlugsLeavePagesAlone(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ada := login(t, b, "ada")
	for _, title := range []string{"Import", "New"} {
		r := publish(t, b, ada, map[string]any{"title": title, "license": "MIT"})
		r.want(t, 201, "")
		if slug := r.json["design"].(map[string]any)["slug"]; slug != strings.ToLower(title)+"-2" {
			t.Errorf("%s: got slug %v, want %s-2", title, slug, strings.ToLower(title))
		}
	}
	publish(t, b, ada, map[string]any{"title": "X", "slug": "import", "license": "MIT"}).want(t, 422, "invalid")
}
