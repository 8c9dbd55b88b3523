package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/fabrication/agent"
	"github.com/fabcommons/fabcommons/fabrication/agent/protocoltest"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

// These tests run the real agent runtime, in this process, against a real fabhub and
// the OctoPrint and Moonraker protocol test servers, through what goes wrong at real
// printers: failures and retries on the same printer, a printer busy with somebody
// else's print, a firmware shutdown, cancels at the printer and through the hub, a
// wrong key, and the agent killed at every step. After each, one invariant is checked
// against the test server's log of physical prints: every job the hub calls done was
// printed successfully exactly once, and no job the hub does not call done was.

type printerKind struct {
	open      func() (protocoltest.Printer, string) // the server and its URL
	driver    func(url, key string) (agent.Driver, error)
	printing  map[string]bool // the server's states of a print in progress
	errorName string          // what a failure is called there
}

var printerKinds = map[string]printerKind{
	"octoprint": {
		open: func() (protocoltest.Printer, string) { s := protocoltest.NewOctoPrint("printer-key"); return s, s.URL },
		driver: func(url, key string) (agent.Driver, error) {
			return agent.NewOctoPrint(url, key)
		},
		printing: map[string]bool{"Starting": true, "Printing": true},
	},
	"moonraker": {
		open: func() (protocoltest.Printer, string) {
			s := protocoltest.NewMoonraker("printer-key")
			s.SetQueueUploads(true) // so a busy upload would wait in the printer's queue
			return s, s.URL
		},
		driver: func(url, key string) (agent.Driver, error) {
			return agent.NewMoonraker(url, key)
		},
		printing: map[string]bool{"printing": true},
	},
}

// gcodeSlicer stands in for CuraEngine (tested on its own in TestMoonrakerAgent): the
// printers take G-code, the hub's design is an STL.
type gcodeSlicer struct{}

func (gcodeSlicer) Slice(ctx context.Context, mesh, gcode string) (agentapi.Estimate, error) {
	return agentapi.Estimate{Seconds: 600, FilamentMM: 1000}, os.WriteFile(gcode, []byte("G28\nG1 X10 Y10 E1\n"), 0o600)
}

// rig is one machine of its own lab on the shared hub, with its printer.
type rig struct {
	t       *testing.T
	api     hubAPI
	kind    printerKind
	printer protocoltest.Printer
	url     string
	state   string
	token   string
	lab     string
	stops   []func()
	busy    atomic.Int32 // Ready answers that said the printer was busy
	camera  agent.Camera // nil: no photos of finished prints
}

var labCount atomic.Int32

// killAtAndResume orders a job, kills the agent at step (a killSteps entry), starts it
// again on the same state dir, and checks the job ends done, printed exactly once.
func (r *rig) killAtAndResume(step string) {
	t := r.t
	t.Helper()
	k := &killer{step: step}
	done := r.start("printer-key", k)
	id := r.order()
	waitFor(t, 30*time.Second, "the agent to die "+step, func() bool {
		if (step == "finished-unreported" || step == "finished-reported") && r.printing(id) {
			r.printer.Complete()
		}
		return k.killed.Load()
	})
	select {
	case <-done:
		t.Fatal("Run returned: the kill did not end it where it stood")
	case <-time.After(50 * time.Millisecond):
	}
	r.start("printer-key", nil) // the next start, on the same state dir
	r.waitJob(id, "done", true)
	r.checkInvariant(id)
	if p := r.ours(id); len(p) != 1 {
		t.Fatalf("physical prints of the job: got %+v, want exactly one", p)
	}
}

func newRig(t *testing.T, api hubAPI, kind printerKind) *rig {
	t.Helper()
	r := &rig{t: t, api: api, kind: kind, state: t.TempDir(), lab: fmt.Sprintf("lab%d", labCount.Add(1))}
	if code := api.call("POST", "/api/v1/labs", map[string]any{"slug": r.lab, "name": "Lab " + r.lab}, nil); code != 201 {
		t.Fatalf("lab: %d", code)
	}
	var m struct {
		EnrollmentCode string `json:"enrollment_code"`
	}
	api.call("POST", "/api/v1/labs/"+r.lab+"/machines", map[string]any{"name": "mk3", "process": "fdm",
		"build_volume": map[string]float64{"x": 200, "y": 200, "z": 200}}, &m)
	e, err := agent.NewClient(api.base, "").Enroll(context.Background(), m.EnrollmentCode)
	if err != nil {
		t.Fatal(err)
	}
	r.token = e.Token
	r.printer, r.url = kind.open()
	t.Cleanup(func() {
		for _, stop := range r.stops {
			stop()
		}
		r.printer.Close()
	})
	return r
}

