package okh

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/storage/localblob"
	"github.com/fabcommons/fabcommons/storage/sqlite"
)

var cube = meshtest.Binary("cube", meshtest.Cube(stl.Vec3{0, 0, 0}, 20))

type fixture struct {
	svc   *catalog.Service
	actor catalog.Actor
}

// setup is a catalog on SQLite and a blob folder in a temp dir.
func setup(t *testing.T, limits catalog.Limits) fixture {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "fab.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	blobs, err := localblob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	return fixture{svc: catalog.NewService(db.Catalog(), blobs, db.Quotas(), log, limits, nil), actor: catalog.Actor{ID: "u1", Handle: "ada"}}
}

// entry is one file of a test zip; mode 0 is a plain file.
type entry struct {
	name string
	data []byte
	mode fs.FileMode
}

func zipOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (fx fixture) importZip(z []byte, opt Options) (catalog.Design, catalog.Version, Report, error) {
	return Import(context.Background(), fx.svc, fx.actor, bytes.NewReader(z), int64(len(z)), opt)
}

const lamp = `okhv = "OKH-LOSHv1.0"
name = "Desk lamp arm"
function = "An arm that holds a lamp over a desk."
license = "CERN-OHL-S-2.0"
licensor = "Ada Lovelace"
version = "1.2.0"
repo = "https://example.org/lamp"
readme = "/readme.md"
bom = "./bom.CSV"
shade = "green"
[[part]]
name = "base"
source = "cad/base.scad"
export = ["./parts/base.stl", "/parts/base.pdf"]
`

