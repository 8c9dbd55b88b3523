package agent

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
)

// needCura finds CuraEngine and Cura's printer definitions (scripts/test.sh installs
// cura-engine and extracts the cura package's resources, then sets
// FAB_TEST_CURA_RESOURCES). Without them the test skips and says why; under CI=true it fails.
func needCura(t *testing.T) *Cura {
	t.Helper()
	res := os.Getenv("FAB_TEST_CURA_RESOURCES")
	_, lookErr := exec.LookPath("CuraEngine")
	if res != "" && lookErr == nil {
		return &Cura{Definition: "creality_ender3", SearchPath: []string{filepath.Join(res, "definitions"), filepath.Join(res, "extruders")}}
	}
	why := "FAB_TEST_CURA_RESOURCES is not set (scripts/test.sh extracts Cura's definitions and sets it)"
	if lookErr != nil {
		why = "CuraEngine is not installed (scripts/test.sh installs Debian's cura-engine)"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why + "; CI must run the slicing test")
	}
	t.Skip(why)
	return nil
}

func TestCuraSlicesARealMesh(t *testing.T) {
	t.Parallel()
	cura := needCura(t)
	dir := t.TempDir()
	mesh := filepath.Join(dir, "cube.stl")
	os.WriteFile(mesh, meshtest.Binary("cube", meshtest.Cube(stl.Vec3{0, 0, 0}, 20)), 0o600)
	out := filepath.Join(dir, "cube.gcode")
	est, err := cura.Slice(context.Background(), mesh, out)
	if err != nil {
		t.Fatal(err)
	}
	// A 20 mm cube at Cura's defaults takes tens of minutes and a metre or two of
	// filament; bounds wide enough for any profile, tight enough to catch a parse of
	// the placeholder header (;TIME:6666, "0m").
	if est.Seconds < 300 || est.Seconds > 6*3600 || est.Seconds == 6666 {
		t.Errorf("print time: got %.0f s, want a real estimate for a 20 mm cube", est.Seconds)
	}
	if est.FilamentMM < 100 || est.FilamentMM > 20000 {
		t.Errorf("filament: got %.0f mm, want a real figure for a 20 mm cube", est.FilamentMM)
	}
	g, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(g), "G1 ") {
		t.Fatalf("the G-code: %d bytes, %v; want moves", len(g), err)
	}
	t.Logf("20 mm cube: %.0f s, %.0f mm of filament", est.Seconds, est.FilamentMM)

	// A broken mesh gives a clear error and leaves no G-code.
	bad := filepath.Join(dir, "empty.stl")
	os.WriteFile(bad, meshtest.Binary("empty", nil), 0o600)
	if _, err := cura.Slice(context.Background(), bad, filepath.Join(dir, "empty.gcode")); err == nil {
		t.Fatal("slicing an empty mesh: got no error")
	}
	if _, err := os.Stat(filepath.Join(dir, "empty.gcode")); err == nil {
		t.Fatal("a failed slice left G-code behind")
	}
	if _, err := (&Cura{Definition: "no_such_printer", SearchPath: cura.SearchPath}).Slice(context.Background(), mesh, out); err == nil || !strings.Contains(err.Error(), "no_such_printer") {
		t.Fatalf("an unknown printer definition: got %v, want an error naming it", err)
	}
}

func TestReadCuraLog(t *testing.T) {
	t.Parallel()
	log := `[info] Slicing
;TIME:6666
;Filament used: 0m
[info] Gcode header after slicing:
;FLAVOR:Marlin
;TIME:2596
;Filament used: 1.89346m, 0.5m
;Layer height: 0.1
End of gcode header.
[error] something at the end
`
	est, lastErr := readCuraLog(strings.NewReader(log))
	if est.Seconds != 2596 || est.FilamentMM < 2393.4 || est.FilamentMM > 2393.5 {
		t.Errorf("got %+v, want 2596 s and 2393.46 mm (the header after slicing, both extruders)", est)
	}
	if lastErr != "[error] something at the end" {
		t.Errorf("last error: got %q", lastErr)
	}
}

// TestCuraSlicesA3MF: a 3MF is sliced through its build as placed. The package holds a
// 1 cm cube in centimetres, stretched to 2 cm by its build item and moved 3 cm along X:
// CuraEngine must see the same 20 mm cube as TestCuraSlicesARealMesh's STL moved 30 mm,
// and so give the same estimate as the STL placed there.
func TestCuraSlicesA3MF(t *testing.T) {
	t.Parallel()
	cura := needCura(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "cube.3mf")
	os.WriteFile(model, meshtest.ThreeMF(meshtest.Model3MF("centimeter", meshtest.MeshObject(1, "cube", meshtest.Cube(stl.Vec3{0, 0, 0}, 1)),
		meshtest.Item(1, "2 0 0 0 2 0 0 0 2 3 0 0")), nil), 0o600)
	want := filepath.Join(dir, "cube.stl")
	os.WriteFile(want, meshtest.Binary("cube", meshtest.Cube(stl.Vec3{30, 0, 0}, 20)), 0o600)

	got, err := cura.Slice(context.Background(), model, filepath.Join(dir, "cube-3mf.gcode"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := cura.Slice(context.Background(), want, filepath.Join(dir, "cube-stl.gcode"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("3MF: %.0f s, %.0f mm; the same cube as STL: %.0f s, %.0f mm", got.Seconds, got.FilamentMM, ref.Seconds, ref.FilamentMM)
	if got.Seconds != ref.Seconds || math.Abs(got.FilamentMM-ref.FilamentMM) > 1e-6*ref.FilamentMM {
		t.Fatalf("got %+v, want the STL's %+v", got, ref)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.3mf.stl"))
	if len(left) != 0 {
		t.Fatalf("the converted STL was left behind: %v", left)
	}

	// A 3MF that cannot be read, or places nothing, is a clear error and no G-code.
	for name, data := range map[string][]byte{
		"not a zip": []byte("hello"),
		"no build":  meshtest.ThreeMF(meshtest.Model3MF("", meshtest.MeshObject(1, "cube", meshtest.Cube(stl.Vec3{}, 10)), ""), nil),
	} {
		bad := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".3mf")
		os.WriteFile(bad, data, 0o600)
		gcode := strings.TrimSuffix(bad, ".3mf") + ".gcode"
		_, err := cura.Slice(context.Background(), bad, gcode)
		if err == nil || !strings.Contains(err.Error(), "3MF") {
			t.Fatalf("%s: got %v, want an error about the 3MF", name, err)
		}
		if _, err := os.Stat(gcode); err == nil {
			t.Fatalf("%s: G-code left behind", name)
		}
	}
}
