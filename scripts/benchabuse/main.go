// Command benchabuse measures a hub under adversarial uploads: it starts fabhub on
// loopback with its default settings, sends eight 256 MiB binary STL files in which
// every vertex is distinct (the costliest kind to analyse) to the anonymous mesh check
// and eight more as design uploads, all at once, and meanwhile asks /healthz every
// 50 ms. What is answered 503 is sent again after its Retry-After (-retry=false sends
// once), so analyses follow each other for minutes. It prints the hub's peak RSS,
// /healthz latency and what each request got.
// scripts/bench-abuse.sh runs it; it is a measurement, not a test.
package main

import (
	"bufio"
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
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fabcommons/fabcommons/scripts/internal/hubrun"
)

func main() {
	hubBin := flag.String("hub", "", "the fabhub binary")
	mib := flag.Int("mib", 256, "size of each STL, MiB")
	n := flag.Int("n", 8, "files sent to each endpoint at once")
	retry := flag.Bool("retry", true, "send again what was answered 503, after its Retry-After, until it gets another answer")
	pingURL := flag.String("ping", "", "(internal) be the /healthz pinger for this URL")
	flag.Parse()
	if *pingURL != "" {
		ping(*pingURL)
		return
	}
	if err := run(*hubBin, *mib, *n, *retry); err != nil {
		fmt.Fprintln(os.Stderr, "benchabuse:", err)
		os.Exit(1)
	}
}

func run(hubBin string, mib, n int, retry bool) error {
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

	// /healthz is asked from a process of its own, so the latency measured is the hub's
	// and not this busy process's (it generates sixteen soups at once).
	pinger := exec.Command(os.Args[0], "-ping", hub.Base+"/healthz")
	pinger.Stderr = os.Stderr
	pings, err := pinger.StdoutPipe()
	if err != nil {
		return err
	}
	if err := pinger.Start(); err != nil {
		return err
	}
	var lat []time.Duration
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		sc := bufio.NewScanner(pings)
		for sc.Scan() {
			if d, err := time.ParseDuration(sc.Text()); err == nil {
				lat = append(lat, d)
			}
		}
	}()
	results := make(chan string, 2*n)
	var wg sync.WaitGroup
	var busy atomic.Int64 // 503 answers that were sent again
	start := time.Now()
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			check := i < n
			kind := "upload"
			if check {
				kind = "mesh check"
			}
			for {
				status, msg, wait := send(hub.Base, token, check, facets, i)
				if status == http.StatusServiceUnavailable && retry && time.Since(start) < 10*time.Minute {
					busy.Add(1)
					time.Sleep(wait)
					continue
				}
				results <- fmt.Sprintf("%-10s %d %s", kind, status, msg)
				return
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	pinger.Process.Signal(os.Interrupt)
	<-pinged
	pinger.Wait()
	if len(lat) == 0 {
		return fmt.Errorf("no /healthz answers were measured")
	}
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
	slices.Sort(lat)
	p := func(q float64) time.Duration { return hubrun.Percentile(lat, q) }
	if retry {
		fmt.Printf("  (503 busy, sent again after Retry-After: %d times)\n", busy.Load())
	}
	fmt.Printf("all answered in %s\n", elapsed.Round(time.Millisecond))
	fmt.Printf("hub peak RSS: %d MiB (goal: under 1024)\n", peak>>10)
	fmt.Printf("/healthz over %d asks: p50 %s, p99 %s, max %s (goal: under 100 ms)\n", len(lat),
		p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	return nil
}

// ping asks url every 50 ms and prints each answer's latency (an hour for a failure)
// until interrupted.
func ping(url string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	for {
		select {
		case <-sig:
			return
		case <-time.After(50 * time.Millisecond):
		}
		t := time.Now()
		resp, err := http.Get(url)
		d := time.Since(t)
		if err == nil {
			resp.Body.Close()
		} else {
			d = time.Hour
		}
		fmt.Println(d)
	}
}

// send streams one generated soup, as a mesh check or a design upload, with its
// Content-Length, and returns the status, the error code, if any, and Retry-After.
func send(base, token string, check bool, facets, seed int) (int, string, time.Duration) {
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
		return 0, "(" + strings.SplitN(err.Error(), ":", 2)[0] + ")", 0
	}
	defer resp.Body.Close()
	var e struct{ Error struct{ Code string } }
	json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e)
	wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	return resp.StatusCode, e.Error.Code, time.Duration(max(wait, 1)) * time.Second
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
