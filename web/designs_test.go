package web

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/catalog/mesh"
	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
)

// multipartBody builds a design upload: fields in the order added.
type multipartBody struct {
	buf         bytes.Buffer
	w           *multipart.Writer
	contentType string
}

func newMultipart() *multipartBody {
	m := &multipartBody{}
	m.w = multipart.NewWriter(&m.buf)
	return m
}

func (m *multipartBody) field(name string, v any) *multipartBody {
	b, ok := v.([]byte)
	if !ok {
		b, _ = json.Marshal(v)
	}
	fw, _ := m.w.CreateFormField(name)
	fw.Write(b)
	return m
}

// file adds a file part whose filename keeps its folders (as the browser upload does).
func (m *multipartBody) file(field, name string, data []byte) *multipartBody {
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, field, name))
	h.Set("Content-Type", "application/octet-stream")
	pw, _ := m.w.CreatePart(h)
	pw.Write(data)
	return m
}

func (m *multipartBody) done() *multipartBody {
	m.w.Close()
	m.contentType = m.w.FormDataContentType()
	return m
}

var (
	cubeSTL  = meshtest.Binary("cube", meshtest.Cube(stl.Vec3{0, 0, 0}, 20))
	cube3MF  = meshtest.ThreeMF(meshtest.Model3MF("inch", meshtest.MeshObject(1, "cube", meshtest.Cube(stl.Vec3{0, 0, 0}, 10)), meshtest.Item(1, "")), nil)
	torusSTL = meshtest.ASCII("torus", meshtest.Torus(24, 12, 30, 8))
)

// login signs handle up and returns its bearer header.
func login(t *testing.T, b bundle, handle string) map[string]string {
	t.Helper()
	signUp(t, b, handle)
	r := b.do(t, call{method: "POST", path: "/api/v1/tokens", body: map[string]string{"handle": handle, "password": "correct horse battery", "name": "test"}})
	r.want(t, 201, "")
	return map[string]string{"Authorization": "Bearer " + r.json["token"].(map[string]any)["secret"].(string)}
}

func publish(t *testing.T, b bundle, auth map[string]string, meta map[string]any) reply {
	t.Helper()
	body := newMultipart().field("meta", meta).
		file("files", "parts/base.stl", cubeSTL).
		file("files", "parts/ring.stl", torusSTL).
		file("files", "README.md", []byte("# Spool holder\nPrint the base flat.\n")).
		field("bom", []byte("ref,kind,name,qty,file,material\nB1,printed,Base,1,parts/base.stl,PETG\nR1,printed,Ring,2,parts/ring.stl,PLA\nS1,purchased,608 bearing,2,,\n")).
		done()
	return b.do(t, call{method: "POST", path: "/api/v1/designs", body: body, header: auth})
}

// zipEntry is the content of the entry of a zip whose name ends with name.
func zipEntry(t *testing.T, zipped []byte, name string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, name) {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			data, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
	t.Fatalf("no %s in the zip", name)
	return nil
}

