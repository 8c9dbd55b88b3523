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

// prusaRig is a PrusaLink protocol test server and a way to open drivers on it: a
// second driver on the same server is an agent that restarted.
type prusaRig struct {
	srv  *protocoltest.PrusaLink
	open func(c PrusaLinkConfig) *PrusaLink
}

func setupPrusaLink(t *testing.T) prusaRig {
	t.Helper()
	srv := protocoltest.NewPrusaLink("secret-key", "maker", "right-password")
	t.Cleanup(srv.Close)
	return prusaRig{srv: srv, open: func(c PrusaLinkConfig) *PrusaLink {
		t.Helper()
		c.URL = srv.URL
		if c.APIKey == "" && c.User == "" {
			c.APIKey = "secret-key"
		}
		d, err := NewPrusaLink(c)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}}
}

func TestPrusaLink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	file, data := writeGcode(t)
	a1 := Print{Job: "j1", Attempt: 1}

	t.Run("upload and print to the end; a restarted agent finds the end", func(t *testing.T) {
		t.Parallel()
		r := setupPrusaLink(t)
		d := r.open(PrusaLinkConfig{})
		if err := d.Ready(ctx); err != nil {
			t.Fatalf("an idle printer: got %v, want ready", err)
		}
		wantStatus(t, d, a1, PrinterGone, false)
		if err := d.Start(ctx, a1, file); err != nil {
			t.Fatal(err)
		}
		if got, ok := r.srv.Uploaded(printerFileName(a1)); !ok || !bytes.Equal(got, data) {
			t.Fatalf("the printer got %d bytes (uploaded %v), want the %d of the file", len(got), ok, len(data))
		}
		if err := d.Ready(ctx); !errors.Is(err, ErrPrinterBusy) || !strings.Contains(err.Error(), printerFileName(a1)) {
			t.Fatalf("while printing: Ready got %v, want ErrPrinterBusy naming the file", err)
		}
		r.srv.Advance(0.42)
		if st := wantStatus(t, d, a1, PrinterPrinting, false); st.Progress < 41.9 || st.Progress > 42.1 {
			t.Fatalf("printing: got %v%%, want 42%%", st.Progress)
		}
		r.srv.Complete()
		wantStatus(t, d, a1, PrinterFinished, false)
		if err := d.Ready(ctx); err != nil {
			t.Fatalf("finished: got %v, want ready for the next print", err)
		}
		// An agent that restarted knows nothing but the journal: the printer's job,
		// kept until the end is acknowledged, says how the print ended.
		wantStatus(t, r.open(PrusaLinkConfig{}), a1, PrinterFinished, false)
		r.srv.Acknowledge()
		st := wantStatus(t, r.open(PrusaLinkConfig{}), a1, PrinterUnknown, false)
		if !strings.Contains(st.Message, "no record") {
			t.Fatalf("message: got %q, want why the outcome is unknown", st.Message)
		}
		if got := ours(r.srv, a1); len(got) != 1 || got[0].Outcome != protocoltest.OutcomeCompleted {
			t.Fatalf("physical prints: got %+v, want one completed", got)
		}
	})

	t.Run("a restarted agent resumes tending a print still running", func(t *testing.T) {
		t.Parallel()
		r := setupPrusaLink(t)
		if err := r.open(PrusaLinkConfig{}).Start(ctx, a1, file); err != nil {
			t.Fatal(err)
		}
		d := r.open(PrusaLinkConfig{}) // the agent restarted
		r.srv.Advance(0.5)
		if st := wantStatus(t, d, a1, PrinterPrinting, false); st.Progress != 50 {
			t.Fatalf("progress: got %v, want 50", st.Progress)
		}
		r.srv.Pause()
		wantStatus(t, d, a1, PrinterPrinting, false)
		if err := d.Cancel(ctx, a1); err != nil || r.srv.Cancels() != 1 {
			t.Fatalf("cancel of a paused print: got %v and %d stops, want nil and 1", err, r.srv.Cancels())
		}
		wantStatus(t, d, a1, PrinterFailed, true)
		if n := len(ours(r.srv, a1)); n != 1 {
			t.Fatalf("physical prints: %d, want 1", n)
		}
	})

	t.Run("PrusaLink's source forgets an ended job at once", func(t *testing.T) {
		t.Parallel()
		r := setupPrusaLink(t)
		r.srv.SetForgetEndedJobs(true)
		d := r.open(PrusaLinkConfig{})
		if err := d.Start(ctx, a1, file); err != nil {
			t.Fatal(err)
		}
		r.srv.Complete()
		// The job is gone; the printer says FINISHED, and this driver saw the print
		// as the job.
		wantStatus(t, d, a1, PrinterFinished, false)
		st := wantStatus(t, r.open(PrusaLinkConfig{}), a1, PrinterUnknown, false)
		if !strings.Contains(st.Message, "no record") {
			t.Fatalf("a restarted agent: got %q, want why the outcome is unknown", st.Message)
		}

		a2 := Print{Job: "j2", Attempt: 1}
		if err := d.Start(ctx, a2, file); err != nil {
			t.Fatal(err)
		}
		r.srv.Fail("Thermal runaway")
		if st := wantStatus(t, d, a2, PrinterFailed, false); !strings.Contains(st.Message, "Thermal runaway") {
			t.Fatalf("message: got %q, want the printer's reason", st.Message)
		}
	})

	t.Run("error and stop end in failed", func(t *testing.T) {
		t.Parallel()
		r := setupPrusaLink(t)
		d := r.open(PrusaLinkConfig{})
		if err := d.Start(ctx, a1, file); err != nil {
			t.Fatal(err)
		}
		r.srv.Advance(0.3)
		r.srv.Fail("Heater extruder not heating at expected rate")
		st := wantStatus(t, d, a1, PrinterFailed, false)
		if !strings.Contains(st.Message, "Heater extruder") {
			t.Fatalf("message: got %q, want the printer's reason", st.Message)
		}
		if err := d.Ready(ctx); !errors.Is(err, ErrPrinterBusy) || !strings.Contains(err.Error(), "Heater extruder") {
			t.Fatalf("in error: Ready got %v, want ErrPrinterBusy with the reason", err)
		}
		r.srv.Recover()
		a2 := Print{Job: "j1", Attempt: 2}
		wantStatus(t, d, a2, PrinterGone, false)
		if err := d.Start(ctx, a2, file); err != nil {
			t.Fatalf("the retry: %v", err)
		}
		r.srv.CancelAtPrinter()
		wantStatus(t, d, a2, PrinterFailed, true)
	})

	t.Run("cancel through the agent", func(t *testing.T) {
		t.Parallel()
		r := setupPrusaLink(t)
		d := r.open(PrusaLinkConfig{})
		if err := d.Start(ctx, a1, file); err != nil {
			t.Fatal(err)
		}
		if err := d.Cancel(ctx, Print{Job: "other", Attempt: 1}); err != nil || r.srv.Cancels() != 0 {
			t.Fatalf("canceling a print that is not the job: got %v and %d stops, want nil and 0", err, r.srv.Cancels())
		}
		if err := d.Cancel(ctx, a1); err != nil || r.srv.Cancels() != 1 {
			t.Fatalf("cancel: got %v and %d stops, want nil and 1", err, r.srv.Cancels())
		}
		wantStatus(t, d, a1, PrinterFailed, true)
		if err := d.Cancel(ctx, a1); err != nil || r.srv.Cancels() != 1 {
			t.Fatalf("a second cancel: got %v and %d stops, want nil and still 1", err, r.srv.Cancels())
		}
	})

	t.Run("busy: 409 and the file taken back", func(t *testing.T) {
		t.Parallel()
		r := setupPrusaLink(t)
		d := r.open(PrusaLinkConfig{})
		r.srv.StartOther("benchy.gcode")
		if err := d.Ready(ctx); !errors.Is(err, ErrPrinterBusy) || !strings.Contains(err.Error(), "benchy") {
			t.Fatalf("Ready: got %v, want ErrPrinterBusy naming the other print", err)
		}
		if err := d.Start(ctx, a1, file); !errors.Is(err, ErrPrinterBusy) {
			t.Fatalf("Start: got %v, want ErrPrinterBusy", err)
		}
		if _, ok := r.srv.Uploaded(printerFileName(a1)); ok {
			t.Fatal("the file refused printing stayed on the printer, where someone could start it")
		}
		wantStatus(t, d, a1, PrinterGone, false)
		r.srv.Complete()
		if n := len(ours(r.srv, a1)); n != 0 {
			t.Fatalf("the refused job was printed %d times, want 0", n)
		}
	})

	t.Run("a wrong API key", func(t *testing.T) {
		t.Parallel()
		r := setupPrusaLink(t)
		d := r.open(PrusaLinkConfig{APIKey: "wrong-key"})
		for what, err := range map[string]error{
			"ready":  d.Ready(ctx),
			"start":  d.Start(ctx, a1, file),
			"cancel": d.Cancel(ctx, a1),
		} {
			if !errors.Is(err, ErrPrinterAuth) || !strings.Contains(err.Error(), "API key") || statusOf(err) != http.StatusForbidden {
				t.Errorf("%s: got %v, want PrusaLink's 403 as ErrPrinterAuth naming the key", what, err)
			}
		}
		if len(r.srv.Prints()) != 0 {
			t.Fatalf("printed with a wrong key: %+v", r.srv.Prints())
		}
	})

	t.Run("digest authentication", func(t *testing.T) {
		t.Parallel()
		r := setupPrusaLink(t)
		d := r.open(PrusaLinkConfig{User: "maker", Password: "right-password"})
		if err := d.Ready(ctx); err != nil {
			t.Fatalf("ready, the first call meeting the challenge: %v", err)
		}
		// PrusaLink's nonces last 60 s: the upload meets stale=true and goes again,
		// read from the file anew.
		r.srv.ExpireNonces()
		if err := d.upload(ctx, printerFileName(a1), file); err != nil {
			t.Fatalf("an upload sent again after a stale nonce: %v", err)
		}
		if got, ok := r.srv.Uploaded(printerFileName(a1)); !ok || !bytes.Equal(got, data) {
			t.Fatalf("the printer got %d bytes, want the %d of the file", len(got), len(data))
		}
		wantStatus(t, d, a1, PrinterPrinting, false)
		r.srv.ExpireNonces()
		wantStatus(t, d, a1, PrinterPrinting, false)
		if err := d.Cancel(ctx, a1); err != nil || r.srv.Cancels() != 1 {
			t.Fatalf("cancel: got %v and %d stops, want nil and 1", err, r.srv.Cancels())
		}
		a2 := Print{Job: "j2", Attempt: 1}
		if err := d.Start(ctx, a2, file); err != nil {
			t.Fatalf("start: %v", err)
		}
		wantStatus(t, d, a2, PrinterPrinting, false)

		bad := r.open(PrusaLinkConfig{User: "maker", Password: "wrong"})
		for what, err := range map[string]error{
			"ready": bad.Ready(ctx),
			"start": bad.Start(ctx, Print{Job: "j3", Attempt: 1}, file),
		} {
			if !errors.Is(err, ErrPrinterAuth) || statusOf(err) != http.StatusUnauthorized || !strings.Contains(err.Error(), "user and password") {
				t.Errorf("a wrong password, %s: got %v, want PrusaLink's 401 as ErrPrinterAuth naming the user and password", what, err)
			}
		}
		if _, ok := r.srv.Uploaded(printerFileName(Print{Job: "j3", Attempt: 1})); ok {
			t.Error("a file went up with a wrong password")
		}
	})

	t.Run("digest authentication with MD5-sess", func(t *testing.T) {
		t.Parallel()
		r := setupPrusaLink(t)
		r.srv.SetDigestSess(true)
		d := r.open(PrusaLinkConfig{User: "maker", Password: "right-password"})
		if err := d.Start(ctx, a1, file); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, d, a1, PrinterPrinting, false)
	})

	t.Run("the printer restarted mid-print", func(t *testing.T) {
		t.Parallel()
		r := setupPrusaLink(t)
		d := r.open(PrusaLinkConfig{})
		if err := d.Start(ctx, a1, file); err != nil {
			t.Fatal(err)
		}
		r.srv.Advance(0.6)
		r.srv.Restart()
		// The file is there and no job names it: part of a print may be on the bed,
		// which only a person can judge. Not gone (it would be printed again), not failed.
		wantStatus(t, d, a1, PrinterUnknown, false)
		wantStatus(t, r.open(PrusaLinkConfig{}), a1, PrinterUnknown, false)
	})

	t.Run("a start shown a moment after the upload", func(t *testing.T) {
		t.Parallel()
		r := setupPrusaLink(t)
		r.srv.SetHoldStarts(true)
		d := r.open(PrusaLinkConfig{})
		if err := d.Start(ctx, a1, file); err != nil {
			t.Fatal(err)
		}
		// Not unknown, not gone: the agent waits (bounded by its settle limit).
		if st := wantStatus(t, d, a1, PrinterPrinting, false); !st.Settling {
			t.Fatalf("before the start shows: got %+v, want settling", st)
		}
		r.srv.ReleaseStart()
		if st := wantStatus(t, d, a1, PrinterPrinting, false); st.Settling {
			t.Fatalf("printing: got %+v, want not settling", st)
		}
		r.srv.Complete()
		wantStatus(t, d, a1, PrinterFinished, false)
	})

	t.Run("a storage the printer does not have: 404", func(t *testing.T) {
		t.Parallel()
		r := setupPrusaLink(t)
		d := r.open(PrusaLinkConfig{Storage: "usb"}) // the stand-in is PrusaLink on a Pi: local only
		err := d.Start(ctx, a1, file)
		if statusOf(err) != http.StatusNotFound || !strings.Contains(err.Error(), `no storage "usb"`) || !strings.Contains(err.Error(), "--prusalink-storage") {
			t.Fatalf("got %v, want the 404 explained with the setting to change", err)
		}
		if len(r.srv.Prints()) != 0 {
			t.Fatalf("printed: %+v", r.srv.Prints())
		}
	})

	t.Run("a mesh is refused", func(t *testing.T) {
		t.Parallel()
		r := setupPrusaLink(t)
		stl := filepath.Join(t.TempDir(), "part.stl")
		os.WriteFile(stl, []byte("solid x\nendsolid x\n"), 0o600)
		if err := r.open(PrusaLinkConfig{}).Start(ctx, a1, stl); err == nil || !strings.Contains(err.Error(), "slicer") {
			t.Fatalf("got %v, want an error naming the slicer", err)
		}
	})
}

