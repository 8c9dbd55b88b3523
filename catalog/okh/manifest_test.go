package okh

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fabcommons/fabcommons/storage"
)

func readManifest(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "manifests", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// has reports whether items hold one with key (and path, when given) whose note
// holds note.
func has(items []Item, key, path, note string) bool {
	for _, it := range items {
		if it.Key == key && (path == "" || it.Path == path) && strings.Contains(it.Note, note) {
			return true
		}
	}
	return false
}

func TestParseManifests(t *testing.T) {
	t.Parallel()
	type item struct{ key, path, note string }
	tests := []struct {
		file    string
		want    Manifest
		used    []item
		ignored []item
	}{
		{
			file: "losh.toml",
			want: Manifest{Name: "Desk lamp arm", Function: "An arm that holds a lamp over a desk.", License: "CERN-OHL-S-2.0",
				Licensor: "Ada Lovelace", Version: "1.2.0", Repo: "https://example.org/lamp", BOM: "BoM.csv",
				Files: []FileRef{{"readme", "README.md"}, {"image", "img/lamp.jpg"}, {"manufacturing-instructions", "docs/assembly.md"},
					{"part[0].source", "cad/base.scad"}, {"part[0].export", "parts/base.stl"}, {"part[0].export", "parts/base.pdf"},
					{"part[1].source", "cad/arm.scad"}, {"part[1].export", "parts/arm.stl"}}},
			used: []item{{"okhv", "", ""}, {"function", "", "summary"}, {"part[0].name", "", `"base"`}},
			ignored: []item{{"organization", "", "no place"}, {"outer-dimensions", "", "measures"}, {"part[0].tsdc", "", "no place"},
				{"part[1].mass", "", "no place"}, {"release", "", ""}, {"documentation-language", "", ""}},
		},
		{
			file: "okhv1.toml",
			want: Manifest{Name: "Seed drill", Function: "A drill for sowing seeds in rows.\n\nSmall farms.", License: "cern-ohl-s-2.0",
				Licensor: "Open Farm", Version: "2", Repo: "https://example.org/seed-drill", Tags: []string{"agriculture", "open-source-ecology"}, BOM: "bom.csv",
				Files: []FileRef{{"export", "drill.stl"}}},
			used: []item{{"title", "", "older name of name"}, {"description", "", "older name of function"}, {"license.hardware", "", "OKH v1"},
				{"keywords", "", "tags"}, {"intended-use", "", "summary"},
				{"documentation-home", "", "older name of repo"}},
			ignored: []item{{"okhv", "", "missing"}, {"license.documentation", "", "one license"},
				{"keywords", "", "!!!: want words"}},
		},
		{
			file: "messy.toml",
			want: Manifest{Name: "Messy bracket", License: "GPL-3.0+", Licensor: "Ana, Ben",
				Files: []FileRef{{"readme", "README.md"}, {"export", "bracket.stl"}, {"part[0].export", "clip.stl"}, {"part[0].export", "missing.stl"}}},
			used: []item{{"okhv", "", "read as OKH-LOSH v1.0"}},
			ignored: []item{{"function", "", "want text, got a list"}, {"export", "https://example.org/remote.stl", "a link"},
				{"export", "../../etc/passwd", "climbs out"}, {"export", "docs/.hidden", "hidden"}, {"export", "", "got a number"},
				{"colour", "", "unknown key"}, {"mystery", "", "unknown key"}, {"part[0].weird", "", "unknown key"}, {"licensor", "", "no name"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			m, rep, err := Parse(readManifest(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, tt.want) {
				t.Errorf("got  %+v\nwant %+v", m, tt.want)
			}
			for _, it := range tt.used {
				if !has(rep.Used, it.key, it.path, it.note) {
					t.Errorf("used: got %+v, want an item %+v", rep.Used, it)
				}
			}
			for _, it := range tt.ignored {
				if !has(rep.Ignored, it.key, it.path, it.note) {
					t.Errorf("ignored: got %+v, want an item %+v", rep.Ignored, it)
				}
			}
		})
	}
}

func TestParseNamesTheLineOfASyntaxError(t *testing.T) {
	t.Parallel()
	_, _, err := Parse(readManifest(t, "broken.toml"))
	if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("got %v, want an invalid okh.toml at line 3", err)
	}
}

func TestSettleLicense(t *testing.T) {
	t.Parallel()
	tests := []struct {
		given, fallback, want string
		refused               bool
		ignored               string // a note the report's ignored items hold
	}{
		{given: "CERN-OHL-S-2.0", want: "CERN-OHL-S-2.0"},
		{given: "cc-by-sa-4.0", want: "CC-BY-SA-4.0"},
		{given: "GPL-3.0+", want: "GPL-3.0-or-later"},
		{given: "GPL-2.0", want: "GPL-2.0-only"},
		{given: "MIT", fallback: "CC0-1.0", want: "MIT", ignored: "MIT stands"},
		{given: "Proprietary", refused: true},
		{given: "", refused: true},
		{given: "Proprietary", fallback: "CC-BY-4.0", want: "CC-BY-4.0", ignored: "not one this hub knows"},
		{given: "", fallback: "MIT", want: "MIT", ignored: "names no license"},
		{given: "Proprietary", fallback: "Nonsense-1.0", refused: true},
	}
	for _, tt := range tests {
		var rep Report
		got, err := settleLicense(tt.given, tt.fallback, &rep)
		switch {
		case tt.refused && !errors.Is(err, storage.ErrInvalid):
			t.Errorf("settleLicense(%q, %q) = %q, %v; want refused", tt.given, tt.fallback, got, err)
		case !tt.refused && (err != nil || got != tt.want):
			t.Errorf("settleLicense(%q, %q) = %q, %v; want %q", tt.given, tt.fallback, got, err, tt.want)
		case tt.ignored != "" && !has(rep.Ignored, rep.Ignored[0].Key, "", tt.ignored):
			t.Errorf("settleLicense(%q, %q): report %+v, want a note %q", tt.given, tt.fallback, rep.Ignored, tt.ignored)
		}
	}
}

func TestCleanRef(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"/a/b.stl": "a/b.stl", "./a.stl": "a.stl", "a.stl": "a.stl", ".//./a.stl": "a.stl",
		"/./x/../y.stl": "y.stl", " b.stl ": "b.stl", "../a": "", "http://x/y": "", "/": ""} {
		if got, _ := cleanRef(in); got != want {
			t.Errorf("cleanRef(%q) = %q, want %q", in, got, want)
		}
	}
}
