package agent

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fabcommons/fabcommons/fabrication/agent/protocoltest"
)

func writeGcode(t *testing.T) (string, []byte) {
	t.Helper()
	data := bytes.Repeat([]byte("G1 X10 Y10 E1\n"), 2000)
	p := filepath.Join(t.TempDir(), "job.gcode")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, data
}

type openDriver func(t *testing.T, key string) (Driver, protocoltest.Printer)

var printerDrivers = map[string]openDriver{
	"octoprint": func(t *testing.T, key string) (Driver, protocoltest.Printer) {
		srv := protocoltest.NewOctoPrint("secret-key")
		t.Cleanup(srv.Close)
		d, err := NewOctoPrint(srv.URL, key)
		if err != nil {
			t.Fatal(err)
		}
		return d, srv
	},
	"moonraker": func(t *testing.T, key string) (Driver, protocoltest.Printer) {
		srv := protocoltest.NewMoonraker("secret-key")
		t.Cleanup(srv.Close)
		d, err := NewMoonraker(srv.URL, key)
		if err != nil {
			t.Fatal(err)
		}
		return d, srv
	},
}

func wantStatus(t *testing.T, d Driver, p Print, state string, canceled bool) Status {
	t.Helper()
	st, err := d.Status(context.Background(), p)
	if err != nil || st.State != state || st.Canceled != canceled {
		t.Fatalf("status of %s: got %+v, %v, want %s (canceled %v)", p.Key(), st, err, state, canceled)
	}
	return st
}

// ours lists the physical prints of printer files named after p.
func ours(s protocoltest.Printer, p Print) []protocoltest.PrintRecord {
	var out []protocoltest.PrintRecord
	for _, r := range s.Prints() {
		if r.File == printerFileName(p) {
			out = append(out, r)
		}
	}
	return out
}