// The stand-in's answers to what the driver never sends, as PrusaLink gives them.
func TestPrusaLinkServerAnswers(t *testing.T) {
	t.Parallel()
	srv := protocoltest.NewPrusaLink("k", "maker", "pw")
	t.Cleanup(srv.Close)
	put := func(name string, body *strings.Reader, hide bool, header map[string]string) int {
		t.Helper()
		var req *http.Request
		if hide {
			req, _ = http.NewRequest("PUT", srv.URL+"/api/v1/files/local/"+name, struct{ *strings.Reader }{body})
		} else {
			req, _ = http.NewRequest("PUT", srv.URL+"/api/v1/files/local/"+name, body)
		}
		req.Header.Set("X-Api-Key", "k")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		what   string
		status int
		name   string
		hide   bool
		header map[string]string
		state  string
	}{
		{"no Content-Length", http.StatusLengthRequired, "a.gcode", true, nil, "IDLE"},
		{"Print-After-Upload ?0 stores only", http.StatusCreated, "b.gcode", false, map[string]string{"Print-After-Upload": "?0"}, "IDLE"},
		{"Print-After-Upload true is not ?1", http.StatusCreated, "c.gcode", false, map[string]string{"Print-After-Upload": "true"}, "IDLE"},
		{"an existing file without Overwrite", http.StatusConflict, "b.gcode", false, nil, "IDLE"},
		{"not G-code", http.StatusUnsupportedMediaType, "d.txt", false, nil, "IDLE"},
		{"Print-After-Upload ?1 prints", http.StatusCreated, "e.gcode", false, map[string]string{"Print-After-Upload": "?1"}, "PRINTING"},
		{"busy", http.StatusConflict, "f.gcode", false, map[string]string{"Print-After-Upload": "?1"}, "PRINTING"},
	}
	for _, c := range cases {
		if got := put(c.name, strings.NewReader("G28\n"), c.hide, c.header); got != c.status {
			t.Errorf("%s: got %d, want %d", c.what, got, c.status)
		}
		if state, _ := srv.State(); state != c.state {
			t.Errorf("%s: the printer is %s, want %s", c.what, state, c.state)
		}
	}
	// A job id that is not the current job's: 404 "Not Current Job".
	req, _ := http.NewRequest("DELETE", srv.URL+"/api/v1/job/999", nil)
	req.Header.Set("X-Api-Key", "k")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("stop of another job: got %d, want 404", resp.StatusCode)
	}
	// No credentials: 401 with a digest challenge.
	resp, err = http.Get(srv.URL + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(ch, "Digest ") || !strings.Contains(ch, `realm="Administrator"`) {
		t.Errorf("no credentials: got %d %q, want 401 with a digest challenge", resp.StatusCode, ch)
	}
}