func countBlobs(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(filepath.Join(dir, "sha256"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func TestPublishAndDownload(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{PublicURL: "https://fab.example.org"})
	ada := login(t, b, "ada")
	r := publish(t, b, ada, map[string]any{"title": "Filament spool holder", "summary": "Holds 1 kg spools", "tags": []string{"spool", "FDM"}, "license": "CERN-OHL-S-2.0"})
	r.want(t, 201, "")
	d := r.json["design"].(map[string]any)
	v := r.json["version"].(map[string]any)
	if d["slug"] != "filament-spool-holder" || d["owner"] != "ada" || v["number"] != 1.0 || len(v["bom"].([]any)) != 3 {
		t.Fatalf("got %s", r.body)
	}
	files := v["files"].([]any)
	base := files[0].(map[string]any)
	report := base["mesh"].(map[string]any)
	if base["path"] != "parts/base.stl" || base["kind"] != "mesh" || report["triangles"] != 12.0 || report["volume"] != 8000.0 || report["watertight"] != true {
		t.Fatalf("file 0: got %v", base)
	}
	if files[2].(map[string]any)["kind"] != "document" {
		t.Fatalf("README: got %v", files[2])
	}
	if got := countBlobs(t, b.blobDir); got != 3 {
		t.Fatalf("got %d blobs stored, want 3", got)
	}

	// Anyone may read it.
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/filament-spool-holder"})
	r.want(t, 200, "")
	if r.json["version"].(map[string]any)["number"] != 1.0 {
		t.Fatalf("got %s", r.body)
	}
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/filament-spool-holder/versions/1/files/parts/base.stl"})
	r.want(t, 200, "")
	etag := r.header.Get("Etag")
	if !bytes.Equal(r.body, cubeSTL) || etag != `"`+base["sha256"].(string)+`"` || r.header.Get("Content-Type") != "model/stl" ||
		!strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment") || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("download: got %d bytes, headers %v", len(r.body), r.header)
	}
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/filament-spool-holder/versions/1/files/parts/base.stl", header: map[string]string{"Range": "bytes=80-83"}})
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, cubeSTL[80:84]) {
		t.Fatalf("range: got %d %v", r.status, r.body)
	}
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/filament-spool-holder/versions/1/files/parts/base.stl", header: map[string]string{"If-None-Match": etag}})
	if r.status != http.StatusNotModified {
		t.Fatalf("If-None-Match: got %d, want 304", r.status)
	}
	b.do(t, call{method: "GET", path: "/api/v1/designs/filament-spool-holder/versions/1/files/parts/none.stl"}).want(t, 404, "not_found")
	b.do(t, call{method: "GET", path: "/api/v1/designs/filament-spool-holder/versions/9"}).want(t, 404, "not_found")
	b.do(t, call{method: "GET", path: "/api/v1/designs/filament-spool-holder/versions/x"}).want(t, 404, "not_found")

	// The zip holds the files, the BOM and the attribution.
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/filament-spool-holder/versions/1/archive.zip"})
	r.want(t, 200, "")
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		data, _ := io.ReadAll(rc)
		rc.Close()
		names[f.Name] = string(data)
	}
	prefix := "filament-spool-holder-v1/"
	if names[prefix+"parts/base.stl"] != string(cubeSTL) || !strings.Contains(names[prefix+"bom.csv"], "608 bearing") ||
		!strings.Contains(names[prefix+"ATTRIBUTION.md"], "https://fab.example.org/designs/filament-spool-holder") ||
		!strings.Contains(names[prefix+"ATTRIBUTION.md"], "License: CERN-OHL-S-2.0") {
		t.Fatalf("zip: got entries %v\n%s", len(names), names[prefix+"ATTRIBUTION.md"])
	}
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/filament-spool-holder/versions/1/okh.toml"})
	r.want(t, 200, "")
	for _, want := range []string{`okhv = 'OKH-LOSHv1.0'`, `license = 'CERN-OHL-S-2.0'`, `licensor = 'ada'`, `bom = 'bom.csv'`, `[outer-dimensions]`, `width = 76`} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("okh.toml lacks %q:\n%s", want, r.body)
		}
	}
	r = b.do(t, call{method: "GET", path: "/api/v1/designs?q=spool&tag=fdm"})
	r.want(t, 200, "")
	if list := r.json["designs"].([]any); len(list) != 1 {
		t.Fatalf("search: got %s", r.body)
	}
}

