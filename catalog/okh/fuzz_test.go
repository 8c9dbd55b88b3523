package okh

import (
	"archive/zip"
	"bytes"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/storage"
)

// FuzzOKHImport: whatever an okh.toml holds, reading it either refuses it as TOML it
// cannot parse (422, never a panic) or yields files that are safe paths inside the
// design, each once, a BOM path that stays inside the package, and a report whose
// every line names its key.
func FuzzOKHImport(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "manifests", "*.toml"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("part = 3\nlicense = [1]\nlicensor = {}\nokhv = 1.0\n"))
	f.Add([]byte("[[part]]\nexport = [\"/\", \"./.\", \"a/../../b\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, rep, err := Parse(data)
		if err != nil {
			if !errors.Is(err, storage.ErrInvalid) {
				t.Fatalf("Parse refused with %v, want an invalid okh.toml", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, f := range m.Files {
			c, err := catalog.CleanPath(f.Path)
			if err != nil || c != f.Path {
				t.Fatalf("file %+v: CleanPath gives %q, %v", f, c, err)
			}
			if seen[f.Path] {
				t.Fatalf("file %q is taken twice", f.Path)
			}
			seen[f.Path] = true
		}
		if m.BOM != "" && (strings.HasPrefix(m.BOM, "/") || m.BOM == ".." || strings.HasPrefix(m.BOM, "../")) {
			t.Fatalf("BOM path %q leaves the package", m.BOM)
		}
		if utf8.RuneCountInString(m.Function) > 5000 {
			t.Fatalf("summary of %d characters", utf8.RuneCountInString(m.Function))
		}
		for _, it := range append(append(rep.Used, rep.Ignored...), rep.Missing...) {
			if it.Key == "" {
				t.Fatalf("report line without a key: %+v", it)
			}
		}
	})
}

// FuzzOKHArchive: whatever bytes arrive as a package, opening them either refuses them
// as an archive (422) or finds entries that stay inside it, each once, with the
// manifest among them; nothing panics and nothing reads past the table of contents
// before the bounds are checked.
func FuzzOKHArchive(f *testing.F) {
	f.Add(zipBytes(f, "okh.toml", "name = 'X'\nlicense = 'MIT'\nexport = 'a.stl'\n", "a.stl", "solid x\nendsolid x\n"))
	f.Add(zipBytes(f, "p/okh.toml", "name = 'X'", "p/a/b.txt", "b", "__MACOSX/p/._a", "x"))
	f.Add(zipBytes(f, "../okh.toml", "x", "a//b", "y"))
	f.Add([]byte("PK\x05\x06" + strings.Repeat("\x00", 18)))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := openArchive(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, storage.ErrInvalid) {
				t.Fatalf("refused with %v, want an invalid archive", err)
			}
			return
		}
		if _, ok := a.entries[a.manifest]; !ok || !strings.EqualFold(path.Base(a.manifest), "okh.toml") || strings.Contains(a.manifest, "/") {
			t.Fatalf("manifest %q is not an okh.toml at the package's root", a.manifest)
		}
		if len(a.order) != len(a.entries) {
			t.Fatalf("%d entries in order, %d by name", len(a.order), len(a.entries))
		}
		for _, p := range a.order {
			if strings.HasPrefix(p, "/") || p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") || strings.Contains(p, "\\") {
				t.Fatalf("entry %q leaves the package", p)
			}
		}
		if _, err := a.readManifest(); err != nil && !errors.Is(err, storage.ErrInvalid) && !errors.Is(err, storage.ErrTooLarge) {
			t.Fatalf("reading the manifest: %v", err)
		}
	})
}

func zipBytes(f *testing.F, pairs ...string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i+1 < len(pairs); i += 2 {
		w, err := zw.Create(pairs[i])
		if err != nil {
			f.Fatal(err)
		}
		w.Write([]byte(pairs[i+1]))
	}
	zw.Close()
	return buf.Bytes()
}
