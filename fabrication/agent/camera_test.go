package agent

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/fabrication/agent/protocoltest"
)

func testJPEG(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 32, 24))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// cameraRig is a printer's camera as a test sets it up: the driver (or URL camera)
// the agent asks, and the webcam behind it when there is one.
type cameraRig struct {
	camera Camera
	webcam *protocoltest.Webcam // nil for PrusaLink, whose camera is its own
	none   func()               // unconfigure the camera
}

func newCameraRig(t *testing.T, kind string, still []byte) *cameraRig {
	t.Helper()
	r := &cameraRig{}
	if kind != "prusalink" {
		r.webcam = protocoltest.NewWebcam(still, "image/jpeg")
		t.Cleanup(r.webcam.Close)
	}
	switch kind {
	case "octoprint":
		o := protocoltest.NewOctoPrint("k")
		t.Cleanup(o.Close)
		o.SetWebcam(true, r.webcam.SnapshotURL())
		d, err := NewOctoPrint(o.URL, "k")
		if err != nil {
			t.Fatal(err)
		}
		r.camera, r.none = d, func() { o.SetWebcam(false, r.webcam.SnapshotURL()) }
	case "moonraker":
		m := protocoltest.NewMoonraker("k")
		t.Cleanup(m.Close)
		m.AddWebcam("bed", r.webcam.SnapshotURL())
		d, err := NewMoonraker(m.URL, "k")
		if err != nil {
			t.Fatal(err)
		}
		r.camera = d
		r.none = func() {
			m2 := protocoltest.NewMoonraker("k")
			t.Cleanup(m2.Close)
			d2, _ := NewMoonraker(m2.URL, "k")
			r.camera = d2
		}
	case "prusalink":
		p := protocoltest.NewPrusaLink("k", "", "")
		t.Cleanup(p.Close)
		p.AddCamera("cam1", still, nil, true)
		d, err := NewPrusaLink(PrusaLinkConfig{URL: p.URL, APIKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		r.camera = d
		r.none = func() {
			p2 := protocoltest.NewPrusaLink("k", "", "")
			t.Cleanup(p2.Close)
			d2, _ := NewPrusaLink(PrusaLinkConfig{URL: p2.URL, APIKey: "k"})
			r.camera = d2
		}
	case "url":
		c, err := NewURLCamera(r.webcam.URL + "/?action=snapshot")
		if err != nil {
			t.Fatal(err)
		}
		r.camera, r.none = c, nil
	}
	return r
}

// TestSnapshotFromEachPrinter takes a still through each printer's own way of naming
// its camera (OctoPrint's settings, Moonraker's webcam list, PrusaLink's cameras) and
// from a configured URL; then what goes wrong: no camera, a camera away, one that
// never answers, one that sends a stream page or far too many bytes.
func TestSnapshotFromEachPrinter(t *testing.T) {
	t.Parallel()
	still := testJPEG(t)
	for _, kind := range []string{"octoprint", "moonraker", "prusalink", "url"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			r := newCameraRig(t, kind, still)
			snap, err := r.camera.Snapshot(ctx)
			if err != nil || !bytes.Equal(snap.Data, still) || snap.ContentType != "image/jpeg" {
				t.Fatalf("got %d bytes of %q, %v; want the %d-byte JPEG", len(snap.Data), snap.ContentType, err, len(still))
			}
			if r.webcam == nil {
				return // PrusaLink's own camera: its failures are TestPrusaLinkCameraStills'
			}
			r.webcam.Set([]byte("<html><img src=stream></html>"), "text/html")
			if _, err := r.camera.Snapshot(ctx); err == nil || errors.Is(err, ErrNoCamera) {
				t.Errorf("a web page for a still: got %v, want an error", err)
			}
			r.webcam.Set(append(bytes.Clone(still), make([]byte, maxSnapshotBytes)...), "image/jpeg")
			if _, err := r.camera.Snapshot(ctx); err == nil || !strings.Contains(err.Error(), "over the hub's") {
				t.Errorf("a still over the hub's limit: got %v, want a refusal", err)
			}
			r.webcam.Fail(http.StatusInternalServerError)
			if _, err := r.camera.Snapshot(ctx); err == nil || errors.Is(err, ErrNoCamera) {
				t.Errorf("a camera answering 500: got %v, want an error", err)
			}
			r.webcam.Hang()
			hctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			start := time.Now()
			_, err = r.camera.Snapshot(hctx)
			cancel()
			if err == nil || time.Since(start) > 5*time.Second {
				t.Errorf("a camera that never answers: got %v after %s, want an error when the context ends", err, time.Since(start))
			}
			r.webcam.Close() // unplugged
			if _, err := r.camera.Snapshot(ctx); err == nil || errors.Is(err, ErrNoCamera) {
				t.Errorf("a camera away: got %v, want an error", err)
			}
			if r.none != nil {
				r.none()
				if _, err := r.camera.Snapshot(ctx); !errors.Is(err, ErrNoCamera) {
					t.Errorf("no camera configured: got %v, want ErrNoCamera", err)
				}
			}
		})
	}
}

