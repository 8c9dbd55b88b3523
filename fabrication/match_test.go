package fabrication

import (
	"strings"
	"testing"
	"time"
)

func TestFits(t *testing.T) {
	t.Parallel()
	prusa := Machine{Name: "Prusa", Process: ProcessFDM, BuildVolume: Volume{250, 210, 220}, Materials: []string{"PLA", "PETG"}, Tags: []string{"enclosed"}}
	for _, tc := range []struct {
		name string
		job  Job
		ok   bool
		why  string
	}{
		{"fits as is", Job{Process: "fdm", Material: "pla", BBox: Volume{200, 200, 200}}, true, ""},
		{"fits turned on its side", Job{Process: "fdm", BBox: Volume{10, 240, 215}}, true, ""},
		{"fits only with z and x swapped", Job{Process: "fdm", BBox: Volume{220, 200, 240}}, true, ""},
		{"too long in every orientation", Job{Process: "fdm", BBox: Volume{260, 10, 10}}, false, "builds 250x210x220 mm, the part is 260x10x10 mm"},
		{"two sides too big", Job{Process: "fdm", BBox: Volume{230, 230, 10}}, false, "the part is 230x230x10 mm"},
		{"exactly the volume", Job{Process: "fdm", BBox: Volume{250, 210, 220}}, true, ""},
		{"wrong process", Job{Process: "sla", BBox: Volume{1, 1, 1}}, false, "runs fdm, the job needs sla"},
		{"material not loaded", Job{Process: "fdm", Material: "TPU", BBox: Volume{1, 1, 1}}, false, "has no TPU loaded"},
		{"required tag present", Job{Process: "fdm", Tags: []string{"Enclosed"}, BBox: Volume{1, 1, 1}}, true, ""},
		{"required tag missing", Job{Process: "fdm", Tags: []string{"hardened-nozzle"}, BBox: Volume{1, 1, 1}}, false, "lacks the tag hardened-nozzle"},
	} {
		ok, why := Fits(tc.job, prusa)
		if ok != tc.ok || !strings.Contains(why, tc.why) {
			t.Errorf("%s: got %v %q, want %v %q", tc.name, ok, why, tc.ok, tc.why)
		}
	}
}

func TestWhyUnfit(t *testing.T) {
	t.Parallel()
	lab := Lab{Slug: "makerspace"}
	big := Job{Process: "fdm", Material: "PLA", BBox: Volume{250, 250, 300}}
	small := Machine{Name: "Mini", Process: "fdm", BuildVolume: Volume{180, 180, 180}, Materials: []string{"PLA"}}
	if got := WhyUnfit(big, lab, []Machine{small}); got != "no machine in lab makerspace fits 250x250x300 mm (fdm PLA)" {
		t.Errorf("got %q", got)
	}
	if got := WhyUnfit(big, lab, nil); got != "lab makerspace has no machines yet" {
		t.Errorf("no machines: got %q", got)
	}
	if got := WhyUnfit(Job{Process: "fdm", BBox: Volume{10, 10, 10}}, lab, []Machine{small}); got != "" {
		t.Errorf("a fitting job: got %q", got)
	}
}

func TestServiceOrder(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return now.Add(time.Duration(m) * time.Minute) }
	jobs := []Job{
		{ID: "heavy-old", RequesterID: "heavy", EnqueuedAt: at(-60)},
		{ID: "light-new", RequesterID: "light", EnqueuedAt: at(-1)},
		{ID: "urgent", RequesterID: "heavy", Priority: 5, EnqueuedAt: at(0)},
		{ID: "light-old", RequesterID: "light", EnqueuedAt: at(-30)},
		{ID: "newcomer", RequesterID: "new", EnqueuedAt: at(-2)},
	}
	usage := map[string]Usage{
		"heavy": {Seconds: 36000, UpdatedAt: now},
		"light": {Seconds: 3600, UpdatedAt: now},
	}
	ServiceOrder(jobs, usage, now)
	var got []string
	for _, j := range jobs {
		got = append(got, j.ID)
	}
	want := "urgent,newcomer,light-old,light-new,heavy-old"
	if strings.Join(got, ",") != want {
		t.Fatalf("got %s, want %s (priority, then least machine time, then age)", strings.Join(got, ","), want)
	}
}

func TestUsageDecays(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u := Usage{Seconds: 1000, UpdatedAt: t0}
	for _, tc := range []struct {
		after time.Duration
		want  float64
	}{{0, 1000}, {-time.Hour, 1000}, {UsageHalfLife, 500}, {2 * UsageHalfLife, 250}} {
		if got := u.At(t0.Add(tc.after)); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("after %v: got %v, want %v", tc.after, got, tc.want)
		}
	}
	if (Usage{}).At(t0) != 0 {
		t.Error("no usage should be 0")
	}
}

func TestFeedWakesOnlyAsManyAsWork(t *testing.T) {
	t.Parallel()
	f := NewFeed()
	var chans []<-chan struct{}
	for range 5 {
		ch, _ := f.WaitForWork("lab")
		chans = append(chans, ch)
	}
	f.WorkAvailable("lab", 2)
	woken := 0
	for _, ch := range chans {
		select {
		case <-ch:
			woken++
		default:
		}
	}
	if woken != 2 {
		t.Fatalf("got %d agents woken for 2 jobs, want 2", woken)
	}
	f.WorkAvailable("other-lab", 10)
	f.WorkAvailable("lab", 10)
	for i, ch := range chans {
		select {
		case <-ch:
		default:
			t.Fatalf("waiter %d was not woken", i)
		}
	}
}
