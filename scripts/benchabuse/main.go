// Command benchabuse measures a hub under adversarial uploads: it starts fabhub on
// loopback with its default settings, sends eight 256 MiB binary STL files in which
// every vertex is distinct (the costliest kind to analyse) to the anonymous mesh check
// and eight more as design uploads, all at once, and meanwhile asks /healthz every
// 50 ms. It prints the hub's peak RSS, /healthz latency and what each request got.
// scripts/bench-abuse.sh runs it; it is a measurement, not a test.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fabcommons/fabcommons/scripts/internal/hubrun"
)

func main() {
	hubBin := flag.String("hub", "", "the fabhub binary")
	mib := flag.Int("mib", 256, "size of each STL, MiB")
	n := flag.Int("n", 8, "files sent to each endpoint at once")
	flag.Parse()
	if err := run(*hubBin, *mib, *n); err != nil {
		fmt.Fprintln(os.Stderr, "benchabuse:", err)
		os.Exit(1)
	}
}

func run(hubBin string, mib, n int) error {
	dir, err := os.MkdirTemp("", "benchabuse-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hub, err := hubrun.Start(hubBin, dir)
	if err != nil {
		return err
	}
	defer hub.Stop()
	token, err := hub.SignUp("bench", "benchmark password 1")
	if err != nil {
		return err
	}
	facets := (mib<<20 - 84) / 50
	fmt.Printf("hub %s (pid %d); %d + %d soups of %d facets (%d MiB) at once\n", hub.Base, hub.Cmd.Process.Pid, n, n, facets, mib)

	stop := make(chan struct{})
	var lat []time.Duration
	var latMu sync.Mutex
	go func() { // /healthz every 50 ms
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			t := time.Now()
			resp, err := http.Get(hub.Base + "/healthz")
			d := time.Since(t)
			if err == nil {
				resp.Body.Close()
			} else {
				d = time.Hour
			}
			latMu.Lock()
			lat = append(lat, d)
			latMu.Unlock()
		}
	}()
	results := make(chan string, 2*n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			check := i < n
			status, msg := send(hub.Base, token, check, facets, i)
			kind := "upload"
			if check {
				kind = "mesh check"
			}
			results <- fmt.Sprintf("%-10s %d %s", kind, status, msg)
		}()
	}
	wg.Wait()
	close(stop)
	elapsed := time.Since(start)
	close(results)
	counts := map[string]int{}
	for r := range results {
		f := strings.Fields(r)
		counts[strings.Join(f, " ")]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Printf("  %-30s x%d\n", k, counts[k])
	}
	_, peak, err := hub.Memory()
	if err != nil {
		return err
	}
	latMu.Lock()
	slices.Sort(lat)
	p := func(q float64) time.Duration { return hubrun.Percentile(lat, q) }
	fmt.Printf("all answered in %s\n", elapsed.Round(time.Millisecond))
	fmt.Printf("hub peak RSS: %d MiB (goal: under 1024)\n", peak>>10)
	fmt.Printf("/healthz over %d asks: p50 %s, p99 %s, max %s (goal: under 100 ms)\n", len(lat),
		p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	latMu.Unlock()
	return nil
}

// send streams one generated soup, as a mesh check or a design upload, with its
// Content-Length, and returns the status and the error code, if any.
func send(base, token string, check bool, facets, seed int) (int, string) {
	var head, tail bytes.Buffer
	mw := multipart.NewWriter(&head)
	path := "/api/v1/mesh/check"
	field := "file"
	if !check {
		path, field = "/api/v1/designs", "files"
		mw.WriteField("meta", fmt.Sprintf(`{"title":"Soup %d","license":"CC0-1.0"}`, seed))
	}
	mw.CreateFormFile(field, fmt.Sprintf("soup-%d.stl", seed))
	h := head.Bytes()
	tailBoundary := "\r\n--" + mw.Boundary() + "--\r\n"
	tail.WriteString(tailBoundary)
	size := int64(84 + 50*facets)
	body := io.MultiReader(bytes.NewReader(h), soup(facets, seed), bytes.NewReader(tail.Bytes()))
	req, _ := http.NewRequest("POST", base+path, body)
	req.ContentLength = int64(len(h)) + size + int64(tail.Len())
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if !check {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "(" + strings.SplitN(err.Error(), ":", 2)[0] + ")"
	}
	defer resp.Body.Close()
	var e struct{ Error struct{ Code string } }
	json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e)
	return resp.StatusCode, e.Error.Code
}

// soup is a binary STL whose every vertex is distinct.
func soup(facets, seed int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		w := &bytes.Buffer{}
		hdr := make([]byte, 84)
		copy(hdr, "soup "+strconv.Itoa(seed))
		binary.LittleEndian.PutUint32(hdr[80:], uint32(facets))
		w.Write(hdr)
		rec := make([]byte, 50)
		for i := range facets {
			x := float32(i%1000) + float32(seed)*0.001
			y := float32(i/1000%1000) * 1.5
			z := float32(i / 1000000)
			pts := [12]float32{0, 0, 1, x, y, z, x + 0.5, y, z, x, y + 0.5, z + 0.25}
			for k, v := range pts {
				binary.LittleEndian.PutUint32(rec[4*k:], math.Float32bits(v))
			}
			w.Write(rec)
			if w.Len() > 1<<20 {
				if _, err := pw.Write(w.Bytes()); err != nil {
					return
				}
				w.Reset()
			}
		}
		pw.Write(w.Bytes())
		pw.Close()
	}()
	return pr
}