func TestPrinterDrivers(t *testing.T) {
	t.Parallel()
	for name, open := range printerDrivers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			file, data := writeGcode(t)
			a1, a2 := Print{Job: "j1", Attempt: 1}, Print{Job: "j1", Attempt: 2}

			t.Run("print to the end", func(t *testing.T) {
				d, p := open(t, "secret-key")
				if err := d.Ready(ctx); err != nil {
					t.Fatalf("an idle printer: got %v, want ready", err)
				}
				wantStatus(t, d, a1, PrinterGone, false)
				if err := d.Start(ctx, a1, file); err != nil {
					t.Fatal(err)
				}
				if got, ok := p.Uploaded(printerFileName(a1)); !ok || !bytes.Equal(got, data) {
					t.Fatalf("the printer got %d bytes (uploaded %v), want the %d of the file", len(got), ok, len(data))
				}
				if err := d.Ready(ctx); !errors.Is(err, ErrPrinterBusy) {
					t.Fatalf("while printing: Ready got %v, want ErrPrinterBusy", err)
				}
				p.Advance(0.42)
				if st := wantStatus(t, d, a1, PrinterPrinting, false); st.Progress < 41.9 || st.Progress > 42.1 {
					t.Fatalf("printing: got %v%%, want 42%%", st.Progress)
				}
				p.Complete()
				wantStatus(t, d, a1, PrinterFinished, false)
				// A restarted printer forgot its current job; its records still say how
				// the print ended, which is what a restarted agent reconciles from.
				p.Restart()
				wantStatus(t, d, a1, PrinterFinished, false)
				wantStatus(t, d, Print{Job: "j2", Attempt: 1}, PrinterGone, false)
				if got := ours(p, a1); len(got) != 1 || got[0].Outcome != protocoltest.OutcomeCompleted {
					t.Fatalf("physical prints: got %+v, want one completed", got)
				}
			})

			t.Run("a failure and its retry on the same printer", func(t *testing.T) {
				d, p := open(t, "secret-key")
				if err := d.Start(ctx, a1, file); err != nil {
					t.Fatal(err)
				}
				p.Fail("Heater extruder not heating at expected rate")
				st := wantStatus(t, d, a1, PrinterFailed, false)
				if !strings.Contains(st.Message, "Heater extruder") {
					t.Fatalf("the failure's message: got %q, want the printer's reason", st.Message)
				}
				p.Recover()
				// The hub queues the job again under its id: the next attempt must not
				// be read from the failed one's records.
				wantStatus(t, d, a2, PrinterGone, false)
				if err := d.Start(ctx, a2, file); err != nil {
					t.Fatalf("the retry: %v", err)
				}
				wantStatus(t, d, a2, PrinterPrinting, false)
				p.Complete()
				wantStatus(t, d, a2, PrinterFinished, false)
				// Once the error is cleared OctoPrint no longer says why a print failed;
				// failed it stays.
				if st, err := d.Status(ctx, a1); err != nil || st.State != PrinterFailed {
					t.Fatalf("the first attempt after the retry: got %+v, %v, want failed", st, err)
				}
			})

			t.Run("busy with someone else's print", func(t *testing.T) {
				d, p := open(t, "secret-key")
				p.StartOther("benchy.gcode")
				if err := d.Ready(ctx); !errors.Is(err, ErrPrinterBusy) || !strings.Contains(err.Error(), "benchy") {
					t.Fatalf("Ready: got %v, want ErrPrinterBusy naming the other print", err)
				}
				if err := d.Start(ctx, a1, file); !errors.Is(err, ErrPrinterBusy) {
					t.Fatalf("Start: got %v, want ErrPrinterBusy", err)
				}
				wantStatus(t, d, a1, PrinterGone, false)
				p.Complete()
				if n := len(ours(p, a1)); n != 0 {
					t.Fatalf("the refused job was printed %d times, want 0", n)
				}
				p.Pause() // nothing to pause: the other print is done
				if err := d.Ready(ctx); err != nil {
					t.Fatalf("after the other print: got %v, want ready", err)
				}
			})

			t.Run("paused is still printing", func(t *testing.T) {
				d, p := open(t, "secret-key")
				if err := d.Start(ctx, a1, file); err != nil {
					t.Fatal(err)
				}
				p.Pause()
				wantStatus(t, d, a1, PrinterPrinting, false)
				if err := d.Ready(ctx); !errors.Is(err, ErrPrinterBusy) {
					t.Fatalf("paused: Ready got %v, want ErrPrinterBusy", err)
				}
			})

			t.Run("firmware shutdown mid-print", func(t *testing.T) {
				d, p := open(t, "secret-key")
				if err := d.Start(ctx, a1, file); err != nil {
					t.Fatal(err)
				}
				p.Advance(0.3)
				p.Shutdown("MCU 'mcu' shutdown: Timer too close")
				st := wantStatus(t, d, a1, PrinterFailed, false)
				if !strings.Contains(st.Message, "Timer too close") {
					t.Fatalf("message: got %q, want the firmware's reason", st.Message)
				}
				if err := d.Ready(ctx); !errors.Is(err, ErrPrinterBusy) {
					t.Fatalf("shut down: Ready got %v, want ErrPrinterBusy", err)
				}
				p.Recover()
				if st, err := d.Status(ctx, a1); err != nil || st.State != PrinterFailed {
					t.Fatalf("after the firmware restart: got %+v, %v, want failed", st, err)
				}
				if err := d.Ready(ctx); err != nil {
					t.Fatalf("after the firmware restart: got %v, want ready", err)
				}
			})

			t.Run("cancel at the printer", func(t *testing.T) {
				d, p := open(t, "secret-key")
				if err := d.Start(ctx, a1, file); err != nil {
					t.Fatal(err)
				}
				p.CancelAtPrinter()
				wantStatus(t, d, a1, PrinterFailed, true)
			})

			t.Run("cancel through the agent", func(t *testing.T) {
				d, p := open(t, "secret-key")
				if err := d.Start(ctx, a1, file); err != nil {
					t.Fatal(err)
				}
				if err := d.Cancel(ctx, Print{Job: "other", Attempt: 1}); err != nil || p.Cancels() != 0 {
					t.Fatalf("canceling a print that is not the current one: got %v and %d cancels, want nil and 0", err, p.Cancels())
				}
				if err := d.Cancel(ctx, a1); err != nil || p.Cancels() != 1 {
					t.Fatalf("cancel: got %v and %d cancels, want nil and 1", err, p.Cancels())
				}
				wantStatus(t, d, a1, PrinterFailed, true)
				if err := d.Cancel(ctx, a1); err != nil || p.Cancels() != 1 {
					t.Fatalf("a second cancel: got %v and %d cancels, want nil and still 1", err, p.Cancels())
				}
			})

			t.Run("wrong API key", func(t *testing.T) {
				d, p := open(t, "wrong-key")
				for what, err := range map[string]error{
					"ready":  d.Ready(ctx),
					"start":  d.Start(ctx, a1, file),
					"cancel": d.Cancel(ctx, a1),
				} {
					if !errors.Is(err, ErrPrinterAuth) || !strings.Contains(err.Error(), "API key") {
						t.Errorf("%s: got %v, want ErrPrinterAuth saying so", what, err)
					}
				}
				if _, err := d.Status(ctx, a1); !errors.Is(err, ErrPrinterAuth) {
					t.Errorf("status: got %v, want ErrPrinterAuth", err)
				}
				if len(p.Prints()) != 0 {
					t.Fatalf("printed with a wrong key: %+v", p.Prints())
				}
			})

			t.Run("a mesh is refused", func(t *testing.T) {
				d, p := open(t, "secret-key")
				stl := filepath.Join(t.TempDir(), "part.stl")
				os.WriteFile(stl, []byte("solid x\nendsolid x\n"), 0o600)
				if err := d.Start(ctx, a1, stl); err == nil || !strings.Contains(err.Error(), "slicer") {
					t.Fatalf("got %v, want an error naming the slicer", err)
				}
				if _, ok := p.Uploaded(printerFileName(a1)); ok {
					t.Fatal("the mesh reached the printer")
				}
			})
		})
	}
}

