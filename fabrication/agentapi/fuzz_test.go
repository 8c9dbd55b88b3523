package agentapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzHubAnswer: a poll's answer (or a report's, when event is true) as an agent reads
// it from the hub (the client decodes the first JSON value, as it comes, and checks a
// poll's answer), or refuses it with an error: a broken contract is a FieldError naming
// its field. What is accepted is safe to act on: a heartbeat that makes a positive
// duration, a job id fit for a file name, a file URL on the hub; and it reads back the
// same once written again.
func FuzzHubAnswer(f *testing.F) {
	f.Add([]byte(`{"job":{"id":"0b7e6a52-9d1c-4c43-8f2e-2f0c1b9a7d10","attempt":1,"design":"spool-holder","version":3,"file":"parts/arm.stl","sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","size":684,"material":"PLA","colour":"black","bbox":[20,20,20],"max_hours":8},"lease":"lease-secret","lease_expires_at":"2026-11-30T22:00:00Z","file_url":"/api/v1/agent/jobs/0b7e6a52-9d1c-4c43-8f2e-2f0c1b9a7d10/file","heartbeat_s":10}`), false)
	f.Add([]byte(`{"heartbeat_s":10,"drop":["a1","b2"]}`), false)
	f.Add([]byte(`{"lease_expires_at":"2026-11-30T22:01:00Z","cancel":true}`), true)
	f.Fuzz(func(t *testing.T, data []byte, event bool) {
		if event {
			var resp EventResponse
			if err := json.NewDecoder(bytes.NewReader(data)).Decode(&resp); err != nil {
				return
			}
			sameAfterRoundTrip(t, &resp, &EventResponse{})
			return
		}
		var resp PollResponse
		if err := json.NewDecoder(bytes.NewReader(data)).Decode(&resp); err != nil {
			return
		}
		if err := resp.Check(); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" || fe.Message == "" {
				t.Fatalf("a refused answer: got %T %v, want a FieldError naming its field", err, err)
			}
			return
		}
		if d := time.Duration(resp.HeartbeatS) * time.Second; d < 0 || resp.HeartbeatS > MaxHeartbeatS {
			t.Fatalf("accepted heartbeat_s %d, which is %s", resp.HeartbeatS, d)
		}
		if j := resp.Job; j != nil {
			if strings.ContainsAny(j.ID, `/\.`) || j.ID == "" || !HubPath(resp.FileURL) || strings.HasPrefix(resp.FileURL, "//") || len(j.SHA256) != 64 {
				t.Fatalf("accepted a job that is not safe to act on: %+v, file %q", j, resp.FileURL)
			}
		}
		again := sameAfterRoundTrip(t, &resp, &PollResponse{})
		if err := again.Check(); err != nil {
			t.Fatalf("accepted %+v, but read back it is refused: %v", resp, err)
		}
	})
}

// sameAfterRoundTrip writes v as JSON, reads it into again, and fails unless again
// writes the same JSON (times compare by instant, not by zone pointer, that way).
func sameAfterRoundTrip[T any](t *testing.T, v, again *T) *T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %+v: %v", v, err)
	}
	if err := json.Unmarshal(b, again); err != nil {
		t.Fatalf("%s does not read back: %v", b, err)
	}
	b2, err := json.Marshal(again)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("written as %s, read back and written again as %s, %v", b, b2, err)
	}
	return again
}
