package main

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
	"github.com/fabcommons/fabcommons/fabrication/agent/protocoltest"
)

// TestAgentSlices3MF: a design's 3MF (a 2 cm cube in centimetres, placed by its build
// item) is ordered; the real agent downloads it, writes its build as STL for CuraEngine,
// and the printer gets G-code; the job ends done with CuraEngine's estimate.
func TestAgentSlices3MF(t *testing.T) {
	cura := curaFlags(t)
	api, base := newHub(t)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("meta", `{"title":"Lid","license":"CC0-1.0"}`)
	fw, _ := mw.CreateFormFile("files", "lid.3mf")
	fw.Write(meshtest.ThreeMF(meshtest.Model3MF("centimeter", meshtest.MeshObject(1, "lid", meshtest.Cube(stl.Vec3{0, 0, 0}, 1)),
		meshtest.Item(1, "2 0 0 0 2 0 0 0 2 3 3 0")), nil))
	mw.Close()
	req, _ := http.NewRequest("POST", base+"/api/v1/designs", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+api.token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("publish: %v %v", resp, err)
	}

	printer := protocoltest.NewMoonraker("moon-key")
	defer printer.Close()
	var jt struct {
		JoinToken struct{ Secret string } `json:"join_token"`
	}
	if code := api.call("POST", "/api/v1/labs/e2e/join-tokens", map[string]any{"name": "shelf"}, &jt); code != 201 {
		t.Fatalf("join token: %d", code)
	}
	config := filepath.Join(t.TempDir(), "fabagent.toml")
	os.WriteFile(config, []byte(fmt.Sprintf("hub = %q\ndriver = \"moonraker\"\nmoonraker-url = %q\napi-key = \"moon-key\"\nmaterials = [\"PLA\"]\nbuild-volume = \"220x220x250\"\n", base, printer.URL)), 0o600)
	start(t, "fabagent", append([]string{"run", "--config", config, "--state", t.TempDir(), "--join-token", jt.JoinToken.Secret, "--name", "voron"}, cura...)...)

	var order struct {
		Jobs []struct{ ID, File string }
	}
	if code := api.call("POST", "/api/v1/orders", map[string]any{"lab": "e2e", "design": "lid", "quantity": 1}, &order); code != 201 || len(order.Jobs) != 1 || order.Jobs[0].File != "lid.3mf" {
		t.Fatalf("order: %d %+v, want one job of lid.3mf", code, order)
	}
	job := order.Jobs[0].ID
	waitFor(t, 30*time.Second, "the G-code reaching Moonraker", func() bool {
		_, ok := printer.Uploaded("fab-" + job + "-a1.gcode")
		return ok
	})
	gcode, _ := printer.Uploaded("fab-" + job + "-a1.gcode")
	if !bytes.Contains(gcode, []byte("G1 ")) || bytes.HasPrefix(gcode, []byte("PK")) {
		t.Fatalf("the printer got %d bytes that are not G-code", len(gcode))
	}
	printer.Complete()
	var v struct {
		Job struct {
			State    string
			Estimate *struct {
				Seconds float64 `json:"seconds"`
			}
		}
	}
	waitFor(t, 30*time.Second, "the job reaching done", func() bool {
		api.call("GET", "/api/v1/jobs/"+job, nil, &v)
		return v.Job.State == "done"
	})
	if v.Job.Estimate == nil || v.Job.Estimate.Seconds <= 0 {
		t.Fatalf("the job's estimate: got %+v, want CuraEngine's print time", v.Job.Estimate)
	}
	t.Logf("the 3MF sliced on the agent: %.0f s", v.Job.Estimate.Seconds)
}