// logWriter sends an agent's log to the test's.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// start runs an agent on the rig's state dir. With kill set it dies at that step, as a
// SIGKILLed process would: its goroutine ends there, nothing else of it runs.
func (r *rig) start(key string, kill *killer) (done <-chan error) {
	r.t.Helper()
	d, err := r.kind.driver(r.url, key)
	if err != nil {
		r.t.Fatal(err)
	}
	d = &watchedDriver{Driver: d, busy: &r.busy}
	client := agent.NewClient(r.api.base, r.token)
	if kill != nil {
		d = &killingDriver{Driver: d, k: kill}
		client.HTTP = &http.Client{Transport: &killingTransport{k: kill}}
	}
	j, err := agent.OpenJournal(r.state)
	if err != nil {
		r.t.Fatal(err)
	}
	a := &agent.Agent{Client: client, Driver: d, Journal: j, StateDir: r.state, Slicer: gcodeSlicer{}, Camera: r.camera,
		Log: slog.New(slog.NewTextHandler(logWriter{r.t}, &slog.HandlerOptions{Level: slog.LevelInfo})), ReadyEvery: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		ch <- a.Run(ctx)
	}()
	r.stops = append(r.stops, func() { cancel(); <-exited })
	return ch
}

func (r *rig) order() string {
	r.t.Helper()
	var o struct {
		Jobs []struct{ ID string }
	}
	if code := r.api.call("POST", "/api/v1/orders", map[string]any{"lab": r.lab, "design": "cube", "quantity": 1}, &o); code != 201 || len(o.Jobs) != 1 {
		r.t.Fatalf("order: %d %+v", code, o)
	}
	return o.Jobs[0].ID
}

type jobView struct {
	State    string
	Attempts int
	Events   []struct{ Message string }
}

func (r *rig) job(id string) jobView {
	var v struct{ Job jobView }
	r.api.call("GET", "/api/v1/jobs/"+id, nil, &v)
	return v.Job
}

// ours is the printer's log of the job's physical prints, every attempt.
func (r *rig) ours(id string) []protocoltest.PrintRecord {
	var out []protocoltest.PrintRecord
	for _, p := range r.printer.Prints() {
		if strings.HasPrefix(p.File, "fab-"+id+"-") {
			out = append(out, p)
		}
	}
	return out
}

// printing says whether the printer prints one of the job's files now.
func (r *rig) printing(id string) bool {
	state, file := r.printer.State()
	return r.kind.printing[state] && strings.HasPrefix(file, "fab-"+id+"-")
}

// waitJob waits for the job to reach state; with finish set it completes each of the
// job's prints it finds on the printer meanwhile, as the printer would.
func (r *rig) waitJob(id, state string, finish bool) jobView {
	r.t.Helper()
	var v jobView
	waitFor(r.t, 40*time.Second, "job "+id+" "+state, func() bool {
		if finish && r.printing(id) {
			r.printer.Complete()
		}
		v = r.job(id)
		return v.State == state
	})
	return v
}

// checkInvariant: done means printed successfully exactly once; anything else means
// no successful print at all; and no print of the job is left running.
func (r *rig) checkInvariant(id string) {
	r.t.Helper()
	v := r.job(id)
	prints := r.ours(id)
	completed := 0
	for _, p := range prints {
		if p.Outcome == protocoltest.OutcomeCompleted {
			completed++
		}
	}
	want := 0
	if v.State == "done" {
		want = 1
	}
	if completed != want {
		r.t.Fatalf("the hub says %s; the printer completed %d prints of the job (%+v), want %d", v.State, completed, prints, want)
	}
	if r.printing(id) {
		r.t.Fatalf("the hub says %s while the printer still prints the job", v.State)
	}
}

// printingRig is a rig whose agent runs and prints the one job of an order.
func printingRig(t *testing.T, api hubAPI, kind printerKind) (*rig, string) {
	t.Helper()
	r := newRig(t, api, kind)
	r.start("printer-key", nil)
	id := r.order()
	waitFor(t, 20*time.Second, "the print", func() bool { return r.printing(id) })
	return r, id
}

