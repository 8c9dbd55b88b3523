package agentapi

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of the contract's messages. Each side checks what it receives against them
// (the hub: polls and reports; the agent: the hub's answers) with the Check methods.
const (
	MaxHeldJobs        = 100             // jobs one poll may list
	MaxMessage         = 500             // characters in a report's or a held job's message
	MaxHeartbeatS      = 3600            // the longest heartbeat a hub may ask for
	MaxEstimateSeconds = 365 * 24 * 3600 // a slicer's estimate past a year is not one
	MaxEstimateMM      = 1e9             // nor is a kilometre... a thousand of them
)

// FieldError says which field of a message breaks this contract, and how. The hub
// answers it as 422 naming the field.
type FieldError struct {
	Field   string // as in the JSON: "jobs[2].state", "job.sha256"
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

func checkMessage(field, m string) error {
	if utf8.RuneCountInString(m) > MaxMessage || !utf8.ValidString(m) {
		return invalid(field, "at most %d characters of UTF-8 text", MaxMessage)
	}
	return nil
}

func checkProgress(field string, p float64) error {
	if !(p >= 0 && p <= 100) { // NaN included, though JSON cannot carry one
		return invalid(field, "want 0 to 100")
	}
	return nil
}

// Check says whether a poll keeps the contract: a known state ("" is idle), a wait of
// zero or more seconds, at most MaxHeldJobs held jobs, each with an id, a known state,
// progress from 0 to 100 and a message of at most MaxMessage characters. A gone job's
// message is only a note: the hub ignores one it cannot use, so it is not checked. The
// protocol version is not Check's: a mismatch has its own answer (426).
func (r PollRequest) Check() error {
	switch r.State {
	case "", StateIdle, StateBusy, StateMaintenance:
	default:
		return invalid("state", "want %s, %s or %s", StateIdle, StateBusy, StateMaintenance)
	}
	if r.WaitSeconds < 0 {
		return invalid("wait_s", "want 0 or more seconds")
	}
	if len(r.Jobs) > MaxHeldJobs {
		return invalid("jobs", "at most %d held jobs", MaxHeldJobs)
	}
	for i, h := range r.Jobs {
		field := func(name string) string { return fmt.Sprintf("jobs[%d].%s", i, name) }
		if h.ID == "" {
			return invalid(field("id"), "is required")
		}
		switch h.State {
		case HeldStarting, HeldPrinting, HeldFinished, HeldFailed:
			if err := checkMessage(field("message"), h.Message); err != nil {
				return err
			}
		case HeldGone:
		default:
			return invalid(field("state"), "want %s, %s, %s, %s or %s", HeldStarting, HeldPrinting, HeldFinished, HeldFailed, HeldGone)
		}
		if err := checkProgress(field("progress"), h.Progress); err != nil {
			return err
		}
	}
	return nil
}

// Check says whether a report keeps the contract: a known kind, progress from 0 to
// 100 and a message of at most MaxMessage characters. An estimate is a slicer's guess:
// one out of range is not an error, and the hub ignores it (Estimate.Usable).
func (r EventRequest) Check() error {
	switch r.Kind {
	case EventStarted, EventProgress, EventFinished, EventFailed:
	default:
		return invalid("kind", "want %s, %s, %s or %s", EventStarted, EventProgress, EventFinished, EventFailed)
	}
	if err := checkProgress("progress", r.Progress); err != nil {
		return err
	}
	return checkMessage("message", r.Message)
}

// Usable says whether the estimate is one the hub can act on: figures from zero to
// MaxEstimateSeconds and MaxEstimateMM.
func (e *Estimate) Usable() bool {
	return e != nil && e.Seconds >= 0 && e.Seconds <= MaxEstimateSeconds && e.FilamentMM >= 0 && e.FilamentMM <= MaxEstimateMM
}

// Check says whether a poll's answer keeps the contract, as the agent reads it: a
// heartbeat from 0 (not said) to MaxHeartbeatS seconds; dropped jobs named; and a job,
// when there is one, with a plain id (ValidJobID: it becomes part of file names), its
// lease, a SHA-256 of 64 lowercase hex digits, a size, version and attempt that can be
// true, a bounding box and time limit of zero or more, and a file URL that is a path on
// the hub (the agent sends its token nowhere else).
func (r PollResponse) Check() error {
	if r.HeartbeatS < 0 || r.HeartbeatS > MaxHeartbeatS {
		return invalid("heartbeat_s", "want 0 to %d seconds", MaxHeartbeatS)
	}
	for i, id := range r.Drop {
		if id == "" {
			return invalid(fmt.Sprintf("drop[%d]", i), "is empty")
		}
	}
	j := r.Job
	if j == nil {
		return nil
	}
	switch {
	case !ValidJobID(j.ID):
		return invalid("job.id", "want up to 64 letters, digits, '-' and '_'")
	case r.Lease == "":
		return invalid("lease", "a job comes with its lease")
	case !HubPath(r.FileURL):
		return invalid("file_url", "want a path on the hub")
	case !validSHA256(j.SHA256):
		return invalid("job.sha256", "want 64 lowercase hex digits")
	case j.Size < 0:
		return invalid("job.size", "want 0 or more bytes")
	case j.Version < 1:
		return invalid("job.version", "want 1 or more")
	case j.Attempt < 0:
		return invalid("job.attempt", "want 0 or more")
	case !(j.BBox[0] >= 0 && j.BBox[1] >= 0 && j.BBox[2] >= 0):
		return invalid("job.bbox", "want sizes of 0 or more")
	case !(j.MaxHours >= 0):
		return invalid("job.max_hours", "want 0 (no limit) or more")
	}
	return nil
}

// ValidJobID says whether id is a plain name: 1 to 64 letters, digits, '-' and '_'.
// An agent puts job ids in file names, on its machine and on the printer.
func ValidJobID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' && r != '_' {
			return false
		}
	}
	return true
}

// HubPath says whether u is a path on the hub, as a file URL must be: it starts with
// one "/", and holds no backslash or line break.
func HubPath(u string) bool {
	return strings.HasPrefix(u, "/") && !strings.HasPrefix(u, "//") && !strings.ContainsAny(u, "\\\r\n")
}

func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ClipMessage shortens m to at most MaxMessage characters, for an agent passing on a
// printer's words, which can be any length.
func ClipMessage(m string) string {
	m = strings.ToValidUTF8(m, "\uFFFD")
	if utf8.RuneCountInString(m) <= MaxMessage {
		return m
	}
	r := []rune(m)
	return string(r[:MaxMessage-1]) + "…"
}
