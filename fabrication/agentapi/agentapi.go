// Package agentapi is the wire contract between the hub and printer-side agents: the
// request and response bodies of /api/v1/agent/*, and the protocol version both sides
// check. Bump Protocol on every change to these types or to what a reply means.
//
// Lifecycle of an agent:
//
//  1. Enrol once: POST /agent/enroll {code} (a one-time code an operator got when
//     adding the machine), or POST /agent/register {join_token, name, capabilities}
//     (a lab's reusable join token). Either returns the machine token, which the
//     agent keeps (mode 0600) and sends as "Authorization: Bearer <token>" from then on.
//  2. Poll: POST /agent/poll {protocol, capabilities, state, jobs}. The hub answers at
//     once with 200 and a job when one fits, or holds the request up to wait_s seconds
//     and then answers 204 No Content. "jobs" lists every job the agent holds with
//     what the printer really did; the hub reconciles them and may answer 200 with
//     "drop" naming jobs the agent must abandon.
//  3. Work: GET the job's file_url (only the lease holder may), check its SHA-256, print,
//     and report POST /agent/jobs/{id}/events {lease, kind, ...} at least every
//     heartbeat_s seconds. Each reply extends the lease; cancel: true means stop now.
//     409 means the lease is stale (the job was taken back): drop the job.
//  4. A lease that is not extended expires: a job that had not started goes back to
//     the queue; a job that was printing becomes "unknown" and is never queued again
//     by itself — the agent's next report (or an operator) says what happened.
package agentapi

import "time"

// Protocol is the version of this contract.
//
//	2: Job.attempt (printers keep records by file name, so each attempt gets its own);
//	   a poll with state "busy" (the printer prints something of its own) gets no job.
const Protocol = 2

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
	Protocol     int          `json:"protocol"`
	Capabilities Capabilities `json:"capabilities"`
	State        string       `json:"state"` // idle; busy (the printer is occupied or unreachable) or maintenance: no job is given
	Jobs         []HeldJob    `json:"jobs"`
	WaitSeconds  int          `json:"wait_s,omitempty"` // how long the hub may hold the poll (capped by the hub)
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