func TestImportPackage(t *testing.T) {
	t.Parallel()
	fx := setup(t, catalog.Limits{})
	z := zipOf(t,
		entry{name: "okh.toml", data: []byte(lamp)},
		entry{name: "README.md", data: []byte("# Lamp\n")},
		entry{name: "cad/base.scad", data: []byte("cube(20);\n")},
		entry{name: "parts/base.stl", data: cube},
		entry{name: "BoM.csv", data: []byte("ref,kind,name,qty,file\nB,printed,Base,1,parts/base.stl\nS,purchased,M3 screw,4,\n")},
		entry{name: "notes/todo.txt", data: []byte("paint it")},
		entry{name: "ATTRIBUTION.md", data: []byte("# old")},
	)
	d, v, rep, err := fx.importZip(z, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Title != "Desk lamp arm" || d.Summary != "An arm that holds a lamp over a desk." || d.License != "CERN-OHL-S-2.0" || d.Owner != "ada" {
		t.Errorf("got design %+v", d)
	}
	var paths []string
	for _, f := range v.Files {
		paths = append(paths, f.Path)
	}
	if want := []string{"README.md", "cad/base.scad", "parts/base.stl"}; !slices.Equal(paths, want) {
		t.Errorf("got files %v, want %v", paths, want)
	}
	if len(v.BOM) != 2 || v.BOM[0].File != "parts/base.stl" {
		t.Errorf("got BOM %+v, want 2 lines, the first printed from parts/base.stl", v.BOM)
	}
	for _, want := range []string{"version 1.2.0", "licensor Ada Lovelace", "from https://example.org/lamp"} {
		if !strings.Contains(v.Message, want) {
			t.Errorf("got message %q, want it to hold %q", v.Message, want)
		}
	}
	if !has(rep.Missing, "part[0].export", "parts/base.pdf", "not in the archive") {
		t.Errorf("got missing %+v, want parts/base.pdf", rep.Missing)
	}
	if !has(rep.Ignored, "shade", "", "unknown key") {
		t.Errorf("got ignored %+v, want shade", rep.Ignored)
	}
	if !has(rep.Used, "bom", "BoM.csv", "2 lines") || !has(rep.Used, "part[0].export", "parts/base.stl", "") ||
		!has(rep.Used, "readme", "README.md", `named "readme.md"`) {
		t.Errorf("got used %+v", rep.Used)
	}
	if !slices.Equal(rep.Unnamed, []string{"notes/todo.txt"}) {
		t.Errorf("got unnamed %v, want notes/todo.txt alone", rep.Unnamed)
	}
}

// TestImportFromOneFolder: GitHub's "Download ZIP" puts everything in one folder.
func TestImportFromOneFolder(t *testing.T) {
	t.Parallel()
	fx := setup(t, catalog.Limits{})
	z := zipOf(t,
		entry{name: "lamp-main/", mode: fs.ModeDir | 0o755},
		entry{name: "lamp-main/okh.toml", data: []byte("name = 'Lamp'\nlicense = 'MIT'\nexport = 'lamp.stl'\n")},
		entry{name: "lamp-main/lamp.stl", data: cube},
		entry{name: "__MACOSX/lamp-main/._lamp.stl", data: []byte("x")},
	)
	d, v, rep, err := fx.importZip(z, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Title != "Lamp" || len(v.Files) != 1 || v.Files[0].Path != "lamp.stl" || v.Files[0].Kind != catalog.FileMesh {
		t.Errorf("got %+v %+v", d, v.Files)
	}
	if len(rep.Unnamed) != 0 {
		t.Errorf("got unnamed %v, want none", rep.Unnamed)
	}
}

func TestImportLicenseChoice(t *testing.T) {
	t.Parallel()
	fx := setup(t, catalog.Limits{})
	z := zipOf(t, entry{name: "okh.toml", data: readManifest(t, "nolicense.toml")}, entry{name: "thing.stl", data: cube})
	_, _, _, err := fx.importZip(z, Options{})
	var inv *storage.InvalidError
	if !errors.As(err, &inv) || inv.Field != "license" || !strings.Contains(err.Error(), "Proprietary-Lamp-License") {
		t.Fatalf("got %v, want the license refused by name", err)
	}
	d, _, rep, err := fx.importZip(z, Options{License: "CC-BY-4.0"})
	if err != nil || d.License != "CC-BY-4.0" || !has(rep.Ignored, "license", "", "CC-BY-4.0 was chosen on import") {
		t.Fatalf("got %v, %q, %+v; want CC-BY-4.0 as chosen", err, d.License, rep.Ignored)
	}
}

func TestImportRefusals(t *testing.T) {
	t.Parallel()
	fx := setup(t, catalog.Limits{FileBytes: 64 << 10})
	manifest := entry{name: "okh.toml", data: []byte("name = 'X'\nlicense = 'MIT'\nexport = ['a.stl', 'big.bin']\n")}
	stl := entry{name: "a.stl", data: cube}
	many := []entry{manifest, stl}
	for i := range maxEntries {
		many = append(many, entry{name: "n/" + strconv.Itoa(i)})
	}
	tests := []struct {
		name    string
		zip     []byte
		wantErr error
		says    string
	}{
		{"no manifest", zipOf(t, stl), storage.ErrInvalid, "no okh.toml at the root"},
		{"a YAML manifest", zipOf(t, entry{name: "okh-seed-drill.yml", data: []byte("title: Seed drill\n")}, stl), storage.ErrInvalid, "okh-seed-drill.yml is an OKH v1 manifest in YAML"},
		{"manifest two folders down", zipOf(t, entry{name: "a/b/okh.toml", data: manifest.data}, entry{name: "a/b/a.stl", data: cube}), storage.ErrInvalid, "no okh.toml"},
		{"manifest in one of two folders", zipOf(t, entry{name: "a/okh.toml", data: manifest.data}, entry{name: "b/a.stl", data: cube}), storage.ErrInvalid, "no okh.toml"},
		{"climbs out", zipOf(t, manifest, stl, entry{name: "../evil.sh", data: []byte("x")}), storage.ErrInvalid, "climbs out"},
		{"climbs out inside", zipOf(t, manifest, stl, entry{name: "a/../../evil.sh", data: []byte("x")}), storage.ErrInvalid, "climbs out"},
		{"absolute", zipOf(t, manifest, stl, entry{name: "/etc/evil", data: []byte("x")}), storage.ErrInvalid, "absolute"},
		{"drive letter", zipOf(t, manifest, stl, entry{name: "C:/evil", data: []byte("x")}), storage.ErrInvalid, "absolute"},
		{"backslash", zipOf(t, manifest, stl, entry{name: "a\\..\\..\\evil", data: []byte("x")}), storage.ErrInvalid, "backslash"},
		{"symlink", zipOf(t, manifest, entry{name: "a.stl", data: []byte("/etc/passwd"), mode: fs.ModeSymlink | 0o777}), storage.ErrInvalid, "symbolic link"},
		{"twice", zipOf(t, manifest, stl, stl), storage.ErrInvalid, "twice"},
		{"twice as ./", zipOf(t, manifest, stl, entry{name: "./a.stl", data: cube}), storage.ErrInvalid, "twice"},
		{"not a zip", []byte("PK but not really a zip archive at all"), storage.ErrInvalid, "not a zip"},
		{"too many entries", zipOf(t, many...), storage.ErrInvalid, "entries"},
		{"too large a file", zipOf(t, manifest, stl, entry{name: "big.bin", data: make([]byte, 65<<10)}), storage.ErrTooLarge, "big.bin"},
		{"syntax", zipOf(t, entry{name: "okh.toml", data: readManifest(t, "broken.toml")}, stl), storage.ErrInvalid, "line 3"},
		{"no name", zipOf(t, entry{name: "okh.toml", data: []byte("license = 'MIT'\nexport = 'a.stl'\n")}, stl), storage.ErrInvalid, "names no design"},
		{"no file there", zipOf(t, entry{name: "okh.toml", data: []byte("name = 'X'\nlicense = 'MIT'\nexport = 'b.stl'\n")}, stl), storage.ErrInvalid, "none of the 1 files"},
		{"a broken mesh", zipOf(t, manifest, entry{name: "a.stl", data: []byte("not a mesh")}), storage.ErrInvalid, "not an STL"},
	}
	for _, tt := range tests {
		_, _, _, err := fx.importZip(tt.zip, Options{})
		if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s: got %v, want %v saying %q", tt.name, err, tt.wantErr, tt.says)
		}
	}
}

// TestImportRefusesZipBombs: files that unpack far beyond what they take in the archive
// are refused before a byte is stored, within the size limits or not.
func TestImportRefusesZipBombs(t *testing.T) {
	t.Parallel()
	fx := setup(t, catalog.Limits{})
	z := zipOf(t, entry{name: "okh.toml", data: []byte("name = 'X'\nlicense = 'MIT'\nsource = ['a.bin']\n")}, entry{name: "a.bin", data: make([]byte, 8<<20)})
	_, _, _, err := fx.importZip(z, Options{})
	if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), "zip bomb") {
		t.Fatalf("got %v, want a zip bomb refused", err)
	}
}
