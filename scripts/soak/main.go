// Command soak runs a hub (embedded store) with many real fabagent processes on sim
// printers for a long time while orders and uploads keep arriving, kills agents with
// SIGKILL at random and restarts the hub (SIGKILL and SIGTERM in turn), then prints
// the invariants: jobs printed twice, jobs lost, uploads damaged (each must be 0), and
// the hub's memory at the start and the end. scripts/soak.sh runs it; it is not in CI.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
	"github.com/fabcommons/fabcommons/scripts/internal/hubrun"
)

func main() {
	agents := flag.Int("agents", 200, "fabagent processes, each on a sim printer")
	duration := flag.Duration("duration", 30*time.Minute, "how long the load and the kills go on")
	hubEvery := flag.Duration("hub-restart-every", 2*time.Minute, "restart the hub this often (at random, about)")
	agentEvery := flag.Duration("agent-kill-every", 10*time.Second, "SIGKILL a random agent this often (about) and start it again")
	flag.Parse()
	if err := run(*agents, *duration, *hubEvery, *agentEvery); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type soak struct {
	base, token string
	http        *http.Client
	bin         string

	mu       sync.Mutex
	orders   []string
	uploads  map[string]string // slug -> sha256 of its one file
	restarts int
	kills    int
}

func (s *soak) call(method, path string, body, out any) int {
	var r io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, s.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.http.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0
	}
	if out != nil {
		json.Unmarshal(b, out)
	}
	return resp.StatusCode
}

