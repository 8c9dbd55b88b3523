// Package agentapi is the wire contract between the hub and printer-side agents: the
// calls (Hub, with every outcome of each), their paths, headers, states and error
// codes, the request and response bodies, and the protocol version both sides check.
// Bump Protocol on every change to these or to what a reply means. docs/agent-protocol.md
// is the same contract in prose; a test checks that it names everything here.
//
// Lifecycle of an agent:
//
//  1. Enrol once: Enroll (a one-time code an operator got when adding the machine) or
//     Register (a lab's reusable join token). Either returns the machine token, which
//     the agent keeps (mode 0600) and sends as "Authorization: Bearer <token>" from then on.
//  2. Poll: the hub answers at once with a job when one fits, or holds the request up to
//     wait_s seconds and then answers 204 No Content. "jobs" lists every job the agent
//     holds with what the printer really did; the hub reconciles them and may answer
//     with "drop" naming jobs the agent must abandon. An agent whose printer cannot take
//     work polls with state "busy" and gets none.
//  3. Work: download the job's file (only the lease holder may), check its SHA-256,
//     print, and report events at least every heartbeat_s seconds. Each reply extends
//     the lease; cancel: true means stop now. 409 stale_lease means the job was taken
//     back: drop it.
//     When the print is done and the machine has a camera, the agent may send a photo of
//     it (Photo) before it reports finished, with the same lease.
//  4. A lease that is not extended expires: a job that had not started goes back to
//     the queue; a job that was printing becomes "unknown" and is never queued again
//     by itself — the agent's next report (or an operator) says what happened.
package agentapi

import (
	"context"
	"net/url"
	"strings"
	"time"
)

// Protocol is the version of this contract.
//
//	2: Job.attempt (printers keep records by file name, so each attempt gets its own);
//	   a poll with state "busy" gets no job; a poll's capabilities are gone (the hub
//	   never read them; Register still carries them); a protocol mismatch is 426.
//	3: Photo (PathJobPhoto): a snapshot of the finished print, sent with the lease.
const Protocol = 3

// Paths of the calls. {id} is a job id: JobPath fills it in.
const (
	PathEnroll    = "/api/v1/agent/enroll"
	PathRegister  = "/api/v1/agent/register"
	PathPoll      = "/api/v1/agent/poll"
	PathJobEvents = "/api/v1/agent/jobs/{id}/events"
	PathJobFile   = "/api/v1/agent/jobs/{id}/file"
	PathJobPhoto  = "/api/v1/agent/jobs/{id}/photo"
)

// JobPath fills a job id into one of the job paths.
func JobPath(pattern, id string) string {
	return strings.Replace(pattern, "{id}", url.PathEscape(id), 1)
}

// HeaderLease carries the job's lease on a file download and a photo upload.
const HeaderLease = "X-Fab-Lease"

// Machine states an agent reports in a poll.
const (
	StateIdle        = "idle"
	StateBusy        = "busy" // the printer is occupied (a print of its own, paused, off) or unreachable: no job
	StateMaintenance = "maintenance"
)

// Error codes an agent acts on (the "code" of the hub's error body).
const (
	CodeStaleLease          = "stale_lease"          // 409: the job is no longer this agent's; drop it
	CodeUnsupportedProtocol = "unsupported_protocol" // 426: the agent must be upgraded; it stops
	CodeUnauthenticated     = "unauthenticated"      // 401: the machine token was revoked or replaced; it stops
	CodeForbidden           = "forbidden"            // 403: a job of another lab, a used code, a revoked join token
	CodeRateLimited         = "rate_limited"         // 429: wait Retry-After
)

// Hub is the hub as an agent sees it: one method per call. Every call can also fail
// with 5xx or a network error, which the agent's client retries with backoff where
// repeating the call is safe.
type Hub interface {
	// Enroll: POST PathEnroll {code}. 200 Enrollment; 403 the code is unknown or used;
	// 429 too many wrong codes from this address. Not retried: a code is single use.
	Enroll(ctx context.Context, code string) (Enrollment, error)
	// Register: POST PathRegister. 201 Enrollment; 403 the join token is unknown or
	// revoked; 422 a capability is invalid; 429 as Enroll. Not retried: a repeat would
	// make a second machine.
	Register(ctx context.Context, req RegisterRequest) (Enrollment, error)
	// Poll: POST PathPoll. 200 with a job (and its lease and file_url) and/or jobs to
	// drop; 204 (nil) no work within the wait; 401 the machine token is unknown or
	// revoked; 426 the hub speaks another protocol.
	Poll(ctx context.Context, req PollRequest) (*PollResponse, error)
	// Event: POST PathJobEvents. 200 EventResponse (the lease extended; cancel: stop);
	// 401 as Poll; 403 a job of another lab; 409 stale_lease: drop the job; 422 a
	// field is invalid.
	Event(ctx context.Context, id string, req EventRequest) (EventResponse, error)
	// Download: GET file_url (PathJobFile) with HeaderLease into dst, the SHA-256
	// checked before dst appears. 200 the bytes; 206 the rest of them after a cut
	// (Range: bytes=N- with If-Range: the quoted SHA-256, the file's ETag); 401 as
	// Poll; 403 a job of another lab; 409 the lease is stale or the job no longer
	// printable.
	Download(ctx context.Context, fileURL, lease, wantSHA256, dst string, progress func(done, total int64)) error
	// Photo: POST PathJobPhoto with HeaderLease, the image as the body (Content-Type
	// image/jpeg, image/png or image/gif, at most MaxPhotoBytes). The hub decodes it
	// and stores a re-encoded copy as the job's camera photo, replacing the camera photo
	// it had. 201 PhotoResponse; 401 as Poll; 403 a job of another lab; 409 the lease
	// is stale or the job is not printing; 413 too large; 415 not an image type; 422
	// the image is damaged or too many pixels. Retried like Event: a repeat replaces
	// the photo with the same one.
	Photo(ctx context.Context, id, lease, contentType string, image []byte) (PhotoResponse, error)
}

