package web

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/agent"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

// TestAgentContract runs the real agent client against the real hub handler, for every
// call of agentapi.Hub and every outcome its comment lists, and checks that the client
// turns each answer into what the agent acts on.
func TestAgentContract(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	ctx := context.Background()
	var hub agentapi.Hub = agent.NewClient(srv.URL, "")
	status := func(err error) int {
		var he *agent.HubError
		if errors.As(err, &he) {
			return he.Status
		}
		return 0
	}
	want := func(call string, err error, code int, kind error) {
		t.Helper()
		if status(err) != code || (kind != nil && !errors.Is(err, kind)) {
			t.Fatalf("%s: got %v (status %d), want %d (%v)", call, err, status(err), code, kind)
		}
	}

	// Enroll: 200; 403 for a used or unknown code; 429 after many wrong codes.
	r := f.do(t, call{method: "POST", path: "/api/v1/labs/makerspace/machines", header: f.owner, body: map[string]any{
		"name": "Contract", "process": "fdm", "build_volume": map[string]float64{"x": 200, "y": 200, "z": 200}}})
	r.want(t, 201, "")
	code := r.json["enrollment_code"].(string)
	e, err := hub.Enroll(ctx, code)
	if err != nil || e.Token == "" || e.Lab != "makerspace" {
		t.Fatalf("enroll: got %+v, %v", e, err)
	}
	_, err = hub.Enroll(ctx, code)
	want("enroll with a used code", err, http.StatusForbidden, agent.ErrRefused)

	// Register: 201; 422 for a bad capability; 403 for a revoked join token.
	r = f.do(t, call{method: "POST", path: "/api/v1/labs/makerspace/join-tokens", header: f.owner, body: map[string]string{"name": "shelf"}})
	r.want(t, 201, "")
	join := r.json["join_token"].(map[string]any)
	caps := agentapi.Capabilities{Process: "fdm", BuildVolume: [3]float64{220, 220, 250}, Driver: "sim"}
	registrar := agent.NewClient(srv.URL, "")
	if e, err := registrar.Register(ctx, agentapi.RegisterRequest{JoinToken: join["secret"].(string), Name: "Shelf 1", Capabilities: caps}); err != nil || e.Token == "" {
		t.Fatalf("register: got %+v, %v", e, err)
	}
	bad := caps
	bad.Process = "knitting"
	_, err = registrar.Register(ctx, agentapi.RegisterRequest{JoinToken: join["secret"].(string), Name: "Shelf 2", Capabilities: bad})
	want("register with a bad capability", err, http.StatusUnprocessableEntity, agent.ErrRefused)
	f.do(t, call{method: "DELETE", path: "/api/v1/labs/makerspace/join-tokens/" + join["id"].(string), header: f.owner}).want(t, 204, "")
	_, err = registrar.Register(ctx, agentapi.RegisterRequest{JoinToken: join["secret"].(string), Name: "Shelf 3", Capabilities: caps})
	want("register with a revoked join token", err, http.StatusForbidden, agent.ErrRefused)
	for range 25 { // the hub allows 20 wrong codes or join tokens per address in 10 minutes
		_, err = hub.Enroll(ctx, "WRNG-CODE-WRNG-CODE")
	}
	want("enroll after many wrong codes", err, http.StatusTooManyRequests, agent.ErrRefused)

	// Poll: 204 (nil) without work; 200 with a job; 401 for an unknown token; 426 for
	// another protocol.
	machine := agent.NewClient(srv.URL, e.Token)
	if resp, err := machine.Poll(ctx, agentapi.PollRequest{State: agentapi.StateIdle, WaitSeconds: 1}); err != nil || resp != nil {
		t.Fatalf("poll without work: got %+v, %v, want nil, nil (204)", resp, err)
	}
	f.order(t, map[string]any{"files": []string{"parts/base.stl"}})
	if resp, err := machine.Poll(ctx, agentapi.PollRequest{State: agentapi.StateBusy}); err != nil || resp != nil {
		t.Fatalf("a busy poll with work queued: got %+v, %v, want nil (204)", resp, err)
	}
	job, err := machine.Poll(ctx, agentapi.PollRequest{State: agentapi.StateIdle, WaitSeconds: 1})
	if err != nil || job == nil || job.Job == nil || job.Lease == "" || job.FileURL != agentapi.JobPath(agentapi.PathJobFile, job.Job.ID) || job.HeartbeatS <= 0 {
		t.Fatalf("poll with work: got %+v, %v", job, err)
	}
	_, err = agent.NewClient(srv.URL, "fab_m_unknown").Poll(ctx, agentapi.PollRequest{State: agentapi.StateIdle})
	want("poll with an unknown token", err, http.StatusUnauthorized, agent.ErrUnauthorized)
	old := agent.NewClient(srv.URL, e.Token)
	old.Protocol = agentapi.Protocol - 1
	_, err = old.Poll(ctx, agentapi.PollRequest{State: agentapi.StateIdle})
	want("poll in another protocol", err, http.StatusUpgradeRequired, agent.ErrProtocol)

	// Download: 200 with the bytes checked; 409 for a wrong lease; 403 for a job of
	// another lab.
	dst := filepath.Join(t.TempDir(), "part.stl")
	if err := machine.Download(ctx, job.FileURL, job.Lease, job.Job.SHA256, dst, nil); err != nil {
		t.Fatalf("download: %v", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != string(cubeSTL) {
		t.Fatalf("download: got %d bytes, want the cube", len(b))
	}
	err = machine.Download(ctx, job.FileURL, "fab_l_wrong", job.Job.SHA256, dst, nil)
	want("download with a wrong lease", err, http.StatusConflict, agent.ErrStale)
	err = machine.Download(ctx, "https://elsewhere.example/file", job.Lease, job.Job.SHA256, dst, nil)
	want("download from another origin", err, 0, agent.ErrRefused)

	f.do(t, call{method: "POST", path: "/api/v1/labs", header: f.maker, body: map[string]any{"slug": "elsewhere", "name": "Elsewhere"}}).want(t, 201, "")
	_, otherMachine := f.addMachine(t, "elsewhere", "Other", 200, 200, 200)
	stranger := agent.NewClient(srv.URL, otherMachine["Authorization"][len("Bearer "):])
	err = stranger.Download(ctx, job.FileURL, job.Lease, job.Job.SHA256, dst, nil)
	want("download of another lab's job", err, http.StatusForbidden, agent.ErrRefused)

	// Event: 200; 422 for a bad field; 403 for another lab's job; 409 for a stale lease.
	if resp, err := machine.Event(ctx, job.Job.ID, agentapi.EventRequest{Lease: job.Lease, Kind: agentapi.EventStarted}); err != nil || resp.LeaseExpires.IsZero() || resp.Cancel {
		t.Fatalf("started: got %+v, %v", resp, err)
	}
	_, err = machine.Event(ctx, job.Job.ID, agentapi.EventRequest{Lease: job.Lease, Kind: agentapi.EventProgress, Progress: 140})
	want("progress of 140%", err, http.StatusUnprocessableEntity, agent.ErrRefused)
	_, err = stranger.Event(ctx, job.Job.ID, agentapi.EventRequest{Lease: job.Lease, Kind: agentapi.EventProgress})
	want("an event on another lab's job", err, http.StatusForbidden, agent.ErrRefused)
	_, err = machine.Event(ctx, job.Job.ID, agentapi.EventRequest{Lease: "fab_l_wrong", Kind: agentapi.EventProgress})
	want("an event with a stale lease", err, http.StatusConflict, agent.ErrStale)
	f.do(t, call{method: "POST", path: "/api/v1/jobs/" + job.Job.ID + "/cancel", header: f.maker}).want(t, 200, "")
	if resp, err := machine.Event(ctx, job.Job.ID, agentapi.EventRequest{Lease: job.Lease, Kind: agentapi.EventProgress}); err != nil || !resp.Cancel {
		t.Fatalf("progress on a canceled job: got %+v, %v, want cancel", resp, err)
	}

	// An agent whose protocol the hub does not speak stops, saying so.
	state := t.TempDir()
	journal, err := agent.OpenJournal(state)
	if err != nil {
		t.Fatal(err)
	}
	a := &agent.Agent{Client: old, Driver: &agent.Sim{Dir: state}, Journal: journal, StateDir: state, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, agent.ErrProtocol) {
			t.Fatalf("an agent of another protocol: Run returned %v, want ErrProtocol", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an agent of another protocol kept running")
	}
}
