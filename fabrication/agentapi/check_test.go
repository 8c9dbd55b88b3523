package agentapi

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestChecksNameTheField(t *testing.T) {
	t.Parallel()
	job := func() *Job {
		return &Job{ID: "j-1", Attempt: 1, Version: 1, File: "a.stl", SHA256: strings.Repeat("0f", 32), Size: 10, BBox: [3]float64{1, 2, 3}}
	}
	answer := func(edit func(*PollResponse)) PollResponse {
		r := PollResponse{Job: job(), Lease: "l", FileURL: "/api/v1/agent/jobs/j-1/file", HeartbeatS: 10}
		edit(&r)
		return r
	}
	long := strings.Repeat("é", MaxMessage+1)
	for _, tc := range []struct {
		name  string
		msg   interface{ Check() error }
		field string // "" when accepted
	}{
		{"an idle poll", PollRequest{Protocol: Protocol, State: StateIdle}, ""},
		{"a poll with no state is idle", PollRequest{}, ""},
		{"an unknown state", PollRequest{State: "asleep"}, "state"},
		{"a negative wait", PollRequest{WaitSeconds: -1}, "wait_s"},
		{"too many held jobs", PollRequest{Jobs: make([]HeldJob, MaxHeldJobs+1)}, "jobs"},
		{"a held job without id", PollRequest{Jobs: []HeldJob{{State: HeldPrinting}}}, "jobs[0].id"},
		{"a held job in no known state", PollRequest{Jobs: []HeldJob{{ID: "j", State: "melting"}}}, "jobs[0].state"},
		{"a held job past 100 %", PollRequest{Jobs: []HeldJob{{ID: "j", State: HeldPrinting, Progress: 101}}}, "jobs[0].progress"},
		{"a held job's long message", PollRequest{Jobs: []HeldJob{{ID: "j", State: HeldFailed, Message: long}}}, "jobs[0].message"},
		{"a gone job's long note", PollRequest{Jobs: []HeldJob{{ID: "j", State: HeldGone, Message: long}}}, ""},
		{"a progress report", EventRequest{Kind: EventProgress, Progress: 40, Message: "layer 40"}, ""},
		{"an unknown kind", EventRequest{Kind: "exploded"}, "kind"},
		{"negative progress", EventRequest{Kind: EventProgress, Progress: -1}, "progress"},
		{"a long message", EventRequest{Kind: EventFailed, Message: long}, "message"},
		{"a wild estimate is ignored, not refused", EventRequest{Kind: EventStarted, Estimate: &Estimate{Seconds: 1e300}}, ""},
		{"a job", answer(func(*PollResponse) {}), ""},
		{"no work", PollResponse{HeartbeatS: 10}, ""},
		{"a heartbeat of a day", answer(func(r *PollResponse) { r.HeartbeatS = 86400 }), "heartbeat_s"},
		{"a job id with a slash", answer(func(r *PollResponse) { r.Job.ID = "../j" }), "job.id"},
		{"a job without lease", answer(func(r *PollResponse) { r.Lease = "" }), "lease"},
		{"a file elsewhere", answer(func(r *PollResponse) { r.FileURL = "//evil.example/f" }), "file_url"},
		{"an upper-case sha256", answer(func(r *PollResponse) { r.Job.SHA256 = strings.ToUpper(r.Job.SHA256) }), "job.sha256"},
		{"version 0", answer(func(r *PollResponse) { r.Job.Version = 0 }), "job.version"},
		{"a negative bbox", answer(func(r *PollResponse) { r.Job.BBox[2] = -1 }), "job.bbox"},
		{"an empty drop", PollResponse{Drop: []string{""}}, "drop[0]"},
	} {
		err := tc.msg.Check()
		var fe *FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: got %v, want it accepted", tc.name, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field || fe.Message == ""):
			t.Errorf("%s: got %v, want a FieldError for %s", tc.name, err, tc.field)
		}
	}
}

func TestEstimateUsable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		e    *Estimate
		want bool
	}{
		{nil, false}, {&Estimate{Seconds: 1800, FilamentMM: 2300}, true}, {&Estimate{}, true},
		{&Estimate{Seconds: -1}, false}, {&Estimate{FilamentMM: -1}, false},
		{&Estimate{Seconds: 1e12}, false}, // minutes of it would overflow a time.Duration
		{&Estimate{FilamentMM: 2e9}, false},
	} {
		if got := tc.e.Usable(); got != tc.want {
			t.Errorf("%+v: got %v, want %v", tc.e, got, tc.want)
		}
	}
}

func TestClipMessage(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "layer 4", strings.Repeat("x", MaxMessage), strings.Repeat("ü", 3*MaxMessage), "bad \xff byte"} {
		got := ClipMessage(in)
		if err := (EventRequest{Kind: EventProgress, Message: got}).Check(); err != nil {
			t.Errorf("ClipMessage(%.20q...) = %.20q..., which a report refuses: %v", in, got, err)
		}
		if utf8.ValidString(in) && utf8.RuneCountInString(in) <= MaxMessage && got != in {
			t.Errorf("ClipMessage(%q) = %q, want it unchanged", in, got)
		}
	}
}