func TestAgentOnRealPrinterProtocols(t *testing.T) {
	api, _ := newHub(t)
	for kindName, kind := range printerKinds {
		t.Run(kindName, func(t *testing.T) {
			t.Parallel()
			t.Run("print", func(t *testing.T) {
				t.Parallel()
				r := newRig(t, api, kind)
				r.start("printer-key", nil)
				id := r.order()
				r.waitJob(id, "done", true)
				r.checkInvariant(id)
			})

			t.Run("a failure and its retry on the same printer", func(t *testing.T) {
				t.Parallel()
				r, id := printingRig(t, api, kind)
				// Printers say what they like; a long, many-line reason must reach the hub.
				r.printer.Fail("Heater extruder not heating at expected rate\nSee the wiki for tuning.\n" + strings.Repeat("Once the underlying issue is corrected, restart. ", 40))
				// Klipper takes the next print at once; OctoPrint stays "Offline after
				// error" until someone reconnects it, and the job waits in the queue.
				waitFor(t, 20*time.Second, "the job queued again", func() bool {
					v := r.job(id)
					return v.Attempts == 2 || (v.State == "queued" && v.Attempts == 1)
				})
				if kindName == "octoprint" {
					r.printer.Recover()
				}
				v := r.waitJob(id, "done", true)
				if v.Attempts != 2 {
					t.Fatalf("attempts: got %d, want 2", v.Attempts)
				}
				if p := r.ours(id); len(p) != 2 || p[0].Outcome == protocoltest.OutcomeCompleted {
					t.Fatalf("physical prints: got %+v, want a failed one and a completed one", p)
				}
				r.checkInvariant(id)
			})

			t.Run("busy with someone else's print when the job arrives", func(t *testing.T) {
				t.Parallel()
				r := newRig(t, api, kind)
				r.printer.StartOther("benchy.gcode")
				r.start("printer-key", nil)
				id := r.order()
				// The agent polls as busy, so the job waits in the hub's queue: five busy
				// looks at the printer after the order, each followed by a poll.
				seen := r.busy.Load()
				waitFor(t, 20*time.Second, "the agent to see the printer busy", func() bool { return r.busy.Load() >= seen+5 })
				if v := r.job(id); v.State != "queued" || v.Attempts != 0 {
					t.Fatalf("while the printer is busy: job %s after %d attempts, want queued and never claimed", v.State, v.Attempts)
				}
				r.printer.Complete() // the other print ends
				r.waitJob(id, "done", true)
				r.checkInvariant(id)
			})

			t.Run("the printer is taken between the claim and the upload", func(t *testing.T) {
				t.Parallel()
				r := newRig(t, api, kind)
				var once sync.Once
				r.printer.SetBeforeUpload(func() { once.Do(func() { r.printer.StartOther("someone-else.gcode") }) })
				r.start("printer-key", nil)
				id := r.order()
				waitFor(t, 20*time.Second, "the job handed back", func() bool {
					v := r.job(id)
					return v.State == "queued" && v.Attempts == 1
				})
				if len(r.ours(id)) != 0 {
					t.Fatalf("the printer printed the job it refused: %+v", r.ours(id))
				}
				r.printer.Complete() // the other print ends; the job comes back
				v := r.waitJob(id, "done", true)
				for _, e := range v.Events {
					if strings.Contains(e.Message, "failed") {
						t.Fatalf("a job handed back before printing was logged as failed: %q", e.Message)
					}
				}
				r.checkInvariant(id)
			})

			t.Run("firmware shutdown mid-print", func(t *testing.T) {
				t.Parallel()
				r, id := printingRig(t, api, kind)
				r.printer.Shutdown("MCU 'mcu' shutdown: Timer too close")
				waitFor(t, 20*time.Second, "the job queued again", func() bool { return r.job(id).State == "queued" })
				r.printer.Recover()
				r.waitJob(id, "done", true)
				r.checkInvariant(id)
			})

			t.Run("cancel at the printer", func(t *testing.T) {
				t.Parallel()
				r, id := printingRig(t, api, kind)
				r.printer.CancelAtPrinter()
				v := r.waitJob(id, "failed", false)
				if v.Attempts != 1 {
					t.Fatalf("a print canceled at the printer was tried %d times, want 1", v.Attempts)
				}
				r.checkInvariant(id)
			})

			t.Run("cancel through the hub", func(t *testing.T) {
				t.Parallel()
				r, id := printingRig(t, api, kind)
				if code := r.api.call("POST", "/api/v1/jobs/"+id+"/cancel", nil, nil); code != 200 {
					t.Fatalf("cancel: %d", code)
				}
				waitFor(t, 20*time.Second, "the printer to stop", func() bool { return r.printer.Cancels() == 1 })
				if v := r.job(id); v.State != "canceled" {
					t.Fatalf("got %s, want canceled", v.State)
				}
				r.checkInvariant(id)
			})

			t.Run("a print the printer lost", func(t *testing.T) {
				t.Parallel()
				r, id := printingRig(t, api, kind)
				// OctoPrint keeps no record of a print lost while paused; a Moonraker
				// without [history] none of any print once Klipper restarted.
				if m, ok := r.printer.(*protocoltest.Moonraker); ok {
					m.SetNoHistory(true)
				} else {
					r.printer.Pause()
				}
				r.printer.Restart()
				// Only a person can say what is on the bed: unknown, never queued again.
				v := r.waitJob(id, "unknown", false)
				if v.Attempts != 1 {
					t.Fatalf("attempts: got %d, want 1", v.Attempts)
				}
				r.checkInvariant(id)
			})

			t.Run("a wrong key stops the agent with one line", func(t *testing.T) {
				t.Parallel()
				r := newRig(t, api, kind)
				id := r.order()
				select {
				case err := <-r.start("wrong-key", nil):
					if !errors.Is(err, agent.ErrPrinterAuth) || strings.Contains(oneLine(err), "\n") || !strings.Contains(err.Error(), "API key") {
						t.Fatalf("got %v, want the printer's refusal of the key", err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("the agent kept running with a key the printer refuses")
				}
				if v := r.job(id); v.State != "queued" || v.Attempts != 0 {
					t.Fatalf("job: %s after %d attempts, want queued and never claimed", v.State, v.Attempts)
				}
			})

			t.Run("restarted with a refused key while the printer has the job", func(t *testing.T) {
				t.Parallel()
				r := newRig(t, api, kind)
				k := &killer{step: "upload-answer-lost"}
				r.start("printer-key", k)
				id := r.order()
				waitFor(t, 30*time.Second, "the agent to die as the upload is answered", k.killed.Load)
				select {
				case err := <-r.start("wrong-key", nil):
					if !errors.Is(err, agent.ErrPrinterAuth) {
						t.Fatalf("got %v, want the printer's refusal of the key", err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("the agent kept running with a key the printer refuses")
				}
				// The printer prints the job: it must not have been handed back.
				if v := r.job(id); v.State != "printing" || !r.printing(id) {
					t.Fatalf("after the refused key: the hub says %s, the printer printing it: %v; want both printing", v.State, r.printing(id))
				}
				r.start("printer-key", nil)
				r.waitJob(id, "done", true)
				r.checkInvariant(id)
				if p := r.ours(id); len(p) != 1 {
					t.Fatalf("physical prints of the job: got %+v, want exactly one", p)
				}
			})

			for _, step := range killSteps {
				t.Run("killed "+step, func(t *testing.T) {
					t.Parallel()
					newRig(t, api, kind).killAtAndResume(step)
				})
			}
		})
	}
}

// killSteps are the points at which an agent dies in the kill tests.
var killSteps = []string{
	"claimed",             // the hub assigned the job; the answer never reached the journal
	"downloading",         // the file was being fetched
	"started-reported",    // the hub heard "started"; the journal did not
	"before-upload",       // the journal says starting; nothing reached the printer
	"upload-answer-lost",  // the printer took the file and started; the agent never heard
	"printing",            // mid-print
	"finished-unreported", // the printer finished; the hub was not told
	"finished-reported",   // the hub heard "finished"; the journal still holds the job
}

// killer ends the agent's goroutine at one step, once, as if its process were killed.
type killer struct {
	step   string
	killed atomic.Bool
}

func (k *killer) at(step string) {
	if step == k.step && k.killed.CompareAndSwap(false, true) {
		runtime.Goexit()
	}
}

// watchedDriver counts the times the printer was found busy.
type watchedDriver struct {
	agent.Driver
	busy *atomic.Int32
}

func (d *watchedDriver) Ready(ctx context.Context) error {
	err := d.Driver.Ready(ctx)
	if errors.Is(err, agent.ErrPrinterBusy) {
		d.busy.Add(1)
	}
	return err
}

type killingDriver struct {
	agent.Driver
	k *killer
}

func (d *killingDriver) Start(ctx context.Context, p agent.Print, file string) error {
	d.k.at("before-upload")
	err := d.Driver.Start(ctx, p, file)
	d.k.at("upload-answer-lost")
	return err
}

func (d *killingDriver) Status(ctx context.Context, p agent.Print) (agent.Status, error) {
	st, err := d.Driver.Status(ctx, p)
	switch st.State {
	case agent.PrinterPrinting:
		d.k.at("printing")
	case agent.PrinterFinished:
		d.k.at("finished-unreported")
	}
	return st, err
}

type killingTransport struct{ k *killer }

func (t *killingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var kind string
	if req.Body != nil && strings.HasSuffix(req.URL.Path, "/events") {
		b, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(b))
		var ev agentapi.EventRequest
		json.Unmarshal(b, &ev)
		kind = ev.Kind
	}
	if strings.HasSuffix(req.URL.Path, "/file") {
		t.k.at("downloading")
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	switch {
	case err == nil && resp.StatusCode == 200 && strings.HasSuffix(req.URL.Path, "/agent/poll"):
		t.k.at("claimed")
	case err == nil && kind == agentapi.EventStarted:
		t.k.at("started-reported")
	case err == nil && kind == agentapi.EventFinished:
		t.k.at("finished-reported")
	}
	return resp, err
}
