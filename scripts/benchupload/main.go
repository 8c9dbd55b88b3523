// Command benchupload measures design uploads through the API: it writes a closed
// binary STL torus of about -mb megabytes once, starts fabhub on loopback (on its local
// blob store, then on S3 when -s3 is given), signs up, and posts the torus as a new
// design, multipart as the browser and the CLI send it. For each store it sends -runs
// uploads one at a time and prints for each its MB/s (file bytes over the time from
// the first byte sent to the 201), the hub's CPU seconds, and its RSS before, at its
// peak during the upload (VmRSS sampled every 5 ms) and after; then eight uploads at
// once, each sent again after a 503 until it is taken, and the hub's peak RSS (VmHWM)
// over them. Each upload's header differs, so each is a new blob.
// scripts/bench-upload.sh runs it; it is a measurement, not a test.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
	"github.com/fabcommons/fabcommons/scripts/internal/hubrun"
)

func main() {
	hubBin := flag.String("hub", "", "the fabhub binary")
	mb := flag.Int("mb", 200, "size of the STL, megabytes (10^6 bytes)")
	runs := flag.Int("runs", 3, "uploads sent one at a time, each measured")
	n := flag.Int("n", 8, "uploads sent at once in the second part")
	local := flag.Bool("local", true, "measure on the local blob store")
	s3 := flag.String("s3", "", "also measure on this blob store (s3://KEY:SECRET@host:port/bucket?tls=false)")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the hub during the first local upload here")
	memprofile := flag.String("memprofile", "", "write the hub's allocation profile after the local uploads one at a time here")
	flag.Parse()
	if err := run(*hubBin, *mb, *runs, *n, *local, *s3, *profile, *memprofile); err != nil {
		fmt.Fprintln(os.Stderr, "benchupload:", err)
		os.Exit(1)
	}
}

func run(hubBin string, mb, runs, n int, local bool, s3, profile, memprofile string) error {
	dir, err := os.MkdirTemp("", "benchupload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// 2·rings·sides facets of 50 bytes: rings = mb·10^6 / (100·sides).
	sides := 1000
	rings := mb * 1000000 / (100 * sides)
	stl := filepath.Join(dir, "torus.stl")
	f, err := os.Create(stl)
	if err != nil {
		return err
	}
	if err := meshtest.WriteTorusBinary(f, rings, sides, 100, 30); err != nil {
		return err
	}
	f.Close()
	body, err := os.ReadFile(stl) // the client's copy; the hub is measured, not this process
	if err != nil {
		return err
	}
	os.Remove(stl)
	fmt.Printf("torus of %d facets, %d bytes (%.1f MB)\n", 2*rings*sides, len(body), float64(len(body))/1e6)

	var stores []struct{ name, url string }
	if local {
		stores = append(stores, struct{ name, url string }{"local", ""})
	}
	if s3 != "" {
		stores = append(stores, struct{ name, url string }{"s3", s3})
	}
	for _, st := range stores {
		var flags []string
		if st.url != "" {
			flags = append(flags, "-blobs", st.url)
		}
		pprofAddr := ""
		if st.name == "local" && (profile != "" || memprofile != "") {
			pprofAddr = "127.0.0.1:" + strconv.Itoa(16060)
			flags = append(flags, "-pprof-addr", pprofAddr)
		}
		data := filepath.Join(dir, st.name)
		hub, err := hubrun.Start(hubBin, data, flags...)
		if err != nil {
			return err
		}
		err = measure(hub, st.name, body, runs, n, pprofAddr, profile, memprofile)
		hub.Stop()
		if err != nil {
			return err
		}
		os.RemoveAll(data)
	}
	return nil
}

func measure(hub *hubrun.Hub, store string, body []byte, runs, n int, pprofAddr, profile, memprofile string) error {
	token, err := hub.SignUp("bench", "benchmark password 1")
	if err != nil {
		return err
	}
	pid := hub.Cmd.Process.Pid
	fmt.Printf("== %s blob store: hub %s (pid %d)\n", store, hub.Base, pid)
	var profDone chan error
	if profile != "" && pprofAddr != "" {
		profDone = make(chan error, 1)
		go func() { profDone <- fetchTo("http://"+pprofAddr+"/debug/pprof/profile?seconds=6", profile) }()
		time.Sleep(200 * time.Millisecond)
	}
	// The first upload starts with the hub's memory as the sign-up left it (argon2's
	// blocks freed but not yet given back); a large upload gives its memory back when
	// it ends, so the later ones start from the hub at rest.
	var rates []float64
	var growths []int64
	for run := range runs {
		before, _, err := hub.Memory()
		if err != nil {
			return err
		}
		cpu0 := cpuSeconds(pid)
		stop := make(chan struct{})
		peakc := make(chan int64)
		go func() { peakc <- sampleRSS(hub, stop) }()
		start := time.Now()
		status, msg, _ := upload(hub.Base, token, body, 100+run)
		elapsed := time.Since(start)
		close(stop)
		peak := <-peakc
		cpu := cpuSeconds(pid) - cpu0
		if status != http.StatusCreated {
			return fmt.Errorf("upload: %d %s", status, msg)
		}
		after, _, _ := hub.Memory()
		mbps := float64(len(body)) / 1e6 / elapsed.Seconds()
		rates = append(rates, mbps)
		growths = append(growths, peak-before)
		fmt.Printf("upload %d: %.2f s, %.0f MB/s, hub CPU %.2f s, RSS before %d MiB, peak during %d MiB (+%d MiB), after %d MiB; %s\n",
			run+1, elapsed.Seconds(), mbps, cpu, before>>10, peak>>10, (peak-before)>>10, after>>10, msg)
	}
	slices.Sort(rates)
	slices.Sort(growths)
	fmt.Printf("one at a time, %d uploads: %.0f-%.0f MB/s, RSS growth %d-%d MiB\n", runs, rates[0], rates[len(rates)-1], growths[0]>>10, growths[len(growths)-1]>>10)
	if profDone != nil {
		if err := <-profDone; err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		fmt.Printf("(CPU profile of the hub during the first: %s)\n", profile)
	}
	if memprofile != "" && pprofAddr != "" {
		if err := fetchTo("http://"+pprofAddr+"/debug/pprof/allocs", memprofile); err != nil {
			return fmt.Errorf("allocation profile: %w", err)
		}
		fmt.Printf("(allocation profile of the hub: %s)\n", memprofile)
	}

	var wg sync.WaitGroup
	var busy atomic.Int64
	var failed []string
	var mu sync.Mutex
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				status, msg, wait := upload(hub.Base, token, body, i+1)
				if (status == http.StatusServiceUnavailable || status == 0) && time.Since(start) < 10*time.Minute {
					busy.Add(1)
					time.Sleep(wait)
					continue
				}
				if status != http.StatusCreated {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%d %s", status, msg))
					mu.Unlock()
				}
				return
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	_, hwm, err := hub.Memory()
	if err != nil {
		return err
	}
	fmt.Printf("%d uploads at once: all answered in %.1f s (%d answers 503 busy, sent again after 1 s), %d failed %v\n",
		n, elapsed.Seconds(), busy.Load(), len(failed), failed)
	fmt.Printf("hub peak RSS over all of it (VmHWM): %d MiB\n", hwm>>10)
	return nil
}

// sampleRSS reads the hub's VmRSS every 5 ms until stop is closed and returns the
// largest, in KiB.
func sampleRSS(hub *hubrun.Hub, stop <-chan struct{}) int64 {
	var peak int64
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if rss, _, err := hub.Memory(); err == nil {
			peak = max(peak, rss)
		}
		select {
		case <-stop:
			return peak
		case <-t.C:
		}
	}
}

