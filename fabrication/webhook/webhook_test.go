package webhook

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestSignAndVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"event":"job.done"}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	// The documented recipe, worked by hand: HMAC-SHA256("whsec_k", "1800000000." + body).
	got := Sign("whsec_k", ts, body)
	if len(got) != 64 {
		t.Fatalf("got a signature of %d hex digits, want 64", len(got))
	}
	h := http.Header{}
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, "sha256="+got)
	if err := Verify("whsec_k", h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("a good delivery: got %v, want nil", err)
	}
	tests := []struct {
		name   string
		secret string
		body   string
		at     time.Time
	}{
		{"other secret", "whsec_other", string(body), now},
		{"body changed", "whsec_k", `{"event":"job.failed"}`, now},
		{"replayed late", "whsec_k", string(body), now.Add(6 * time.Minute)},
	}
	for _, tt := range tests {
		if err := Verify(tt.secret, h, []byte(tt.body), tt.at, 5*time.Minute); err == nil {
			t.Errorf("%s: got nil, want a refusal", tt.name)
		}
	}
	// The timestamp is signed: moving it breaks the signature.
	h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10))
	if err := Verify("whsec_k", h, body, now, 5*time.Minute); err == nil {
		t.Error("a changed timestamp: got nil, want a refusal")
	}
}

func TestNextState(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	backoff := []time.Duration{30 * time.Second, 2 * time.Minute}
	tests := []struct {
		name      string
		attempts  int // before this one
		status    int
		err       error
		wantState string
		wantNext  time.Time
		wantError string
	}{
		{"first ok", 0, 204, nil, Delivered, t0.Add(-time.Hour), ""},
		{"first 500 waits 30 s", 0, 500, nil, Pending, t0.Add(30 * time.Second), "the receiver answered 500 Internal Server Error"},
		{"second failure waits 2 min", 1, 0, errors.New("dial refused"), Pending, t0.Add(2 * time.Minute), "dial refused"},
		{"a redirect is a failure", 1, 302, nil, Pending, t0.Add(2 * time.Minute), "the receiver answered 302 Found"},
		{"backoff spent", 2, 503, nil, Failed, t0.Add(-time.Hour), "the receiver answered 503 Service Unavailable"},
		{"late success", 2, 200, nil, Delivered, t0.Add(-time.Hour), ""},
	}
	for _, tt := range tests {
		d := Delivery{State: Pending, Attempts: tt.attempts, NextAttemptAt: t0.Add(-time.Hour)}
		got := nextState(d, tt.status, tt.err, t0, backoff)
		if got.State != tt.wantState || !got.NextAttemptAt.Equal(tt.wantNext) || got.LastError != tt.wantError ||
			got.Attempts != tt.attempts+1 || got.LastStatus != tt.status || !got.UpdatedAt.Equal(t0) {
			t.Errorf("%s: got %s next %v error %q attempts %d, want %s next %v error %q attempts %d",
				tt.name, got.State, got.NextAttemptAt, got.LastError, got.Attempts, tt.wantState, tt.wantNext, tt.wantError, tt.attempts+1)
		}
	}
}

func TestDefaultBackoffLastsADay(t *testing.T) {
	t.Parallel()
	var total time.Duration
	for _, d := range DefaultBackoff {
		total += d
	}
	if total < 20*time.Hour || total > 24*time.Hour {
		t.Fatalf("got retries over %v, want about a day (20 to 24 h)", total)
	}
}