func TestUploadRefusesBadInput(t *testing.T) {
	t.Parallel()
	b := setupWithLimits(t, Config{}, catalog.Limits{FileBytes: 4096, Files: 3})
	ada := login(t, b, "ada")
	meta := map[string]any{"title": "Bracket", "license": "MIT"}
	for _, tc := range []struct {
		name   string
		body   *multipartBody
		status int
		code   string
	}{
		{"no files", newMultipart().field("meta", meta).done(), 422, "invalid"},
		{"no meta", newMultipart().file("files", "a.stl", cubeSTL).done(), 400, "bad_request"},
		{"bad meta", newMultipart().field("meta", []byte("{nope")).done(), 400, "bad_request"},
		{"unknown meta field", newMultipart().field("meta", map[string]any{"title": "x", "license": "MIT", "colour": "red"}).done(), 400, "bad_request"},
		{"more after the meta", newMultipart().field("meta", []byte(`{"title":"x","license":"MIT"} }`)).done(), 400, "bad_request"},
		{"meta over 1 MiB", newMultipart().field("meta", []byte(`{"title":"x","license":"MIT","summary":"`+strings.Repeat("a", 1<<20)+`"}`)).done(), 400, "bad_request"},
		{"bad slug", newMultipart().field("meta", map[string]any{"title": "x", "license": "MIT", "slug": "Not A Slug"}).file("files", "a.stl", cubeSTL).done(), 422, "invalid"},
		{"climbing path", newMultipart().field("meta", meta).file("files", "../../etc/passwd.stl", cubeSTL).done(), 422, "invalid"},
		{"absolute path", newMultipart().field("meta", meta).file("files", "/etc/x.stl", cubeSTL).done(), 422, "invalid"},
		{"duplicate path", newMultipart().field("meta", meta).file("files", "a.stl", cubeSTL).file("files", "a.stl", cubeSTL).done(), 422, "invalid"},
		{"empty file", newMultipart().field("meta", meta).file("files", "a.stl", nil).done(), 422, "invalid"},
		{"not an STL", newMultipart().field("meta", meta).file("files", "a.stl", []byte("hello")).done(), 422, "invalid"},
		{"file too large", newMultipart().field("meta", meta).file("files", "big.bin", make([]byte, 5000)).done(), 413, "too_large"},
		{"too many files", newMultipart().field("meta", meta).file("files", "1.md", []byte("1")).file("files", "2.md", []byte("2")).file("files", "3.md", []byte("3")).file("files", "4.md", []byte("4")).done(), 422, "invalid"},
		{"negative BOM quantity", newMultipart().field("meta", meta).file("files", "a.stl", cubeSTL).field("bom", []byte("name,qty,file\nBase,-1,a.stl\n")).done(), 422, "invalid"},
		{"unknown license", newMultipart().field("meta", map[string]any{"title": "x", "license": "WTFPL"}).file("files", "a.md", []byte("x")).done(), 422, "invalid"},
		{"no title", newMultipart().field("meta", map[string]any{"license": "MIT"}).file("files", "a.md", []byte("x")).done(), 422, "invalid"},
		{"unknown field", newMultipart().field("meta", meta).field("colour", []byte("red")).done(), 400, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.do(t, call{method: "POST", path: "/api/v1/designs", body: tc.body, header: ada}).want(t, tc.status, tc.code)
		})
	}
	b.do(t, call{method: "POST", path: "/api/v1/designs", body: newMultipart().field("meta", meta).file("files", "a.stl", cubeSTL).done()}).want(t, 401, "unauthenticated")
	b.do(t, call{method: "POST", path: "/api/v1/designs", body: `{"title":"x"}`, header: ada}).want(t, 400, "bad_request")
	// Damaged meshes are published with their lint codes.
	trunc := cubeSTL[:len(cubeSTL)-20]
	r := b.do(t, call{method: "POST", path: "/api/v1/designs", header: ada, body: newMultipart().field("meta", meta).file("files", "cut.stl", trunc).done()})
	r.want(t, 201, "")
	codes := r.json["version"].(map[string]any)["files"].([]any)[0].(map[string]any)["mesh"].(map[string]any)["codes"]
	if !strings.Contains(fmt.Sprint(codes), "STL_TRUNCATED") {
		t.Fatalf("got codes %v", codes)
	}
	b.do(t, call{method: "GET", path: "/healthz"}).want(t, 200, "")
}