func TestNewPrusaLinkRefusesBadSettings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		c    PrusaLinkConfig
		want string
	}{
		{PrusaLinkConfig{URL: "mk4.local", APIKey: "k"}, "not an http(s) URL"},
		{PrusaLinkConfig{URL: "http://mk4.local"}, "needs an API key, or a user and password"},
		{PrusaLinkConfig{URL: "http://mk4.local", APIKey: "k", User: "maker", Password: "pw"}, "not both"},
		{PrusaLinkConfig{URL: "http://mk4.local", User: "maker"}, "both a user and a password"},
		{PrusaLinkConfig{URL: "http://mk4.local", Password: "pw"}, "both a user and a password"},
		{PrusaLinkConfig{URL: "http://mk4.local", User: `ma"ker`, Password: "pw"}, "quote"},
		{PrusaLinkConfig{URL: "http://mk4.local", APIKey: "k", Storage: "sdcard"}, "read-only"},
		{PrusaLinkConfig{URL: "http://mk4.local", APIKey: "k", Storage: "usb/gcodes"}, "not a storage name"},
	}
	for _, c := range cases {
		if _, err := NewPrusaLink(c.c); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewPrusaLink(%+v): got %v, want an error containing %q", c.c, err, c.want)
		}
	}
	if d, err := NewPrusaLink(PrusaLinkConfig{URL: "http://mk4.local", APIKey: "k"}); err != nil || d.storage != "local" {
		t.Fatalf("defaults: got %v, %v, want the local storage", d, err)
	}
}

