package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

// TestSIGTERMDrainsHeldRequests: with an agent's long poll and a live stream open, a
// SIGTERM makes the hub answer the poll as its wait ending would (204), end the stream
// cleanly and exit at once, not at the end of a 20 s shutdown wait.
func TestSIGTERMDrainsHeldRequests(t *testing.T) {
	t.Parallel()
	const shutdownWait = 20 * time.Second
	h := startHubProcess(t, filepath.Join(t.TempDir(), "data"), "FAB_SHUTDOWN_WAIT="+shutdownWait.String())

	// A person, a lab and an enrolled machine.
	h.call(t, "POST", "/api/v1/users", "", map[string]string{"handle": "ada", "email": "ada@example.org", "password": "correct horse battery"}, nil)
	var tok struct{ Token struct{ Secret string } }
	h.call(t, "POST", "/api/v1/tokens", "", map[string]string{"handle": "ada", "password": "correct horse battery", "name": "drain"}, &tok)
	if code := h.call(t, "POST", "/api/v1/labs", tok.Token.Secret, map[string]any{"slug": "drain", "name": "Drain lab"}, nil); code != http.StatusCreated {
		t.Fatalf("create lab: got %d, want 201", code)
	}
	var added struct {
		EnrollmentCode string `json:"enrollment_code"`
	}
	h.call(t, "POST", "/api/v1/labs/drain/machines", tok.Token.Secret, map[string]any{"name": "mk4", "process": "fdm",
		"build_volume": map[string]float64{"x": 250, "y": 210, "z": 220}, "materials": []string{"PLA"}}, &added)
	var enrolled agentapi.Enrollment
	if code := h.call(t, "POST", agentapi.PathEnroll, "", map[string]string{"code": added.EnrollmentCode}, &enrolled); code != http.StatusOK || !enrolled.Approved {
		t.Fatalf("enrol: got %d %+v, want 200 and an approved machine", code, enrolled)
	}

	// A live stream, open once the hub says so.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.base+"/api/v1/events?lab=drain", nil)
	stream, err := http.DefaultClient.Do(req)
	if err != nil || stream.StatusCode != http.StatusOK {
		t.Fatalf("open stream: got %v, %v; want 200", stream, err)
	}
	defer stream.Body.Close()
	lines := bufio.NewReader(stream.Body)
	for {
		line, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("stream before SIGTERM: %v", err)
		}
		if strings.HasPrefix(line, ": connected") {
			break
		}
	}

	// A long poll that would be held 30 s, longer than the shutdown wait.
	type pollResult struct {
		status int
		body   []byte
		err    error
	}
	polled := make(chan pollResult, 1)
	go func() {
		j, _ := json.Marshal(agentapi.PollRequest{Protocol: agentapi.Protocol, State: agentapi.StateIdle, Jobs: []agentapi.HeldJob{}, WaitSeconds: 30})
		req, _ := http.NewRequestWithContext(ctx, "POST", h.base+agentapi.PathPoll, bytes.NewReader(j))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+enrolled.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			polled <- pollResult{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		polled <- pollResult{status: resp.StatusCode, body: b, err: err}
	}()
	// The poll is in the hub's hands once it marked the machine as heard from.
	for i := 0; ; i++ {
		var lab struct {
			Machines []struct {
				LastSeen *time.Time `json:"last_seen"`
			} `json:"machines"`
		}
		h.call(t, "GET", "/api/v1/labs/drain", "", nil, &lab)
		if len(lab.Machines) == 1 && lab.Machines[0].LastSeen != nil {
			break
		}
		select {
		case r := <-polled:
			t.Fatalf("the poll ended before SIGTERM: got %d %s %v", r.status, r.body, r.err)
		case <-time.After(50 * time.Millisecond):
		}
		if i > 200 {
			t.Fatal("the hub never saw the poll")
		}
	}

	signalled := time.Now()
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.exited:
		if took := time.Since(signalled); h.waitErr != nil || took > 5*time.Second {
			t.Errorf("exit after SIGTERM: got %v after %s, want a clean exit within 5 s (shutdown wait %s)", h.waitErr, took.Round(time.Millisecond), shutdownWait)
		}
	case <-time.After(shutdownWait + 10*time.Second):
		t.Fatalf("fabhub did not exit within %s of SIGTERM", shutdownWait+10*time.Second)
	}

	r := <-polled
	switch {
	case r.err != nil:
		t.Errorf("the held poll: got %v, want an answer", r.err)
	case r.status != http.StatusNoContent && r.status != http.StatusOK:
		t.Errorf("the held poll: got %d %s, want 204 (no work) or 200", r.status, r.body)
	case r.status == http.StatusOK && !json.Valid(r.body):
		t.Errorf("the held poll: got 200 %q, want a JSON answer", r.body)
	}
	if rest, err := io.ReadAll(lines); err != nil {
		t.Errorf("the stream after SIGTERM: got %v (after %q), want a clean end", err, rest)
	}
	if _, err := http.Get(h.base + "/healthz"); err == nil {
		t.Error("a request after the hub exited: got an answer, want a refusal")
	}
}