func TestOctoPrintSpecifics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	file, _ := writeGcode(t)
	p1 := Print{Job: "o1", Attempt: 1}
	open := func(t *testing.T) (*OctoPrint, *protocoltest.OctoPrint) {
		srv := protocoltest.NewOctoPrint("k")
		t.Cleanup(srv.Close)
		d, err := NewOctoPrint(srv.URL, "k")
		if err != nil {
			t.Fatal(err)
		}
		return d, srv
	}

	t.Run("a chunked upload is refused, as OctoPrint does", func(t *testing.T) {
		_, srv := open(t)
		body := strings.NewReader("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.gcode\"\r\n\r\nG28\r\n--b--\r\n")
		req, _ := http.NewRequest("POST", srv.URL+"/api/files/local", struct{ *strings.Reader }{body}) // hides the length
		req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
		req.Header.Set("X-Api-Key", "k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusLengthRequired {
			t.Fatalf("got %d, want 411", resp.StatusCode)
		}
	})

	t.Run("the record of a finished print comes late", func(t *testing.T) {
		d, srv := open(t)
		srv.SetDelayRecords(true)
		if err := d.Start(ctx, p1, file); err != nil {
			t.Fatal(err)
		}
		srv.Complete()
		// Operational, the file still selected, no record yet: neither done nor failed.
		wantStatus(t, d, p1, PrinterPrinting, false)
		srv.FlushRecords()
		wantStatus(t, d, p1, PrinterFinished, false)
	})

	t.Run("busy a moment ago is not a missing permission", func(t *testing.T) {
		d, srv := open(t)
		var once sync.Once
		srv.SetBeforeUpload(func() { once.Do(func() { srv.StartOther("benchy.gcode") }) })
		srv.SetAfterUpload(srv.Complete) // the other print ends before the driver looks why
		if err := d.Start(ctx, p1, file); !errors.Is(err, ErrPrinterBusy) {
			t.Fatalf("got %v, want ErrPrinterBusy", err)
		}
	})

	t.Run("a key without the PRINT permission", func(t *testing.T) {
		d, srv := open(t)
		srv.SetNoPrintPermission(true)
		if err := d.Start(ctx, p1, file); !errors.Is(err, ErrPrinterAuth) || !strings.Contains(err.Error(), "PRINT") {
			t.Fatalf("got %v, want ErrPrinterAuth naming the permission", err)
		}
		if _, ok := srv.Uploaded(printerFileName(p1)); ok {
			t.Fatal("the file stayed on the printer, where someone could start it by mistake")
		}
	})

	t.Run("a print lost while paused leaves no record", func(t *testing.T) {
		d, srv := open(t)
		if err := d.Start(ctx, p1, file); err != nil {
			t.Fatal(err)
		}
		srv.Pause()
		srv.Restart()
		// The printer had it and cannot say how it ended: the agent, which knows the
		// printer had it, leaves the job to an operator (cmd/fabagent, TestAgentOnRealPrinterProtocols,
		// "a print the printer lost").
		wantStatus(t, d, p1, PrinterGone, false)
	})
}