func TestDigestChallenges(t *testing.T) {
	t.Parallel()
	cases := []struct {
		challenge string
		again     bool
		err       string
	}{
		{`Digest realm="Administrator", qop="auth", nonce="n1", opaque="o"`, true, ""},
		{`Digest realm="A", qop="auth,auth-int", algorithm=MD5-sess, nonce="n2"`, true, ""},
		{`Digest realm="A", nonce="n3"`, true, ""}, // RFC 2069: no qop
		{`Digest realm="A", qop="auth", nonce="used"`, false, ""},
		{`Digest realm="A", qop="auth", algorithm=SHA-256, nonce="n4"`, false, "SHA-256"},
		{`Digest realm="A", qop="auth-int", nonce="n5"`, false, "auth-int"},
		{`Digest realm="A", qop="auth"`, false, "no nonce"},
		{`Basic realm="A"`, false, ""},
	}
	for _, c := range cases {
		d, _ := newDigestAuth("maker", "pw")
		h := http.Header{"Www-Authenticate": {c.challenge}}
		again, err := d.learn(h, "used")
		if again != c.again || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: got %v, %v, want %v and an error containing %q", c.challenge, again, err, c.again, c.err)
		}
	}
	got := digestParams(`realm="a \"quoted\" realm", nonce=abc , qop="auth"`)
	if got["realm"] != `a "quoted" realm` || got["nonce"] != "abc" || got["qop"] != "auth" {
		t.Errorf("digestParams: got %v", got)
	}
}
