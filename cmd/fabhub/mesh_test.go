package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
)

func TestMeshCheckCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "cube.stl")
	os.WriteFile(good, meshtest.Binary("cube", meshtest.Cube(stl.Vec3{0, 0, 0}, 20)), 0o600)
	bad := filepath.Join(dir, "notes.stl")
	os.WriteFile(bad, []byte("hi"), 0o600)
	var out, errs strings.Builder
	err := run(context.Background(), []string{"mesh", "check", good, bad, filepath.Join(dir, "missing.stl")}, envOf(nil), &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "2 of 3 files") {
		t.Fatalf("got %v, want a failure naming 2 of 3 files", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d report lines, want 1:\n%s", len(lines), out.String())
	}
	var rep struct {
		File       string  `json:"file"`
		Triangles  int     `json:"triangles"`
		Volume     float64 `json:"volume"`
		Watertight bool    `json:"watertight"`
		Codes      []string
	}
	if err := json.Unmarshal([]byte(lines[0]), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.File != good || rep.Triangles != 12 || rep.Volume != 8000 || !rep.Watertight || rep.Codes == nil {
		t.Fatalf("got %+v", rep)
	}
	msgs := strings.Split(strings.TrimSpace(errs.String()), "\n")
	if len(msgs) != 2 || !strings.Contains(msgs[0], "not an STL file") || !strings.Contains(msgs[1], "no such file") {
		t.Fatalf("got stderr %q, want one line per bad file", errs.String())
	}
	if err := run(context.Background(), []string{"mesh"}, envOf(nil), &out, &errs); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Fatalf("bare 'mesh': got %v, want usage", err)
	}
}
