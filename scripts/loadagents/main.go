// Command loadagents drives N simulated agents against a real fabhub process over
// loopback HTTP and prints what the hub sustained: claim-and-finish cycles per second,
// the time from a job's enqueueing to an agent receiving it (p50, p99), double
// assignments seen, and the hub's memory. It builds and starts the hub itself, on a
// throwaway data dir (embedded SQLite), and stops it at the end. Traffic goes to
// 127.0.0.1 only, bounded by -duration.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fabcommons/fabcommons/fabrication/agentapi"
	"github.com/fabcommons/fabcommons/scripts/internal/hubrun"
)

func main() {
	agents := flag.Int("agents", 1000, "simulated agents")
	duration := flag.Duration("duration", 20*time.Second, "how long to measure")
	backlog := flag.Int("backlog", 1000, "with -rate 0: queued jobs the feeder keeps the lab topped up to (their wait in the queue is in the latency)")
	rate := flag.Int("rate", 1000, "jobs enqueued per second, in orders of rate/50 every 20 ms, whatever the agents manage (0: keep -backlog queued instead, to find the most the hub sustains)")
	hubBin := flag.String("hub", "", "a built fabhub binary (default: build one)")
	pprofAddr := flag.String("pprof-addr", "", "start the hub with profiling on this loopback address")
	flag.Parse()
	if err := run(*agents, *duration, *backlog, *rate, *hubBin, *pprofAddr); err != nil {
		fmt.Fprintln(os.Stderr, "loadagents:", err)
		os.Exit(1)
	}
}

type client struct {
	base string
	http *http.Client
}