func TestPrusaLinkCameraStills(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	still, last := testJPEG(t), []byte("\xff\xd8\xff\xe0 the last still")
	p := protocoltest.NewPrusaLink("k", "", "")
	defer p.Close()
	d, err := NewPrusaLink(PrusaLinkConfig{URL: p.URL, APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Snapshot(ctx); !errors.Is(err, ErrNoCamera) {
		t.Fatalf("no camera: got %v, want ErrNoCamera", err)
	}
	p.AddCamera("slow", still, nil, false) // cannot take one on demand, has none yet: 204
	if _, err := d.Snapshot(ctx); err == nil || errors.Is(err, ErrNoCamera) {
		t.Fatalf("a camera with no still yet: got %v, want an error", err)
	}
	p2 := protocoltest.NewPrusaLink("k", "", "")
	defer p2.Close()
	p2.AddCamera("old", still, last, false)
	d2, _ := NewPrusaLink(PrusaLinkConfig{URL: p2.URL, APIKey: "k"})
	if snap, err := d2.Snapshot(ctx); err != nil || !bytes.Equal(snap.Data, last) {
		t.Fatalf("a camera that cannot take one now: got %q, %v; want its last still", snap.Data, err)
	}
	bad, _ := NewPrusaLink(PrusaLinkConfig{URL: p2.URL, APIKey: "wrong"})
	if _, err := bad.Snapshot(ctx); !errors.Is(err, ErrPrinterAuth) {
		t.Fatalf("a wrong key: got %v, want ErrPrinterAuth", err)
	}
}

func TestOnPrinterHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base, raw string
		keepPort  bool
		want      string
	}{
		{"http://printer.local:7125", "/webcam/?action=snapshot", false, "http://printer.local/webcam/?action=snapshot"},
		{"http://printer.local:7125", "webcam/?action=snapshot", false, "http://printer.local/webcam/?action=snapshot"},
		{"http://octopi.local:5000", "/webcam/?action=snapshot", true, "http://octopi.local:5000/webcam/?action=snapshot"},
		{"http://octopi.local", "http://127.0.0.1:8080/?action=snapshot", true, "http://octopi.local:8080/?action=snapshot"},
		{"http://192.0.2.7:7125", "http://localhost/snapshot", false, "http://192.0.2.7/snapshot"},
		{"http://[2001:db8::7]:7125", "/snapshot", false, "http://[2001:db8::7]/snapshot"},
		{"http://printer.local", "http://cam.local:8081/snap.jpg", false, "http://cam.local:8081/snap.jpg"},
	}
	for _, tt := range tests {
		got, err := onPrinterHost(tt.base, tt.raw, tt.keepPort)
		if err != nil || got != tt.want {
			t.Errorf("onPrinterHost(%q, %q): got %q, %v; want %q", tt.base, tt.raw, got, err, tt.want)
		}
	}
	for _, raw := range []string{"rtsp://cam.local/live", "", "file:///etc/passwd"} {
		if got, err := onPrinterHost("http://printer.local", raw, false); err == nil {
			t.Errorf("onPrinterHost(%q): got %q, want a refusal", raw, got)
		}
	}
}
