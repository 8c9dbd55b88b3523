// Command benchsearch measures the hub at the size of a real commons (issue 17's goals
// 3 and 5): it seeds an embedded store with -designs designs (forks up to 50 deep,
// -owners owners, one design with 200 files at the end of a 50-deep lineage) and a lab
// with -jobs jobs of history, loading them in one transaction through the store's
// archive seam, then starts a hub on it and prints how long it took to serve, p50 and
// p95 of text search, filtered search, the design page and the lab page, and the hub's
// memory after a while idle. scripts/bench-search.sh runs it.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/catalog/mesh"
	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/scripts/internal/hubrun"
	"github.com/fabcommons/fabcommons/storage/localblob"
	"github.com/fabcommons/fabcommons/storage/mongo"
	"github.com/fabcommons/fabcommons/storage/sqlite"
)

func main() {
	designs := flag.Int("designs", 100_000, "designs to seed")
	owners := flag.Int("owners", 10_000, "people who own them")
	jobs := flag.Int("jobs", 100_000, "jobs of history in the lab")
	requests := flag.Int("requests", 200, "requests per measured kind")
	idle := flag.Duration("idle", 10*time.Second, "how long the hub idles before its memory is read")
	db := flag.String("db", "", "a mongodb:// URI of an empty database to seed and run the hub on, instead of SQLite")
	flag.Parse()
	if err := run(*designs, *owners, *jobs, *requests, *idle, *db); err != nil {
		fmt.Fprintln(os.Stderr, "benchsearch:", err)
		os.Exit(1)
	}
}

var words = strings.Fields(`bracket holder mount clip hinge gear pulley spool filament enclosure case box lid tray
	shelf hook knob handle lever spacer washer bushing bearing axle wheel caster foot stand base plate cover panel
	frame rail slider carriage belt tensioner clamp vise jig fixture gauge ruler template stencil nozzle fan duct
	shroud cooler sensor probe switch button dial display bezel keyboard keycap stylus phone tablet laptop monitor
	camera tripod lens filter adapter coupler connector plug socket cable tie organizer drawer bin rack stackable
	modular parametric printable snapfit magnetic flexible rigid waterproof compact foldable adjustable reinforced
	garden kitchen workshop bathroom desk office bike car drone robot arm gripper servo motor stepper pump valve
	hose pipe funnel bottle cup bowl vase planter pot sign badge label tag key chain ring`)

var tags = strings.Fields(`3dprint laser cnc pla petg abs tpu resin wood acrylic metal electronics arduino esp32
	raspberrypi robotics tools home garden kitchen office toys education medical accessibility repair spare-part
	replacement upcycle openhardware parametric openscad freecad kicad makerspace fablab bike outdoor camping music
	art jewelry cosplay props drone rc automotive lab science`)

var licenses = []string{"CC-BY-4.0", "CC-BY-SA-4.0", "CERN-OHL-S-2.0", "CERN-OHL-P-2.0", "CC0-1.0", "MIT", "GPL-3.0-or-later"}

