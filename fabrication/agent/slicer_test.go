package agent

import (
	"context"
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
