package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/storage/externaltest"
	"github.com/fabcommons/fabcommons/storage/localblob"
	"github.com/fabcommons/fabcommons/storage/mongo"
	"github.com/fabcommons/fabcommons/storage/sqlite"
)

// hubStores is one hub's view of a shared database.
type hubStores struct {
	accounts account.Store
	catalog  catalog.Store
	fab      fabrication.Store
}

// startHub runs a whole hub over the given stores on a real loopback HTTP server.
func startHub(t *testing.T, st hubStores, blobs storage.Blobs, recheck time.Duration) string {
	t.Helper()
	hub, err := NewHub(HubConfig{Web: Config{PollWait: 2 * time.Second, PollRecheck: recheck, SignupsPerHour: 1000},
		Accounts: account.Options{Argon2: cheapArgon}}, Stores{Accounts: st.accounts, Catalog: st.catalog, Fabrication: st.fab, Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(hub.Handler)
	t.Cleanup(ts.Close)
	return ts.URL
}

type httpClient struct {
	base string
	c    *http.Client
}

func (h httpClient) call(method, path, token string, body any, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.base+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 && resp.StatusCode != http.StatusNoContent {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// exercise50Agents runs 50 simulated agents, spread over the hubs, until 2,000 jobs are
// done, and checks that no job was ever held by two machines at once, none was lost
// and each was finished exactly once.
func exercise50Agents(t *testing.T, hubs []string, jobs int) {
	ctx := context.Background()
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	first := httpClient{base: hubs[0], c: cl}
	var tok struct {
		Token struct{ Secret string } `json:"token"`
	}
	if code, err := first.call("POST", "/api/v1/users", "", map[string]string{"handle": "ada", "email": "ada@example.org", "password": "correct horse battery"}, nil); code != 201 {
		t.Fatalf("sign up: %d %v", code, err)
	}
	first.call("POST", "/api/v1/tokens", "", map[string]string{"handle": "ada", "password": "correct horse battery", "name": "load"}, &tok)
	owner := tok.Token.Secret
	// Publish through the router helper's multipart writer, over real HTTP.
	body := newMultipart().field("meta", map[string]any{"title": "Cube", "license": "CC0-1.0"}).file("files", "cube.stl", cubeSTL).done()
	req, _ := http.NewRequest("POST", hubs[0]+"/api/v1/designs", bytes.NewReader(body.buf.Bytes()))
	req.Header.Set("Content-Type", body.contentType)
	req.Header.Set("Authorization", "Bearer "+owner)
	if resp, err := cl.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("publish: %v %v", resp, err)
	}
	if code, err := first.call("POST", "/api/v1/labs", owner, map[string]any{"slug": "farm", "name": "Print farm"}, nil); code != 201 {
		t.Fatalf("lab: %d %v", code, err)
	}
	var jt struct {
		JoinToken struct{ Secret string } `json:"join_token"`
	}
	first.call("POST", "/api/v1/labs/farm/join-tokens", owner, map[string]string{"name": "farm"}, &jt)
	for placed := 0; placed < jobs; placed += 100 {
		if code, err := first.call("POST", "/api/v1/orders", owner, map[string]any{"lab": "farm", "design": "cube", "quantity": 100}, nil); code != 201 {
			t.Fatalf("order: %d %v", code, err)
		}
	}

	var mu sync.Mutex
	holder := map[string]int{}   // job -> agent holding it now
	finished := map[string]int{} // job -> times finished
	var violations, done atomic.Int64
	deadline := time.Now().Add(5 * time.Minute)
	var wg sync.WaitGroup
	for a := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hub := httpClient{base: hubs[a%len(hubs)], c: cl}
			var enr struct{ Token string }
			caps := map[string]any{"process": "fdm", "build_volume": []float64{200, 200, 200}, "driver": "sim"}
			if code, err := hub.call("POST", "/api/v1/agent/register", "", map[string]any{"join_token": jt.JoinToken.Secret, "name": fmt.Sprint("agent ", a), "capabilities": caps}, &enr); code != 201 {
				t.Errorf("register: %d %v", code, err)
				return
			}
			for done.Load() < int64(jobs) && time.Now().Before(deadline) {
				var poll struct {
					Job   *struct{ ID string }
					Lease string
				}
				code, err := hub.call("POST", "/api/v1/agent/poll", enr.Token, map[string]any{"protocol": agentapi.Protocol, "state": "idle", "jobs": []any{}, "wait_s": 1}, &poll)
				if err != nil || (code != 200 && code != 204) {
					t.Errorf("poll: %d %v", code, err)
					return
				}
				if poll.Job == nil {
					continue
				}
				id := poll.Job.ID
				mu.Lock()
				if other, held := holder[id]; held {
					violations.Add(1)
					t.Errorf("job %s given to agent %d while agent %d holds it", id, a, other)
				}
				holder[id] = a
				mu.Unlock()
				for _, kind := range []string{"started", "finished"} {
					if code, err := hub.call("POST", "/api/v1/agent/jobs/"+id+"/events", enr.Token, map[string]any{"lease": poll.Lease, "kind": kind}, nil); code != 200 {
						t.Errorf("%s %s: %d %v", kind, id, code, err)
						return
					}
				}
				mu.Lock()
				delete(holder, id)
				finished[id]++
				mu.Unlock()
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if int(done.Load()) != jobs || len(finished) != jobs || violations.Load() != 0 {
		t.Fatalf("got %d finishes of %d distinct jobs (want %d each once), %d double assignments", done.Load(), len(finished), jobs, violations.Load())
	}
	for id, n := range finished {
		if n != 1 {
			t.Fatalf("job %s finished %d times", id, n)
		}
	}
	var lab fabrication.LabView
	first.call("GET", "/api/v1/labs/farm", "", nil, &lab)
	if len(lab.Queue) != 0 || len(lab.Active) != 0 {
		t.Fatalf("after the run: %d queued, %d active, want none", len(lab.Queue), len(lab.Active))
	}
	_ = ctx
}

func sqliteHubStores(t *testing.T, path string) hubStores {
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return hubStores{db.Accounts(), db.Catalog(), db.Fabrication()}
}

func mongoHubStores(t *testing.T, uri, name string) hubStores {
	db, err := mongo.OpenDatabase(context.Background(), uri, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Drop(context.Background()); db.Close() })
	return hubStores{db.Accounts(), db.Catalog(), db.Fabrication()}
}

func TestFiftyAgentsTwoThousandJobs(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("the 2,000-job run is skipped with -short")
	}
	for _, hubCount := range []int{1, 2} {
		t.Run(fmt.Sprintf("sqlite/%d-hubs", hubCount), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			blobs, err := localblob.Open(filepath.Join(dir, "blobs"))
			if err != nil {
				t.Fatal(err)
			}
			var hubs []string
			for range hubCount { // several hubs: each its own connection pools on one file
				hubs = append(hubs, startHub(t, sqliteHubStores(t, filepath.Join(dir, "shared.db")), blobs, 50*time.Millisecond))
			}
			exercise50Agents(t, hubs, 2000)
		})
	}
}

// TestFiftyAgentsMongoDB runs the same check against the MongoDB-wire server. It runs
// alone rather than in parallel: FerretDB reads a whole collection for every query
// but a lookup by _id (the queue read takes most of a second at 2,000 jobs), and its
// SQLite backend serializes writes.
func TestFiftyAgentsMongoDB(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	uri := externaltest.NeedMongoDB(t)
	for _, hubCount := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d-hubs", hubCount), func(t *testing.T) {
			blobs, err := localblob.Open(filepath.Join(t.TempDir(), "blobs"))
			if err != nil {
				t.Fatal(err)
			}
			name := externaltest.UniqueName("load_")
			var hubs []string
			for range hubCount { // several hubs: each its own client on one database
				hubs = append(hubs, startHub(t, mongoHubStores(t, uri, name), blobs, 3*time.Second))
			}
			exercise50Agents(t, hubs, 2000)
		})
	}
}