func (s *soak) upload(title string, mesh []byte) (string, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("meta", fmt.Sprintf(`{"title":%q,"license":"CC0-1.0"}`, title))
	fw, _ := mw.CreateFormFile("files", "part.stl")
	fw.Write(mesh)
	mw.Close()
	req, _ := http.NewRequest("POST", s.base+"/api/v1/designs", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var created struct{ Design struct{ Slug string } }
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != 201 {
		return "", fmt.Errorf("upload: %d %v", resp.StatusCode, err)
	}
	return created.Design.Slug, nil
}

func (s *soak) download(path string) ([]byte, int) {
	resp, err := s.http.Get(s.base + path)
	if err != nil {
		return nil, 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0
	}
	return b, resp.StatusCode
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// agentProc is one fabagent process and its state dir (its journal and sim printer).
type agentProc struct {
	state string
	cmd   *exec.Cmd
}

func (s *soak) startAgent(a *agentProc) error {
	a.cmd = exec.Command(filepath.Join(s.bin, "fabagent"), "run", "--state", a.state, "--driver", "sim",
		"--sim-speed", "60", "--sim-seconds", "300", "--log-level", "error")
	return a.cmd.Start()
}

func run(nAgents int, duration, hubEvery, agentEvery time.Duration) error {
	work, err := os.MkdirTemp("", "soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	fmt.Println("building fabhub and fabagent ...")
	for _, c := range []string{"fabhub", "fabagent"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(work, c), "./cmd/"+c).CombinedOutput(); err != nil {
			return fmt.Errorf("build %s (run from the repository root): %v\n%s", c, err, out)
		}
	}
	data := filepath.Join(work, "data")
	hub, err := hubrun.Start(filepath.Join(work, "fabhub"), data, "-lease-ttl", "10s")
	if err != nil {
		return err
	}
	addr := strings.TrimPrefix(hub.Base, "http://")
	s := &soak{base: hub.Base, bin: work, http: &http.Client{Timeout: 30 * time.Second}, uploads: map[string]string{}}
	if s.token, err = hub.SignUp("soak", "soak test password"); err != nil {
		return err
	}
	if _, err := s.upload("Cube", meshtest.Binary("cube", meshtest.Cube([3]float32{0, 0, 0}, 20))); err != nil {
		return err
	}
	if code := s.call("POST", "/api/v1/labs", map[string]any{"slug": "soak", "name": "Soak lab"}, nil); code != 201 {
		return fmt.Errorf("lab: %d", code)
	}
	var jt struct {
		JoinToken struct{ Secret string } `json:"join_token"`
	}
	s.call("POST", "/api/v1/labs/soak/join-tokens", map[string]string{"name": "soak"}, &jt)
	fmt.Printf("registering and starting %d agents ...\n", nAgents)
	agents := make([]*agentProc, nAgents)
	for i := range agents {
		agents[i] = &agentProc{state: filepath.Join(work, fmt.Sprint("agent", i))}
		out, err := exec.Command(filepath.Join(work, "fabagent"), "register", "--hub", s.base, "--join-token", jt.JoinToken.Secret,
			"--name", fmt.Sprint("sim ", i), "--state", agents[i].state, "--process", "fdm", "--build-volume", "200x200x200").CombinedOutput()
		if err != nil {
			return fmt.Errorf("register: %v %s", err, out)
		}
		if err := s.startAgent(agents[i]); err != nil {
			return err
		}
	}
	defer func() {
		for _, a := range agents {
			a.cmd.Process.Signal(syscall.SIGTERM)
			a.cmd.Wait()
		}
	}()
	rssStart, _, _ := hub.Memory()

	ctx, stop := context.WithTimeout(context.Background(), duration)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { // orders of three cubes, twice a second
		defer wg.Done()
		for ctx.Err() == nil {
			var order struct{ Order struct{ ID string } }
			if s.call("POST", "/api/v1/orders", map[string]any{"lab": "soak", "design": "cube", "quantity": 3}, &order) == 201 {
				s.mu.Lock()
				s.orders = append(s.orders, order.Order.ID)
				s.mu.Unlock()
			}
			sleep(ctx, 500*time.Millisecond)
		}
	}()
	go func() { // an upload of a distinct ring every second
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			mesh := meshtest.Binary("ring", meshtest.Torus(64, 32, 20+float64(i)/1000, 4))
			if slug, err := s.upload(fmt.Sprintf("Ring %d", i), mesh); err == nil {
				s.mu.Lock()
				s.uploads[slug] = sum(mesh)
				s.mu.Unlock()
			}
			sleep(ctx, time.Second)
		}
	}()
	go func() { // SIGKILL a random agent and start it again a second later
		defer wg.Done()
		for ctx.Err() == nil {
			sleep(ctx, jitter(agentEvery))
			a := agents[rand.IntN(len(agents))]
			a.cmd.Process.Kill()
			a.cmd.Wait()
			time.Sleep(time.Second)
			if err := s.startAgent(a); err != nil {
				fmt.Fprintln(os.Stderr, "restart agent:", err)
			}
			s.mu.Lock()
			s.kills++
			s.mu.Unlock()
		}
	}()
	go func() { // restart the hub: SIGKILL and SIGTERM in turn
		defer wg.Done()
		for ctx.Err() == nil {
			sleep(ctx, jitter(hubEvery))
			if ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			if s.restarts%2 == 0 {
				hub.Kill()
			} else {
				hub.Stop()
			}
			s.restarts++
			s.mu.Unlock()
			h, err := hubrun.StartAt(filepath.Join(work, "fabhub"), addr, data, "-lease-ttl", "10s")
			if err != nil {
				fmt.Fprintln(os.Stderr, "restart hub:", err)
				stop()
				return
			}
			hub = h
		}
	}()
	began := time.Now()
	go func() {
		for ctx.Err() == nil {
			sleep(ctx, time.Minute)
			s.mu.Lock()
			fmt.Printf("%s: %d orders, %d uploads, %d hub restarts, %d agent kills\n",
				time.Since(began).Round(time.Second), len(s.orders), len(s.uploads), s.restarts, s.kills)
			s.mu.Unlock()
		}
	}()
	wg.Wait()
	if hub.Cmd.ProcessState != nil {
		return errors.New("the hub is not running at the end")
	}

	fmt.Println("load stopped; waiting up to 10 minutes for every answered order's jobs ...")
	s.mu.Lock()
	defer s.mu.Unlock()
	jobs, lost := map[string]string{}, 0
	deadline := time.Now().Add(10 * time.Minute)
	for _, id := range s.orders {
		for {
			var view struct{ Jobs []struct{ ID, State string } }
			s.call("GET", "/api/v1/orders/"+id, nil, &view)
			done := 0
			for _, j := range view.Jobs {
				jobs[j.ID] = j.State
				if j.State == "done" {
					done++
				}
			}
			if done == len(view.Jobs) && done > 0 {
				break
			}
			if time.Now().After(deadline) {
				lost++
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	starts := map[string]int{}
	for _, a := range agents {
		b, _ := os.ReadFile(filepath.Join(a.state, "sim-starts.log"))
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				starts[f[0]]++
			}
		}
	}
	twice := 0
	for _, n := range starts {
		if n > 1 {
			twice++
		}
	}
	damaged := 0
	for slug, want := range s.uploads {
		if b, code := s.download("/api/v1/designs/" + slug + "/versions/1/files/part.stl"); code != 200 || sum(b) != want {
			damaged++
		}
	}
	rssEnd, _, _ := hub.Memory()
	fmt.Printf("ran:                 %s with %d agents\n", duration, nAgents)
	fmt.Printf("hub restarts:        %d (SIGKILL and SIGTERM in turn)\n", s.restarts)
	fmt.Printf("agent kills:         %d (SIGKILL)\n", s.kills)
	fmt.Printf("orders answered:     %d (%d jobs)\n", len(s.orders), len(jobs))
	fmt.Printf("uploads answered:    %d\n", len(s.uploads))
	fmt.Printf("jobs printed twice:  %d\n", twice)
	fmt.Printf("jobs lost:           %d (orders not done 10 minutes after the load)\n", lost)
	fmt.Printf("uploads damaged:     %d\n", damaged)
	fmt.Printf("hub RSS:             %d kB at the start, %d kB at the end\n", rssStart, rssEnd)
	hub.Stop()
	if twice+lost+damaged > 0 {
		return errors.New("an invariant was broken")
	}
	return nil
}

// jitter is d, give or take half.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