func TestVersionsAndForks(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ada := login(t, b, "ada") // the first account: site admin
	grace := login(t, b, "grace")
	publish(t, b, ada, map[string]any{"title": "Spool holder", "license": "CC-BY-SA-4.0"}).want(t, 201, "")
	stored := countBlobs(t, b.blobDir)

	// A new version by the owner: one changed file, one removed, the BOM carried over.
	nv := newMultipart().field("meta", map[string]any{"message": "Rounder ring", "remove": []string{"README.md"}}).
		file("files", "parts/ring.stl", meshtest.ASCII("torus", meshtest.Torus(30, 12, 30, 8))).done()
	r := b.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/versions", body: nv, header: ada})
	r.want(t, 201, "")
	v2 := r.json["version"].(map[string]any)
	if v2["number"] != 2.0 || len(v2["files"].([]any)) != 2 || len(v2["bom"].([]any)) != 3 {
		t.Fatalf("version 2: got %s", r.body)
	}
	if got := countBlobs(t, b.blobDir); got != stored+1 {
		t.Fatalf("got %d blobs after changing one file, want %d", got, stored+1)
	}
	other := newMultipart().field("meta", map[string]any{"message": "mine now"}).file("files", "x.md", []byte("x")).done()
	b.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/versions", body: other, header: grace}).want(t, 403, "forbidden")
	breaking := newMultipart().field("meta", map[string]any{"message": "drop the base", "remove": []string{"parts/base.stl"}}).done()
	b.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/versions", body: breaking, header: ada}).want(t, 422, "invalid")

	// Forks take only what CC-BY-SA-4.0 allows.
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/spool-holder/fork-options"})
	r.want(t, 200, "")
	if !strings.Contains(string(r.body), `"id":"CC-BY-SA-4.0"`) || !strings.Contains(string(r.body), `"id":"GPL-3.0-only"`) ||
		strings.Contains(string(r.body), `"id":"MIT"`) || !strings.Contains(string(r.body), `"code":"attribution"`) {
		t.Fatalf("fork options: got %s", r.body)
	}
	r = b.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/forks", body: map[string]any{"license": "MIT"}, header: grace})
	r.want(t, 422, "invalid")
	if !strings.Contains(string(r.body), "CC-BY-SA-4.0, GPL-3.0-only") {
		t.Fatalf("the refusal should list what is allowed: %s", r.body)
	}
	b.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/forks", body: map[string]any{"license": "GPL-3.0-only"}}).want(t, 401, "unauthenticated")
	b.do(t, call{method: "POST", path: "/api/v1/designs/nothing/forks", body: map[string]any{"license": "GPL-3.0-only"}, header: grace}).want(t, 404, "not_found")
	r = b.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/forks", body: map[string]any{"license": "GPL-3.0-only", "title": "Spool holder XL"}, header: grace})
	r.want(t, 201, "")
	if r.json["design"].(map[string]any)["slug"] != "spool-holder-xl" {
		t.Fatalf("fork: got %s", r.body)
	}
	if got := countBlobs(t, b.blobDir); got != stored+1 {
		t.Fatalf("a fork stored %d new blobs, want 0", got-stored-1)
	}

	// An ND design cannot be forked; remixing incompatible parents is refused.
	ndBody := newMultipart().field("meta", map[string]any{"title": "Logo plate", "license": "CC-BY-ND-4.0"}).file("files", "plate.stl", cubeSTL).done()
	b.do(t, call{method: "POST", path: "/api/v1/designs", body: ndBody, header: ada}).want(t, 201, "")
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/logo-plate/fork-options"})
	if r.json["forkable"] != false || !strings.Contains(fmt.Sprint(r.json["reason"]), "does not allow derivatives") {
		t.Fatalf("ND fork options: got %s", r.body)
	}
	b.do(t, call{method: "POST", path: "/api/v1/designs/logo-plate/forks", body: map[string]any{"license": "CC-BY-ND-4.0"}, header: grace}).want(t, 403, "forbidden")
	ncBody := newMultipart().field("meta", map[string]any{"title": "NC clip", "license": "CC-BY-NC-4.0"}).file("files", "clip.stl", cubeSTL).done()
	b.do(t, call{method: "POST", path: "/api/v1/designs", body: ncBody, header: ada}).want(t, 201, "")
	remix := newMultipart().field("meta", map[string]any{"title": "Remix", "license": "CC-BY-SA-4.0",
		"parents": []map[string]any{{"slug": "spool-holder"}, {"slug": "nc-clip"}}}).file("files", "r.stl", cubeSTL).done()
	r = b.do(t, call{method: "POST", path: "/api/v1/designs", body: remix, header: grace})
	r.want(t, 422, "invalid")
	if !strings.Contains(string(r.body), "no license satisfies every parent") {
		t.Fatalf("remix: got %s", r.body)
	}

	// Lineage both ways; hiding the parent keeps the credit.
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/spool-holder/lineage"})
	if ds := r.json["descendants"].([]any); len(ds) != 1 || ds[0].(map[string]any)["slug"] != "spool-holder-xl" {
		t.Fatalf("descendants: got %s", r.body)
	}
	b.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/hide", header: grace}).want(t, 403, "forbidden")
	b.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/hide", header: ada}).want(t, 204, "")
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/spool-holder-xl/lineage"})
	anc := r.json["ancestors"].([]any)
	if len(anc) != 1 || anc[0].(map[string]any)["title"] != "Spool holder" || anc[0].(map[string]any)["hidden"] != true ||
		anc[0].(map[string]any)["owner"] != "ada" || anc[0].(map[string]any)["license"] != "CC-BY-SA-4.0" || anc[0].(map[string]any)["version"] != 2.0 {
		t.Fatalf("ancestors after hiding: got %s", r.body)
	}
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/spool-holder"})
	if r.json["version"] != nil || r.json["design"].(map[string]any)["title"] != "Spool holder" {
		t.Fatalf("tombstone: got %s", r.body)
	}
	b.do(t, call{method: "GET", path: "/api/v1/designs/spool-holder/versions/1/files/parts/base.stl"}).want(t, 404, "not_found")
	r = b.do(t, call{method: "GET", path: "/api/v1/designs/spool-holder-xl/versions/1/archive.zip"})
	attribution := string(zipEntry(t, r.body, "ATTRIBUTION.md"))
	if !strings.Contains(attribution, "Spool holder by ada, version 2, licensed CC-BY-SA-4.0") || !strings.Contains(attribution, "since hidden") {
		t.Fatalf("attribution of the fork:\n%s", attribution)
	}
	b.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/forks", body: map[string]any{"license": "GPL-3.0-only"}, header: grace}).want(t, 403, "forbidden")
}

func TestMeshCheckEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MeshChecksPerMinute: 3})
	r := b.do(t, call{method: "POST", path: "/api/v1/mesh/check", body: newMultipart().file("file", "cube.stl", cubeSTL).done()})
	r.want(t, 200, "")
	rep := r.json["report"].(map[string]any)
	if rep["triangles"] != 12.0 || rep["format"] != "binary" || r.json["file"] != "cube.stl" {
		t.Fatalf("got %s", r.body)
	}
	b.do(t, call{method: "POST", path: "/api/v1/mesh/check", body: newMultipart().file("file", "x.stl", []byte("nope")).done()}).want(t, 422, "not_stl")
	b.do(t, call{method: "POST", path: "/api/v1/mesh/check", body: newMultipart().file("other", "x.stl", cubeSTL).done()}).want(t, 400, "bad_request")
	// Three checks a minute per client in this setup: the fourth waits.
	b.do(t, call{method: "POST", path: "/api/v1/mesh/check", body: newMultipart().file("file", "cube.stl", cubeSTL).done()}).want(t, 429, "rate_limited")
}

func TestMeshCheck3MF(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MeshChecksPerMinute: 10})
	r := b.do(t, call{method: "POST", path: "/api/v1/mesh/check", body: newMultipart().file("file", "cube.3mf", cube3MF).done()})
	r.want(t, 200, "")
	rep := r.json["report"].(map[string]any)
	if rep["triangles"] != 12.0 || rep["format"] != "3mf" || rep["unit"] != "inch" || len(rep["objects"].([]any)) != 1 {
		t.Fatalf("got %s", r.body)
	}
	if size := rep["bbox"].(map[string]any)["size"].([]any); size[0] != 254.0 {
		t.Fatalf("got box size %v, want 254 mm (10 inches)", size)
	}
	cycle := meshtest.ThreeMF(meshtest.Model3MF("", `<object id="1"><components><component objectid="1"/></components></object>`, meshtest.Item(1, "")), nil)
	for name, data := range map[string][]byte{"an STL named .3mf": cubeSTL, "a cycle": cycle, "half a zip": cube3MF[:len(cube3MF)/2]} {
		r := b.do(t, call{method: "POST", path: "/api/v1/mesh/check", body: newMultipart().file("file", "x.3mf", data).done()})
		r.want(t, 422, "not_3mf")
		t.Logf("%s: %s", name, r.body)
	}
}

