package web

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

// openStream opens a live stream of changes (query: lab= or order=).
func openStream(t *testing.T, ctx context.Context, base, query string) (*http.Response, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/events?"+query, nil)
	return http.DefaultClient.Do(req)
}

// TestLiveStreamsAreBounded: one client cannot hold more than its share of live
// streams, and a full hub says so at once with Retry-After.
func TestLiveStreamsAreBounded(t *testing.T) {
	t.Parallel()
	b := setupAll(t, Config{MaxStreamsPerClient: 3, MaxEventStreams: 100}, catalog.Limits{}, fabrication.Options{})
	srv := httptest.NewServer(b.h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var open []*http.Response
	for i := range 3 {
		resp, err := openStream(t, ctx, srv.URL, "")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream %d: %v %v", i, resp, err)
		}
		open = append(open, resp)
	}
	resp, err := openStream(t, ctx, srv.URL, "")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a fourth stream from one client: got %v, %v; want 503 with Retry-After", resp, err)
	}
	resp.Body.Close()
	open[0].Body.Close() // one closes: a place frees up once the hub sees it go
	waitUntil(t, 5*time.Second, "a freed place", func() bool {
		resp, err := openStream(t, ctx, srv.URL, "")
		if err != nil {
			return false
		}
		if resp.StatusCode == 200 {
			open = append(open, resp)
			return true
		}
		resp.Body.Close()
		return false
	})
	for _, r := range open[1:] {
		r.Body.Close()
	}
}

// TestLiveStreamsUnderLoad: many subscribers and writers at once (run under -race by
// scripts/test.sh): every subscriber hears every job of its lab, and nothing races.
func TestLiveStreamsUnderLoad(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const subscribers, writers, perWriter = 15, 4, 5
	var ready, done sync.WaitGroup
	seen := make([]map[string]bool, subscribers)
	var mu sync.Mutex
	for i := range subscribers {
		ready.Add(1)
		done.Add(1)
		seen[i] = map[string]bool{}
		go func() {
			defer done.Done()
			resp, err := openStream(t, ctx, srv.URL, "lab=makerspace")
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("subscriber %d: %v %v", i, resp, err)
				ready.Done()
				return
			}
			defer resp.Body.Close()
			ready.Done()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				if at := strings.Index(line, `"order_id":"`); at >= 0 && strings.Contains(line, `"kind":"job"`) {
					id := line[at+len(`"order_id":"`):]
					id = id[:strings.Index(id, `"`)]
					mu.Lock()
					seen[i][id] = true
					n := len(seen[i])
					mu.Unlock()
					if n == writers*perWriter {
						return
					}
				}
			}
		}()
	}
	ready.Wait()
	var orders sync.WaitGroup
	for range writers {
		orders.Add(1)
		go func() {
			defer orders.Done()
			for range perWriter {
				f.order(t, map[string]any{"files": []string{"parts/base.stl"}})
			}
		}()
	}
	// Meanwhile the lab's agent polls and reports, writing to the feed too.
	orders.Add(1)
	go func() {
		defer orders.Done()
		for range 5 {
			if c, _ := f.poll(t, f.machine); c.id != "" {
				f.event(t, f.machine, c, "started", nil)
				f.event(t, f.machine, c, "finished", nil)
			}
		}
	}()
	orders.Wait()
	done.Wait()
	for i, s := range seen {
		if len(s) != writers*perWriter {
			t.Errorf("subscriber %d heard of %d orders, want %d", i, len(s), writers*perWriter)
		}
	}
}

// waitUntil polls cond until it holds or the time is up (a server's goroutine frees the
// place; there is no signal to wait on from here).
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s did not happen", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDrainEndsHeldRequests: Drain answers a held poll 204 and ends a live stream
// cleanly, at once rather than when their minute-long waits end; a poll or stream that
// comes after is ended as soon as it starts.
func TestDrainEndsHeldRequests(t *testing.T) {
	t.Parallel()
	f := newLabWith(t, fabrication.Policy{}, Config{PollWait: time.Minute, PollRecheck: time.Minute})
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	poll := func() (int, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+agentapi.PathPoll, strings.NewReader(fmt.Sprintf(`{"protocol":%d,"state":"idle","jobs":[],"wait_s":60}`, agentapi.Protocol)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", f.machine["Authorization"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return resp.StatusCode, err
	}
	// stream opens a live stream and returns a channel that hears how it ended.
	stream := func() chan error {
		resp, err := openStream(t, ctx, srv.URL, "")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("open stream: got %v, %v", resp, err)
		}
		ended := make(chan error, 1)
		go func() {
			defer resp.Body.Close()
			_, err := io.ReadAll(resp.Body)
			ended <- err
		}()
		return ended
	}

	streamEnded := stream()
	type answer struct {
		status int
		err    error
	}
	polled := make(chan answer, 1)
	go func() { s, err := poll(); polled <- answer{s, err} }()
	start := time.Now()
	f.server.Drain()
	f.server.Drain() // a second call is harmless
	if a := <-polled; a.err != nil || a.status != http.StatusNoContent || time.Since(start) > 10*time.Second {
		t.Errorf("a held poll on Drain: got %d, %v after %s; want 204 at once", a.status, a.err, time.Since(start))
	}
	if err := <-streamEnded; err != nil {
		t.Errorf("a live stream on Drain: got %v, want a clean end", err)
	}
	start = time.Now()
	if status, err := poll(); err != nil || status != http.StatusNoContent || time.Since(start) > 10*time.Second {
		t.Errorf("a poll after Drain: got %d, %v after %s; want 204 at once", status, err, time.Since(start))
	}
	if err := <-stream(); err != nil {
		t.Errorf("a live stream after Drain: got %v, want a clean end", err)
	}
}