func (c client) call(ctx context.Context, method, path, token string, body, out any) (int, error) {
	var r io.Reader
	if b, ok := body.([]byte); ok {
		r = bytes.NewReader(b)
	} else if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return 0, err
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode/100 == 2 && resp.StatusCode != http.StatusNoContent {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// agent is one simulated agent: its token, as the header it sends.
type agent struct {
	c    client
	auth string
}

// do POSTs a JSON body to path, as the agent, and decodes a 200's body into out.
func (a agent) do(ctx context.Context, path string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header["Content-Type"] = jsonType
	req.Header["Authorization"] = []string{a.auth}
	resp, err := a.c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

var jsonType = []string{"application/json"}

// cube is a 20 mm cube as binary STL.
func cube() []byte {
	v := func(x, y, z float32) [3]float32 { return [3]float32{x * 20, y * 20, z * 20} }
	quads := [][4][3]float32{
		{v(0, 0, 0), v(0, 1, 0), v(1, 1, 0), v(1, 0, 0)}, {v(0, 0, 1), v(1, 0, 1), v(1, 1, 1), v(0, 1, 1)},
		{v(0, 0, 0), v(1, 0, 0), v(1, 0, 1), v(0, 0, 1)}, {v(0, 1, 0), v(0, 1, 1), v(1, 1, 1), v(1, 1, 0)},
		{v(0, 0, 0), v(0, 0, 1), v(0, 1, 1), v(0, 1, 0)}, {v(1, 0, 0), v(1, 1, 0), v(1, 1, 1), v(1, 0, 1)},
	}
	var b bytes.Buffer
	b.Write(make([]byte, 80))
	writeU32(&b, 12)
	for _, q := range quads {
		for _, t := range [][3][3]float32{{q[0], q[1], q[2]}, {q[0], q[2], q[3]}} {
			b.Write(make([]byte, 12))
			for _, p := range t {
				for _, f := range p {
					writeF32(&b, f)
				}
			}
			b.Write([]byte{0, 0})
		}
	}
	return b.Bytes()
}

func run(nAgents int, duration time.Duration, backlog, rate int, hubBin, pprofAddr string) error {
	work, err := os.MkdirTemp("", "loadagents-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if hubBin == "" {
		hubBin = filepath.Join(work, "fabhub")
		fmt.Println("building fabhub ...")
		if out, err := exec.Command("go", "build", "-o", hubBin, "./cmd/fabhub").CombinedOutput(); err != nil {
			return fmt.Errorf("build fabhub (run from the repository root): %v\n%s", err, out)
		}
	}
	hub, err := hubrun.Start(hubBin, filepath.Join(work, "data"), "-pprof-addr", pprofAddr)
	if err != nil {
		return err
	}
	defer hub.Stop()

	c := client{base: hub.Base, http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: nAgents + 10, MaxConnsPerHost: 0}}}
	ctx := context.Background()
	owner, err := hub.SignUp("load", "load test password")
	if err != nil {
		return fmt.Errorf("sign up: %w", err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("meta", `{"title":"Load cube","license":"CC0-1.0"}`)
	fw, _ := mw.CreateFormFile("files", "cube.stl")
	fw.Write(cube())
	mw.Close()
	req, _ := http.NewRequest("POST", c.base+"/api/v1/designs", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+owner)
	if resp, err := c.http.Do(req); err != nil || resp.StatusCode != 201 {
		return fmt.Errorf("publish: %v %v", resp, err)
	}
	if code, err := c.call(ctx, "POST", "/api/v1/labs", owner, map[string]any{"slug": "farm", "name": "Load farm"}, nil); code != 201 {
		return fmt.Errorf("lab: %d %v", code, err)
	}
	var jt struct {
		JoinToken struct{ Secret string } `json:"join_token"`
	}
	c.call(ctx, "POST", "/api/v1/labs/farm/join-tokens", owner, map[string]string{"name": "load"}, &jt)

	// Enqueue times, by job id, for the latency figure.
	var mu sync.Mutex
	enqueued := map[string]time.Time{}
	holder := map[string]int{}
	var latencies []time.Duration
	var queued atomic.Int64
	var orderTimes []time.Duration
	// A job's enqueue time is when its order is answered: its jobs are queued (and
	// claimable) from the moment the order commits, just before the answer.
	order := func(quantity int) error {
		var resp struct{ Jobs []struct{ ID string } }
		sent := time.Now()
		code, err := c.call(ctx, "POST", "/api/v1/orders", owner, map[string]any{"lab": "farm", "design": "load-cube", "quantity": quantity}, &resp)
		if code != 201 {
			return fmt.Errorf("order: %d %v", code, err)
		}
		at := time.Now()
		mu.Lock()
		orderTimes = append(orderTimes, at.Sub(sent))
		for _, j := range resp.Jobs {
			if _, seen := enqueued[j.ID]; !seen { // an agent may have got it before the answer
				enqueued[j.ID] = at
			}
		}
		mu.Unlock()
		queued.Add(int64(len(resp.Jobs)))
		return nil
	}
	for rate == 0 && queued.Load() < int64(backlog) {
		if err := order(100); err != nil {
			return err
		}
	}

	fmt.Printf("registering %d agents ...\n", nAgents)
	tokens := make([]string, nAgents)
	var regWG sync.WaitGroup
	sem := make(chan struct{}, 32)
	var regErr atomic.Value
	for i := range nAgents {
		regWG.Add(1)
		sem <- struct{}{}
		go func() {
			defer regWG.Done()
			defer func() { <-sem }()
			var enr struct{ Token string }
			caps := map[string]any{"process": "fdm", "build_volume": []float64{200, 200, 200}, "driver": "sim"}
			if code, err := c.call(ctx, "POST", agentapi.PathRegister, "", map[string]any{"join_token": jt.JoinToken.Secret, "name": fmt.Sprint("agent-", i), "capabilities": caps}, &enr); code != 201 {
				regErr.Store(fmt.Errorf("register: %d %v", code, err))
			}
			tokens[i] = enr.Token
		}()
	}
	regWG.Wait()
	if err, ok := regErr.Load().(error); ok {
		return err
	}

	fmt.Printf("measuring for %v with %d agents ...\n", duration, nAgents)
	runCtx, stop := context.WithTimeout(ctx, duration)
	defer stop()
	var cycles, doubles, errs atomic.Int64
	go func() { // the feeder keeps the backlog up
		for rate == 0 && runCtx.Err() == nil {
			if queued.Load() < int64(backlog) {
				if err := order(100); err != nil && runCtx.Err() == nil {
					errs.Add(1)
				}
				continue
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if rate > 0 { // or enqueues at a fixed rate, in small orders sent on a clock
		go func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for runCtx.Err() == nil {
				select {
				case <-runCtx.Done():
				case <-tick.C:
					go func() {
						if err := order(max(1, rate/50)); err != nil && runCtx.Err() == nil {
							errs.Add(1)
						}
					}()
				}
			}
		}()
	}
	start := time.Now()
	hubCPU0, _ := hub.CPU()
	selfCPU0, _ := hubrun.ProcessCPU(os.Getpid())
	// The agents' side is kept cheap, so that the hub is what is measured: one process,
	// one goroutine per agent that is parked in a long-poll or a report most of the
	// time, all over one transport's keep-alive connections (HTTP/1.1 holds one per
	// poll waiting at the hub), with the poll's body encoded once and the reports'
	// bodies put together from two constant pieces and the lease.
	pollBody, _ := json.Marshal(agentapi.PollRequest{Protocol: agentapi.Protocol, State: agentapi.StateIdle, Jobs: []agentapi.HeldJob{}, WaitSeconds: 5})
	var wg sync.WaitGroup
	for i, token := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := agent{c: c, auth: "Bearer " + token}
			var poll struct {
				Job   *struct{ ID string }
				Lease string
			}
			var body []byte
			for runCtx.Err() == nil {
				poll.Job, poll.Lease = nil, ""
				code, err := a.do(runCtx, agentapi.PathPoll, pollBody, &poll)
				if runCtx.Err() != nil {
					return
				}
				if err != nil || (code != 200 && code != 204) {
					errs.Add(1)
					continue
				}
				if poll.Job == nil {
					continue
				}
				got := time.Now()
				id := poll.Job.ID
				mu.Lock()
				if _, held := holder[id]; held {
					doubles.Add(1)
				}
				holder[id] = i
				if at, ok := enqueued[id]; ok {
					latencies = append(latencies, got.Sub(at))
				} else {
					latencies = append(latencies, 0) // received before its order was answered
					enqueued[id] = got
				}
				mu.Unlock()
				queued.Add(-1)
				events := agentapi.JobPath(agentapi.PathJobEvents, id)
				for _, kind := range []string{agentapi.EventStarted, agentapi.EventFinished} {
					body = append(append(append(append(body[:0], `{"lease":`...), strconv.Quote(poll.Lease)...), `,"kind":"`...), kind...)
					body = append(body, `"}`...)
					if code, _ := a.do(ctx, events, body, nil); code != 200 {
						errs.Add(1)
					}
				}
				mu.Lock()
				delete(holder, id)
				mu.Unlock()
				cycles.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	hubCPU1, _ := hub.CPU()
	selfCPU1, _ := hubrun.ProcessCPU(os.Getpid())

	mu.Lock()
	slices.Sort(latencies)
	slices.Sort(orderTimes)
	pct := func(d []time.Duration, q float64) time.Duration {
		return hubrun.Percentile(d, q).Round(time.Millisecond)
	}
	mu.Unlock()
	rss, peak, err := hub.Memory()
	if err != nil {
		return err
	}
	fmt.Printf("agents:                  %d\n", nAgents)
	fmt.Printf("claim-and-finish cycles: %d in %.1f s = %.0f per second\n", cycles.Load(), elapsed.Seconds(), float64(cycles.Load())/elapsed.Seconds())
	if rate > 0 {
		fmt.Printf("jobs enqueued:           %d per second asked\n", rate)
	} else {
		fmt.Printf("jobs enqueued:           kept at %d queued\n", backlog)
	}
	fmt.Printf("enqueue to receipt:      p50 %v, p99 %v (%d samples)\n", pct(latencies, 0.50), pct(latencies, 0.99), len(latencies))
	fmt.Printf("order answered in:       p50 %v, p99 %v (%d orders)\n", pct(orderTimes, 0.50), pct(orderTimes, 0.99), len(orderTimes))
	fmt.Printf("double assignments:      %d\n", doubles.Load())
	fmt.Printf("request errors:          %d\n", errs.Load())
	fmt.Printf("hub memory:              %d kB RSS now, %d kB peak\n", rss, peak)
	share := func(d time.Duration) string {
		return fmt.Sprintf("%.1f s = %.0f %% of one core, %.0f %% of the box's %d", d.Seconds(),
			100*d.Seconds()/elapsed.Seconds(), 100*d.Seconds()/elapsed.Seconds()/float64(runtime.NumCPU()), runtime.NumCPU())
	}
	fmt.Printf("hub CPU:                 %s\n", share(hubCPU1-hubCPU0))
	fmt.Printf("load generator CPU:      %s\n", share(selfCPU1-selfCPU0))
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average at the end: %s\n", strings.Join(strings.Fields(string(b))[:3], " "))
	}
	if doubles.Load() > 0 {
		return errors.New("a job was assigned to two machines at once")
	}
	return nil
}
