package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// The headers of every delivery.
const (
	HeaderEvent     = "X-Fab-Event"     // the event's name, e.g. job.failed
	HeaderDelivery  = "X-Fab-Delivery"  // the delivery's id: the same on every retry of it
	HeaderTimestamp = "X-Fab-Timestamp" // Unix seconds when this attempt was made
	HeaderSignature = "X-Fab-Signature" // "sha256=" + Sign
)

// Sign is the hex HMAC-SHA256, keyed by the hook's secret, of timestamp + "." + body:
// binding the timestamp lets a receiver refuse an old delivery replayed.
func Sign(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a delivery as a receiver should: the signature over the timestamp and
// body, compared in constant time, and a timestamp no further than tolerance from now.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts := h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("webhook: no valid " + HeaderTimestamp)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("webhook: the timestamp is too far from now")
	}
	want := "sha256=" + Sign(secret, ts, body)
	if !hmac.Equal([]byte(h.Get(HeaderSignature)), []byte(want)) {
		return errors.New("webhook: the signature does not match")
	}
	return nil
}