// TestUploadMeshReportStreamed: a mesh uploaded through the API is analysed as it is
// stored (mesh.Stream) where it can be, and else read back; either way its report is
// the one mesh.Analyze gives on the file. A header claiming more facets than the
// request holds is read back (the stream's tables are never sized past the request),
// as is a soup, and one sent without a Content-Length.
func TestUploadMeshReportStreamed(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ada := login(t, b, "ada")
	torus := meshtest.Torus(300, 200, 100, 30) // 120,000 facets: past what the stream holds before it starts
	open := meshtest.Binary("solid open torus", torus[:len(torus)-3])
	lying := meshtest.Binary("lying", torus)
	lying[80], lying[81], lying[82], lying[83] = 0xff, 0xff, 0x3f, 0x00 // 4 million facets claimed
	var soup bytes.Buffer
	meshtest.WriteSoupBinary(&soup, 80000)
	tests := []struct {
		name    string
		file    []byte
		chunked bool
	}{
		{"torus", meshtest.Binary("torus", torus), false},
		{"open torus, solid header", open, false},
		{"header claims more than the request", lying, false},
		{"soup", soup.Bytes(), false},
		{"no Content-Length", meshtest.Binary("torus", torus), true},
	}
	for i, tt := range tests {
		want, err := mesh.Analyze(bytes.NewReader(tt.file), int64(len(tt.file)))
		if err != nil {
			t.Fatal(err)
		}
		body := newMultipart().field("meta", map[string]any{"title": fmt.Sprintf("Mesh %d", i), "license": "CC0-1.0"}).
			file("files", "mesh.stl", tt.file).done()
		req := httptest.NewRequest("POST", "/api/v1/designs", bytes.NewReader(body.buf.Bytes()))
		if tt.chunked {
			req = httptest.NewRequest("POST", "/api/v1/designs", io.MultiReader(bytes.NewReader(body.buf.Bytes())))
			req.ContentLength = -1
		}
		req.Header.Set("Content-Type", body.contentType)
		req.Header.Set("Authorization", ada["Authorization"])
		req.RemoteAddr = "192.0.2.1:1234"
		rec := httptest.NewRecorder()
		b.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			t.Fatalf("%s: got %d %s, want 201", tt.name, rec.Code, rec.Body)
		}
		var out struct {
			Version struct{ Files []struct{ Mesh mesh.Report } }
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Version.Files) != 1 {
			t.Fatalf("%s: got %s", tt.name, rec.Body)
		}
		if got := out.Version.Files[0].Mesh; !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", tt.name, got, want)
		}
	}
}
