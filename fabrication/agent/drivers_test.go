package agent

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fabcommons/fabcommons/fabrication/agent/protocoltest"
)

// testPrinter is what a driver test does to either protocol test server.
type testPrinter interface {
	Advance(float64)
	Complete()
	Fail(string)
	Restart()
	Uploaded(string) ([]byte, bool)
	Cancels() int
	Close()
}

func writeGcode(t *testing.T) (string, []byte) {
	t.Helper()
	data := bytes.Repeat([]byte("G1 X10 Y10 E1\n"), 2000)
	p := filepath.Join(t.TempDir(), "job.gcode")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func TestPrinterDrivers(t *testing.T) {
	t.Parallel()
	type setup func(t *testing.T, key string) (Driver, testPrinter)
	drivers := map[string]setup{
		"octoprint": func(t *testing.T, key string) (Driver, testPrinter) {
			srv := protocoltest.NewOctoPrint("secret-key")
			d, err := NewOctoPrint(srv.URL, key)
			if err != nil {
				t.Fatal(err)
			}
			return d, srv
		},
		"moonraker": func(t *testing.T, key string) (Driver, testPrinter) {
			srv := protocoltest.NewMoonraker("secret-key")
			d, err := NewMoonraker(srv.URL, key)
			if err != nil {
				t.Fatal(err)
			}
			return d, srv
		},
	}
	for name, open := range drivers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			file, data := writeGcode(t)

			t.Run("print to the end", func(t *testing.T) {
				d, p := open(t, "secret-key")
				defer p.Close()
				if st, err := d.Status(ctx, "j1"); err != nil || st.State != PrinterGone {
					t.Fatalf("before start: got %+v, %v, want gone", st, err)
				}
				if err := d.Start(ctx, "j1", file); err != nil {
					t.Fatal(err)
				}
				if got, ok := p.Uploaded("fab-j1.gcode"); !ok || !bytes.Equal(got, data) {
					t.Fatalf("the printer got %d bytes (uploaded %v), want the %d of the file", len(got), ok, len(data))
				}
				p.Advance(0.42)
				if st, err := d.Status(ctx, "j1"); err != nil || st.State != PrinterPrinting || st.Progress < 41.9 || st.Progress > 42.1 {
					t.Fatalf("printing: got %+v, %v, want printing at 42%%", st, err)
				}
				p.Complete()
				if st, err := d.Status(ctx, "j1"); err != nil || st.State != PrinterFinished {
					t.Fatalf("after completion: got %+v, %v, want finished", st, err)
				}
				// A restarted printer forgot its current job; its records still say
				// how the job ended, which is what a restarted agent reconciles from.
				p.Restart()
				if st, err := d.Status(ctx, "j1"); err != nil || st.State != PrinterFinished {
					t.Fatalf("after a printer restart: got %+v, %v, want finished from the printer's records", st, err)
				}
				if st, err := d.Status(ctx, "j2"); err != nil || st.State != PrinterGone {
					t.Fatalf("a job never sent: got %+v, %v, want gone", st, err)
				}
			})

			t.Run("failure and cancel", func(t *testing.T) {
				d, p := open(t, "secret-key")
				defer p.Close()
				if err := d.Start(ctx, "f1", file); err != nil {
					t.Fatal(err)
				}
				if err := d.Start(ctx, "f2", file); err == nil {
					t.Fatal("a second print while the first runs: got no error")
				}
				p.Fail("Heater extruder not heating at expected rate")
				st, err := d.Status(ctx, "f1")
				if err != nil || st.State != PrinterFailed || st.Message == "canceled" {
					t.Fatalf("after a printer error: got %+v, %v, want failed (not canceled)", st, err)
				}
				if err := d.Start(ctx, "c1", file); err != nil {
					t.Fatal(err)
				}
				if err := d.Cancel(ctx, "f1"); err != nil || p.Cancels() != 0 {
					t.Fatalf("canceling a job that is not the current print: got %v and %d cancels, want nil and 0", err, p.Cancels())
				}
				if err := d.Cancel(ctx, "c1"); err != nil || p.Cancels() != 1 {
					t.Fatalf("cancel: got %v and %d cancels, want nil and 1", err, p.Cancels())
				}
				if st, err := d.Status(ctx, "c1"); err != nil || st.State != PrinterFailed || st.Message != "canceled" {
					t.Fatalf("after cancel: got %+v, %v, want failed: canceled", st, err)
				}
				if err := d.Cancel(ctx, "c1"); err != nil || p.Cancels() != 1 {
					t.Fatalf("a second cancel: got %v and %d cancels, want nil and still 1", err, p.Cancels())
				}
			})

			t.Run("wrong API key", func(t *testing.T) {
				d, p := open(t, "wrong-key")
				defer p.Close()
				if err := d.Start(ctx, "k1", file); !errors.Is(err, ErrPrinterAuth) {
					t.Fatalf("got %v, want ErrPrinterAuth", err)
				}
				if _, err := d.Status(ctx, "k1"); !errors.Is(err, ErrPrinterAuth) {
					t.Fatalf("status: got %v, want ErrPrinterAuth", err)
				}
			})

			t.Run("a mesh is refused", func(t *testing.T) {
				d, p := open(t, "secret-key")
				defer p.Close()
				stl := filepath.Join(t.TempDir(), "part.stl")
				os.WriteFile(stl, []byte("solid x\nendsolid x\n"), 0o600)
				if err := d.Start(ctx, "m1", stl); err == nil || !strings.Contains(err.Error(), "slicer") {
					t.Fatalf("got %v, want an error naming the slicer", err)
				}
				if _, ok := p.Uploaded("fab-m1.gcode"); ok {
					t.Fatal("the mesh reached the printer")
				}
			})
		})
	}
}

func TestMoonrakerChecksumMismatch(t *testing.T) {
	t.Parallel()
	srv := protocoltest.NewMoonraker("")
	defer srv.Close()
	srv.CorruptUploads = true
	d, err := NewMoonraker(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	file, _ := writeGcode(t)
	err = d.Start(context.Background(), "x1", file)
	if statusOf(err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("a corrupted upload: got %v, want Moonraker's 422 checksum mismatch", err)
	}
	if _, ok := srv.Uploaded("fab-x1.gcode"); ok {
		t.Fatal("Moonraker kept a file whose checksum did not match")
	}
	if st, err := d.Status(context.Background(), "x1"); err != nil || st.State != PrinterGone {
		t.Fatalf("got %+v, %v, want gone: nothing was printed", st, err)
	}
}

func TestPrinterURLMustBeHTTP(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "octopi.local", "ftp://octopi.local", "http://"} {
		if _, err := NewOctoPrint(u, "k"); err == nil {
			t.Errorf("NewOctoPrint(%q): got no error", u)
		}
		if _, err := NewMoonraker(u, ""); err == nil {
			t.Errorf("NewMoonraker(%q): got no error", u)
		}
	}
}