func pick(r *rand.Rand, from []string, n int) []string {
	out := make([]string, 0, n)
	for len(out) < n {
		if w := from[r.IntN(len(from))]; !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// seed yields the records of the seeded commons, in the order a store loads them.
func seed(nDesigns, nOwners, nJobs int, file catalog.File) func() (any, error) {
	r := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make(chan any, 1024)
	go func() {
		defer close(out)
		for i := range nOwners {
			out <- account.User{ID: fmt.Sprintf("u%05d", i), Handle: fmt.Sprintf("maker%05d", i), Email: fmt.Sprintf("maker%05d@example.org", i),
				PasswordHash: "-", Admin: i == 0, CreatedAt: t0}
		}
		made := make([]catalog.Design, nDesigns)
		for i := range nDesigns {
			owner := r.IntN(nOwners)
			at := t0.Add(time.Duration(i) * time.Minute)
			d := catalog.Design{ID: fmt.Sprintf("d%06d", i), Slug: fmt.Sprintf("design-%06d", i), OwnerID: fmt.Sprintf("u%05d", owner),
				Owner: fmt.Sprintf("maker%05d", owner), Title: strings.Join(pick(r, words, 3), " "), Summary: strings.Join(pick(r, words, 12), " "),
				Tags: pick(r, tags, 2+r.IntN(2)), License: licenses[r.IntN(len(licenses))], Parents: []catalog.ParentRef{},
				LatestVersion: 1, CreatedAt: at, UpdatedAt: at}
			parent := -1
			switch {
			case i%1000 > 0 && i%1000 < 50: // chains of forks 50 deep
				parent = i - 1
			case i > 1000 && r.IntN(10) == 0: // and a tenth are forks of something older
				parent = r.IntN(i - 1000)
			}
			if parent >= 0 {
				p := made[parent]
				d.License = p.License
				d.Parents = []catalog.ParentRef{{DesignID: p.ID, Slug: p.Slug, Version: 1, Title: p.Title, Owner: p.Owner, License: p.License}}
			}
			made[i] = d
			out <- d
		}
		for i, d := range made {
			v := catalog.Version{DesignID: d.ID, Number: 1, Message: "First version", License: d.License, CreatedBy: d.Owner, CreatedAt: d.CreatedAt,
				Files: []catalog.File{file}, BOM: []catalog.BOMLine{}}
			if i == 49 { // the end of the first 50-deep lineage
				v.Files = nil
				for n := range 200 {
					f := file
					f.Path = fmt.Sprintf("parts/part-%03d.stl", n)
					v.Files = append(v.Files, f)
				}
			}
			out <- v
		}
		lab := fabrication.Lab{ID: "lab-bench", Slug: "bench", Name: "Bench lab", Timezone: "UTC", Policy: fabrication.Policy{Submit: "public"}, CreatedAt: t0}
		out <- lab
		out <- fabrication.Member{LabID: lab.ID, UserID: "u00000", Handle: "maker00000", Role: fabrication.RoleOwner}
		out <- fabrication.Machine{ID: "m-bench", LabID: lab.ID, Name: "Bench printer", Process: "fdm", BuildVolume: fabrication.Volume{X: 250, Y: 250, Z: 250},
			Materials: []string{"PLA"}, Tags: []string{}, Driver: "sim", State: fabrication.MachineIdle, Approved: true, CreatedAt: t0}
		for o := 0; o*100 < nJobs; o++ {
			out <- fabrication.Order{ID: fmt.Sprintf("o%06d", o), RequesterID: "u00001", Requester: "maker00001", LabID: lab.ID, LabSlug: lab.Slug,
				DesignID: made[0].ID, DesignSlug: made[0].Slug, DesignTitle: made[0].Title, Version: 1, Process: "fdm", Quantity: 100,
				Files: []string{file.Path}, BOMRefs: []string{}, CreatedAt: t0}
		}
		for j := range nJobs {
			at := t0.Add(time.Duration(j) * time.Second)
			end := at.Add(20 * time.Minute)
			out <- fabrication.Job{ID: fmt.Sprintf("j%07d", j), OrderID: fmt.Sprintf("o%06d", j/100), LabID: lab.ID, RequesterID: "u00001", Requester: "maker00001",
				DesignID: made[0].ID, DesignSlug: made[0].Slug, Version: 1, File: file.Path, SHA256: file.SHA256, Size: file.Size, Process: "fdm",
				Tags: []string{}, Copy: j%100 + 1, State: fabrication.JobDone, MachineID: "m-bench", Attempts: 1, Progress: 1,
				EnqueuedAt: at, StartedAt: &at, FinishedAt: &end, CreatedAt: at, UpdatedAt: end,
				Events: []fabrication.Event{{At: at, Kind: "queued", To: "queued", Actor: "maker00001"}, {At: end, Kind: "done", From: "printing", To: "done", Actor: "machine:Bench printer"}}}
		}
	}()
	return func() (any, error) {
		v, ok := <-out
		if !ok {
			return nil, io.EOF
		}
		return v, nil
	}
}

func run(nDesigns, nOwners, nJobs, requests int, idle time.Duration, mongoURI string) error {
	work, err := os.MkdirTemp("", "benchsearch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "fabhub")
	fmt.Println("building fabhub ...")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/fabhub").CombinedOutput(); err != nil {
		return fmt.Errorf("build fabhub (run from the repository root): %v\n%s", err, out)
	}
	data := filepath.Join(work, "data")
	if err := os.MkdirAll(data, 0o750); err != nil {
		return err
	}
	ctx := context.Background()
	blobs, err := localblob.Open(filepath.Join(data, "blobs"))
	if err != nil {
		return err
	}
	stlBytes := meshtest.Binary("ring", meshtest.Torus(48, 24, 20, 4))
	info, err := blobs.Put(ctx, bytes.NewReader(stlBytes), 1<<20, "")
	if err != nil {
		return err
	}
	rep, err := mesh.Analyze(bytes.NewReader(stlBytes), int64(len(stlBytes)))
	if err != nil {
		return err
	}
	file := catalog.File{Path: "ring.stl", SHA256: info.Key, Size: info.Size, Kind: catalog.FileMesh, Mesh: &rep}

	fmt.Printf("seeding %d designs by %d owners and %d jobs ...\n", nDesigns, nOwners, nJobs)
	start := time.Now()
	var store interface {
		Load(context.Context, func() (any, error)) error
		Close() error
	}
	var flags []string
	if mongoURI == "" {
		if store, err = sqlite.Open(ctx, filepath.Join(data, "fabcommons.db")); err != nil {
			return err
		}
	} else {
		if store, err = mongo.Open(ctx, mongoURI); err != nil {
			return err
		}
		flags = []string{"-db", mongoURI}
	}
	if err := store.Load(ctx, seed(nDesigns, nOwners, nJobs, file)); err != nil {
		store.Close()
		return err
	}
	store.Close()
	fmt.Printf("seeded in %s\n", time.Since(start).Round(time.Second))

	start = time.Now()
	hub, err := hubrun.Start(bin, data, flags...)
	if err != nil {
		return err
	}
	defer hub.Stop()
	ready := time.Since(start)

	client := &http.Client{Timeout: 30 * time.Second}
	r := rand.New(rand.NewPCG(3, 4))
	// measure asks for path(i) requests times. An answer other than 200 (a 503 when the
	// database is too slow for the hub's deadlines, as FerretDB is at this size) is
	// counted and shown, not timed.
	measure := func(name string, path func(i int) string) error {
		var took []time.Duration
		failed := map[string]int{}
		for i := range requests {
			t := time.Now()
			resp, err := client.Get(hub.Base + path(i))
			if err != nil {
				failed["no answer: "+errors.Unwrap(err).Error()]++ // the error without the URL
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed[resp.Status]++
				continue
			}
			took = append(took, time.Since(t))
		}
		slices.Sort(took)
		line := fmt.Sprintf("%-34s", name)
		if len(took) > 0 {
			line += fmt.Sprintf(" p50 %6.1f ms   p95 %6.1f ms", ms(hubrun.Percentile(took, 0.5)), ms(hubrun.Percentile(took, 0.95)))
		}
		for why, n := range failed {
			line += fmt.Sprintf("   %d of %d failed: %s", n, requests, why)
		}
		fmt.Println(line)
		if len(took) == 0 {
			return fmt.Errorf("%s: every request failed", name)
		}
		return nil
	}
	fmt.Printf("hub serving after:                 %s\n", ready.Round(time.Millisecond))
	err = errors.Join(
		measure("text search (API, 1 word)", func(int) string { return "/api/v1/designs?q=" + words[r.IntN(len(words))] }),
		measure("text search (API, 2 words)", func(int) string {
			return "/api/v1/designs?q=" + url.QueryEscape(strings.Join(pick(r, words, 2), " "))
		}),
		measure("filtered search (tag + license)", func(int) string {
			return "/api/v1/designs?tag=" + tags[r.IntN(len(tags))] + "&license=" + licenses[r.IntN(len(licenses))]
		}),
		measure("search page (HTML)", func(int) string { return "/search?q=" + words[r.IntN(len(words))] }),
		measure("design page, 200 files, 50 deep", func(int) string { return "/designs/design-000049" }),
		measure(fmt.Sprintf("lab page (%d jobs of history)", nJobs), func(int) string { return "/labs/bench" }),
	)
	if err != nil {
		return err
	}
	time.Sleep(idle)
	rss, peak, err := hub.Memory()
	if err != nil {
		return err
	}
	fmt.Printf("hub memory after %s idle:        %d MB RSS (peak %d MB)\n", idle, rss/1024, peak/1024)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
