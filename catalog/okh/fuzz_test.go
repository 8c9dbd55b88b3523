package okh

import (
	"errors"
	"os"
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