func TestMoonrakerSpecifics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	file, _ := writeGcode(t)
	p1 := Print{Job: "m1", Attempt: 1}
	open := func(t *testing.T, key string) (*Moonraker, *protocoltest.Moonraker) {
		srv := protocoltest.NewMoonraker("k")
		t.Cleanup(srv.Close)
		d, err := NewMoonraker(srv.URL, key)
		if err != nil {
			t.Fatal(err)
		}
		return d, srv
	}

	t.Run("checksum mismatch", func(t *testing.T) {
		d, srv := open(t, "k")
		srv.SetCorruptUploads(true)
		err := d.Start(ctx, p1, file)
		if statusOf(err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "SHA-256") {
			t.Fatalf("a corrupted upload: got %v, want Moonraker's 422 explained", err)
		}
		if _, ok := srv.Uploaded(printerFileName(p1)); ok {
			t.Fatal("Moonraker kept a file whose checksum did not match")
		}
		wantStatus(t, d, p1, PrinterGone, false)
	})

	t.Run("a queued upload is taken back", func(t *testing.T) {
		d, srv := open(t, "k")
		srv.SetQueueUploads(true)
		srv.StartOther("benchy.gcode")
		if err := d.Start(ctx, p1, file); !errors.Is(err, ErrPrinterBusy) {
			t.Fatalf("got %v, want ErrPrinterBusy", err)
		}
		if q := srv.Queued(); len(q) != 0 {
			t.Fatalf("left in Moonraker's job queue: %v", q)
		}
		srv.Complete() // the queue would start the next file now
		if n := len(ours(srv, p1)); n != 0 {
			t.Fatalf("the job handed back was printed %d times by the printer's queue", n)
		}
		wantStatus(t, d, p1, PrinterGone, false)
	})

	t.Run("a trusted client's key is not checked", func(t *testing.T) {
		d, srv := open(t, "wrong")
		srv.SetTrusted(true)
		if err := d.Ready(ctx); err != nil {
			t.Fatalf("got %v, want ready", err)
		}
	})

	t.Run("without history", func(t *testing.T) {
		d, srv := open(t, "k")
		srv.SetNoHistory(true)
		wantStatus(t, d, p1, PrinterGone, false)
		if err := d.Start(ctx, p1, file); err != nil {
			t.Fatal(err)
		}
		srv.Complete()
		wantStatus(t, d, p1, PrinterFinished, false)
		srv.Recover() // a firmware restart forgets the current print
		st := wantStatus(t, d, p1, PrinterUnknown, false)
		if !strings.Contains(st.Message, "[history]") {
			t.Fatalf("message: got %q, want the fix named", st.Message)
		}
	})

	t.Run("klippy not connected", func(t *testing.T) {
		d, srv := open(t, "k")
		srv.Disconnect()
		if err := d.Ready(ctx); !errors.Is(err, ErrPrinterBusy) || !strings.Contains(err.Error(), "not connected") {
			t.Fatalf("got %v, want ErrPrinterBusy saying Klipper is not connected", err)
		}
		srv.Recover()
		if err := d.Ready(ctx); err != nil {
			t.Fatalf("reconnected: got %v, want ready", err)
		}
	})

	t.Run("the job queue starts the print as the upload is answered", func(t *testing.T) {
		d, srv := open(t, "k")
		srv.SetQueueUploads(true)
		srv.StartOther("benchy.gcode")
		var once sync.Once
		srv.SetAfterUpload(func() { once.Do(srv.Complete) }) // the other print ends; the queue starts ours
		if err := d.Start(ctx, p1, file); err != nil {
			t.Fatalf("got %v, want nil: the printer prints it", err)
		}
		wantStatus(t, d, p1, PrinterPrinting, false)
		if n := len(ours(srv, p1)); n != 1 {
			t.Fatalf("physical prints: %d, want 1", n)
		}
	})

	t.Run("moonraker restarted mid-print", func(t *testing.T) {
		d, srv := open(t, "k")
		if err := d.Start(ctx, p1, file); err != nil {
			t.Fatal(err)
		}
		srv.RestartServer() // history: server_exit; Klipper prints on
		wantStatus(t, d, p1, PrinterPrinting, false)
		srv.Complete()
		srv.StartOther("benchy.gcode") // print_stats moves on before the agent looks
		st := wantStatus(t, d, p1, PrinterUnknown, false)
		if !strings.Contains(st.Message, "server_exit") {
			t.Fatalf("message: got %q, want the history's word", st.Message)
		}
	})
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
		if _, err := NewPrusaLink(PrusaLinkConfig{URL: u, APIKey: "k"}); err == nil {
			t.Errorf("NewPrusaLink(%q): got no error", u)
		}
	}
}
