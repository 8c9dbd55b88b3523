package main

import (
	"bytes"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"testing"

	"github.com/fabcommons/fabcommons/fabrication/agent"
	"github.com/fabcommons/fabcommons/fabrication/agent/protocoltest"
)

// TestPhotosOfFinishedPrints runs the agent, a real hub and each printer's protocol
// test server with its camera: the still the camera gives when the print finishes
// reaches the job, re-encoded; a camera that is away costs the job nothing.
func TestPhotosOfFinishedPrints(t *testing.T) {
	api, _ := newHub(t)
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 3)
	}
	var buf bytes.Buffer
	jpeg.Encode(&buf, img, nil)
	still := buf.Bytes()

	driverCamera := func(t *testing.T, r *rig) agent.Camera {
		d, err := r.kind.driver(r.url, "printer-key")
		if err != nil {
			t.Fatal(err)
		}
		return d.(agent.Camera)
	}
	cases := []struct {
		name  string
		kind  printerKind
		setup func(t *testing.T, r *rig, cam *protocoltest.Webcam) agent.Camera
		photo bool
	}{
		{"octoprint's webcam", printerKinds["octoprint"], func(t *testing.T, r *rig, cam *protocoltest.Webcam) agent.Camera {
			r.printer.(*protocoltest.OctoPrint).SetWebcam(true, cam.SnapshotURL())
			return driverCamera(t, r)
		}, true},
		{"moonraker's webcam", printerKinds["moonraker"], func(t *testing.T, r *rig, cam *protocoltest.Webcam) agent.Camera {
			r.printer.(*protocoltest.Moonraker).AddWebcam("bed", cam.SnapshotURL())
			return driverCamera(t, r)
		}, true},
		{"prusalink's camera", prusaLinkKind, func(t *testing.T, r *rig, cam *protocoltest.Webcam) agent.Camera {
			r.printer.(*protocoltest.PrusaLink).AddCamera("cam1", still, nil, true)
			return driverCamera(t, r)
		}, true},
		{"a configured URL", printerKinds["octoprint"], func(t *testing.T, r *rig, cam *protocoltest.Webcam) agent.Camera {
			c, err := agent.NewURLCamera(cam.URL + "/?action=snapshot")
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, true},
		{"a camera away", printerKinds["moonraker"], func(t *testing.T, r *rig, cam *protocoltest.Webcam) agent.Camera {
			r.printer.(*protocoltest.Moonraker).AddWebcam("bed", cam.SnapshotURL())
			cam.Close()
			return driverCamera(t, r)
		}, false},
		{"a camera sending what is no image", printerKinds["octoprint"], func(t *testing.T, r *rig, cam *protocoltest.Webcam) agent.Camera {
			r.printer.(*protocoltest.OctoPrint).SetWebcam(true, cam.SnapshotURL())
			cam.Set([]byte("\xff\xd8\xff not really a JPEG"), "image/jpeg") // the hub refuses it (422): the job goes on
			return driverCamera(t, r)
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cam := protocoltest.NewWebcam(still, "image/jpeg")
			defer cam.Close()
			r := newRig(t, api, tc.kind)
			r.camera = tc.setup(t, r, cam)
			r.start("printer-key", nil)
			id := r.order()
			r.waitJob(id, "done", true)
			r.checkInvariant(id)
			var raw struct {
				Job struct {
					Photos []map[string]any `json:"photos"`
				} `json:"job"`
			}
			api.call("GET", "/api/v1/jobs/"+id, nil, &raw)
			if !tc.photo {
				if len(raw.Job.Photos) != 0 {
					t.Fatalf("photos: got %v, want none", raw.Job.Photos)
				}
				return
			}
			if len(raw.Job.Photos) != 1 || raw.Job.Photos[0]["source"] != "camera" || raw.Job.Photos[0]["by"] != "machine:mk3" {
				t.Fatalf("photos: got %v, want one from the camera of machine mk3", raw.Job.Photos)
			}
			resp, err := http.Get(api.base + "/api/v1/jobs/" + id + "/photos/" + raw.Job.Photos[0]["key"].(string))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" {
				t.Fatalf("the photo: got %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if got, err := jpeg.Decode(bytes.NewReader(body)); err != nil || got.Bounds() != img.Bounds() {
				t.Fatalf("the photo does not decode to the still: %v", err)
			}
		})
	}
}
