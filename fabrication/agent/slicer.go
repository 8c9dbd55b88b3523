package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fabcommons/fabcommons/catalog/mesh"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

// Slicer turns a mesh into G-code for this machine and says how long it will take.
type Slicer interface {
	Slice(ctx context.Context, mesh, gcode string) (agentapi.Estimate, error)
}

// Cura slices with CuraEngine (Debian's cura-engine). Definitions are Cura's printer
// definitions (*.def.json, e.g. from the cura package's resources); SearchPath lists the
// folders CuraEngine looks in for the definitions a printer's file inherits from and
// for its extruders.
type Cura struct {
	Engine     string   // the binary; default "CuraEngine"
	Definition string   // a .def.json path, or a name such as "creality_ender3" found on SearchPath
	SearchPath []string // e.g. .../resources/definitions and .../resources/extruders
	Settings   []string // extra key=value settings, e.g. "layer_height=0.2"
}

// definition resolves Definition to a file.
func (c *Cura) definition() (string, error) {
	if strings.HasSuffix(c.Definition, ".json") {
		if _, err := os.Stat(c.Definition); err != nil {
			return "", fmt.Errorf("cura definition: %w", err)
		}
		return c.Definition, nil
	}
	for _, dir := range c.SearchPath {
		p := filepath.Join(dir, c.Definition+".def.json")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("cura definition %q: no %s.def.json in %s", c.Definition, c.Definition, strings.Join(c.SearchPath, ", "))
}

// Slice runs CuraEngine. The G-code's own header holds placeholders (;TIME:6666), so the
// figures come from what CuraEngine prints after slicing: the header it would have
// written ("Gcode header after slicing:" then ;TIME: and ;Filament used:). CuraEngine
// reads STL only, so a 3MF (by its name) is first written out as binary STL of its
// build as placed, in millimetres, beside the G-code, and removed after.
func (c *Cura) Slice(ctx context.Context, model, gcode string) (agentapi.Estimate, error) {
	def, err := c.definition()
	if err != nil {
		return agentapi.Estimate{}, err
	}
	if mesh.Is3MF(model) {
		converted := strings.TrimSuffix(gcode, filepath.Ext(gcode)) + ".3mf.stl"
		if err := threeMFToSTL(model, converted); err != nil {
			return agentapi.Estimate{}, err
		}
		defer os.Remove(converted)
		model = converted
	}
	engine := c.Engine
	if engine == "" {
		engine = "CuraEngine"
	}
	args := []string{"slice", "-v", "-j", def, "-o", gcode}
	for _, s := range c.Settings {
		args = append(args, "-s", s)
	}
	args = append(args, "-l", model)
	cmd := exec.CommandContext(ctx, engine, args...)
	cmd.Env = append(os.Environ(), "CURA_ENGINE_SEARCH_PATH="+strings.Join(c.SearchPath, string(os.PathListSeparator)))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return agentapi.Estimate{}, err
	}
	if err := cmd.Start(); err != nil {
		return agentapi.Estimate{}, fmt.Errorf("slicer: %w", err)
	}
	est, lastErr := readCuraLog(stderr)
	if err := cmd.Wait(); err != nil {
		os.Remove(gcode)
		if lastErr != "" {
			return agentapi.Estimate{}, fmt.Errorf("CuraEngine failed: %s", lastErr)
		}
		return agentapi.Estimate{}, fmt.Errorf("CuraEngine failed: %w", err)
	}
	if est.Seconds <= 0 {
		os.Remove(gcode)
		return agentapi.Estimate{}, errors.New("CuraEngine finished without a print time: nothing to print (is the mesh empty or outside the build plate?)")
	}
	return est, nil
}

// threeMFToSTL writes the 3MF's build at src as binary STL at dst.
func threeMFToSTL(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	p, err := mesh.Open3MF(in, fi.Size())
	if err != nil {
		return fmt.Errorf("read the 3MF: %w", err)
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	n, err := p.WriteSTL(out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n == 0 {
		err = errors.New("the 3MF's build places no triangles: nothing to print")
	}
	if err != nil {
		os.Remove(dst)
		return fmt.Errorf("convert the 3MF to STL: %w", err)
	}
	return nil
}

// readCuraLog reads CuraEngine's log for the estimate and its last error line.
func readCuraLog(r io.Reader) (est agentapi.Estimate, lastErr string) {
	defer io.Copy(io.Discard, r) // never leave CuraEngine blocked on a full pipe
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	inHeader := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.Contains(line, "Gcode header after slicing:"):
			inHeader = true
		case strings.Contains(line, "[error]"):
			lastErr = line
		case inHeader && strings.HasPrefix(line, ";TIME:"):
			est.Seconds, _ = strconv.ParseFloat(strings.TrimPrefix(line, ";TIME:"), 64)
		case inHeader && strings.HasPrefix(line, ";Filament used:"):
			// "1.89346m" for one extruder; "1.2m, 0.3m" for two: add them up.
			for _, f := range strings.Split(strings.TrimPrefix(line, ";Filament used:"), ",") {
				m, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(f), "m"), 64)
				est.FilamentMM += 1000 * m
			}
		case strings.HasPrefix(line, "End of gcode header"):
			inHeader = false
		}
	}
	return est, lastErr
}