// cpuSeconds is the process's user + system time, from /proc/<pid>/stat.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

func fetchTo(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// upload posts body as a new design's one file, with a header naming seed so each
// upload is a new blob, and returns the status, what it reports (the mesh's facets
// and whether it is watertight, or the error code) and how long to wait after a 503.
func upload(base, token string, body []byte, seed int) (int, string, time.Duration) {
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	mw.WriteField("meta", fmt.Sprintf(`{"title":"Torus %d","license":"CC0-1.0"}`, seed))
	mw.CreateFormFile("files", fmt.Sprintf("torus-%d.stl", seed))
	header := make([]byte, 80)
	copy(header, fmt.Sprintf("fabcommons torus, upload %d", seed))
	tail := "\r\n--" + mw.Boundary() + "--\r\n"
	r := io.MultiReader(bytes.NewReader(head.Bytes()), bytes.NewReader(header), bytes.NewReader(body[80:]), strings.NewReader(tail))
	req, _ := http.NewRequest("POST", base+"/api/v1/designs", r)
	req.ContentLength = int64(head.Len()+len(body)) + int64(len(tail))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "(" + err.Error() + ")", time.Second
	}
	defer resp.Body.Close()
	var out struct {
		Error   struct{ Code, Message string }
		Version struct {
			Files []struct {
				Mesh *struct {
					Triangles  int
					Watertight bool
				}
			}
		}
	}
	json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
	if resp.StatusCode != http.StatusCreated {
		return resp.StatusCode, out.Error.Code + " " + out.Error.Message, time.Second
	}
	if len(out.Version.Files) != 1 || out.Version.Files[0].Mesh == nil {
		return 0, "the version has no mesh report", time.Second
	}
	m := out.Version.Files[0].Mesh
	return resp.StatusCode, fmt.Sprintf("mesh report: %d facets, watertight %v", m.Triangles, m.Watertight), 0
}