// MaxPhotoBytes bounds a photo upload (the hub's image limit).
const MaxPhotoBytes = 16 << 20

// PhotoResponse is the hub's answer to a photo: the stored copy's key and type.
type PhotoResponse struct {
	Key         string `json:"key"` // SHA-256 of the re-encoded image
	ContentType string `json:"content_type"`
}

// Capabilities is what an agent reports about its machine. An operator's settings on
// the hub win over what the agent says.
type Capabilities struct {
	Process     string     `json:"process"` // fdm, sla, laser or cnc
	BuildVolume [3]float64 `json:"build_volume"`
	Nozzle      float64    `json:"nozzle,omitempty"`
	Materials   []string   `json:"materials,omitempty"`
	Tags        []string   `json:"tags,omitempty"`
	Driver      string     `json:"driver"`
	Slicer      string     `json:"slicer,omitempty"`
}

// EnrollRequest exchanges a one-time code for a machine token.
type EnrollRequest struct {
	Code string `json:"code"`
}

// RegisterRequest creates a machine with a lab's join token.
type RegisterRequest struct {
	JoinToken    string       `json:"join_token"`
	Name         string       `json:"name"`
	Capabilities Capabilities `json:"capabilities"`
}

// Enrollment is the answer to enroll and register.
type Enrollment struct {
	MachineID string `json:"machine_id"`
	Lab       string `json:"lab"`
	Token     string `json:"token"`
	Approved  bool   `json:"approved"` // false: an operator must approve before jobs come
}

// Agent-side states of a held job, reported in polls.
const (
	HeldStarting = "starting" // downloading or preparing, nothing printed yet
	HeldPrinting = "printing"
	HeldFinished = "finished"
	HeldFailed   = "failed"
	HeldGone     = "gone" // the printer knows nothing of it: it never started
)

// HeldJob is a job the agent holds, with what the printer really did.
type HeldJob struct {
	ID       string  `json:"id"`
	Lease    string  `json:"lease"`
	State    string  `json:"state"`
	Progress float64 `json:"progress"`
	Message  string  `json:"message,omitempty"`
}

// PollRequest asks for work.
type PollRequest struct {
	Protocol    int       `json:"protocol"`
	State       string    `json:"state"` // StateIdle, StateBusy or StateMaintenance
	Jobs        []HeldJob `json:"jobs"`
	WaitSeconds int       `json:"wait_s,omitempty"` // how long the hub may hold the poll (capped by the hub)
}

// Job is a job as the agent sees it.
type Job struct {
	ID string `json:"id"`
	// Attempt counts the claims of this job, this one included: a job that failed and
	// was queued again comes back with the same id and a higher attempt.
	Attempt  int        `json:"attempt"`
	Design   string     `json:"design"`
	Version  int        `json:"version"`
	File     string     `json:"file"`
	SHA256   string     `json:"sha256"`
	Size     int64      `json:"size"`
	Material string     `json:"material"`
	Colour   string     `json:"colour"`
	BBox     [3]float64 `json:"bbox"`
	MaxHours float64    `json:"max_hours,omitempty"`
}

// PollResponse carries a job with its lease, and/or jobs to drop.
type PollResponse struct {
	Job          *Job      `json:"job,omitempty"`
	Lease        string    `json:"lease,omitempty"`
	LeaseExpires time.Time `json:"lease_expires_at,omitempty"`
	FileURL      string    `json:"file_url,omitempty"`
	HeartbeatS   int       `json:"heartbeat_s"`
	Drop         []string  `json:"drop,omitempty"`
}

// Event kinds.
const (
	EventStarted  = "started"
	EventProgress = "progress"
	EventFinished = "finished"
	EventFailed   = "failed"
)

// EventRequest reports on a held job.
type EventRequest struct {
	Lease     string    `json:"lease"`
	Kind      string    `json:"kind"`
	Progress  float64   `json:"progress"`
	Message   string    `json:"message,omitempty"`
	Retryable bool      `json:"retryable,omitempty"` // with failed: worth trying again (e.g. a clog, not a bad file)
	Estimate  *Estimate `json:"estimate,omitempty"`
}

// Estimate is a slicer's figures for the print.
type Estimate struct {
	Seconds    float64 `json:"seconds"`
	FilamentMM float64 `json:"filament_mm"`
}

// EventResponse extends the lease and says whether to stop.
type EventResponse struct {
	LeaseExpires time.Time `json:"lease_expires_at"`
	Cancel       bool      `json:"cancel"`
}

// Error is the hub's error body.
type Error struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}
