package fabrication

import (
	"math"
	"time"
)

// Roles of lab members.
const (
	RoleOwner    = "owner"
	RoleOperator = "operator"
	RoleMember   = "member"
)

// Lab is a fab lab: a place with machines and the people who run them.
type Lab struct {
	ID        string    `json:"id"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	Location  string    `json:"location"`
	Timezone  string    `json:"timezone"`
	Policy    Policy    `json:"policy"`
	CreatedAt time.Time `json:"created_at"`
}

// Policy is a lab's own rules for sharing its machine time.
type Policy struct {
	Submit           string  `json:"submit"`            // "public" or "members": who may queue jobs
	ApprovalRequired bool    `json:"approval_required"` // jobs wait for an operator before they queue
	MaxJobHours      float64 `json:"max_job_hours"`     // 0: no limit; agents refuse longer prints
	ApproveMachines  bool    `json:"approve_machines"`  // machines registering with a join token wait for approval
	HarvestConfirm   bool    `json:"harvest_confirm"`   // a finished print waits for someone to take it off the bed
	Credits          string  `json:"credits"`           // "off" (time given freely) or "required" (jobs are paid in machine-minutes)
	MinutesPerCm3    float64 `json:"minutes_per_cm3"`   // machine-minutes a cm³ of part takes, for holds (0: DefaultMinutesPerCm3)
}

// Member is a person's role in a lab.
type Member struct {
	LabID  string `json:"-"`
	UserID string `json:"-"`
	Handle string `json:"handle"`
	Role   string `json:"role"`
}

// Processes a machine can run.
const (
	ProcessFDM   = "fdm"
	ProcessSLA   = "sla"
	ProcessLaser = "laser"
	ProcessCNC   = "cnc"
)

// Machine states.
const (
	MachineIdle        = "idle"
	MachineBusy        = "busy"
	MachineOffline     = "offline"
	MachineMaintenance = "maintenance"
)

// Volume is a build volume or a part's size, in millimetres.
type Volume struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	Z float64 `json:"z"`
}

// Machine is one printer, laser cutter or mill, driven by an agent.
type Machine struct {
	ID          string     `json:"id"`
	LabID       string     `json:"lab_id"`
	Name        string     `json:"name"`
	Process     string     `json:"process"`
	BuildVolume Volume     `json:"build_volume"`
	Nozzle      float64    `json:"nozzle,omitempty"`
	Materials   []string   `json:"materials"`
	Tags        []string   `json:"tags"`
	Driver      string     `json:"driver"`
	State       string     `json:"state"` // idle, busy, offline or maintenance
	Maintenance bool       `json:"maintenance"`
	Approved    bool       `json:"approved"`
	Retired     bool       `json:"retired,omitempty"`       // out of service for good: no work, no token
	JoinTokenID string     `json:"join_token_id,omitempty"` // the join token it registered with, if any
	LastSeen    *time.Time `json:"last_seen"`
	TokenHash   string     `json:"-"`
	CreatedAt   time.Time  `json:"created_at"`
	Rev         int        `json:"-"`
}

// Job states.
const (
	JobPendingApproval = "pending_approval"
	JobQueued          = "queued"
	JobAssigned        = "assigned"
	JobPrinting        = "printing"
	JobAwaitingHarvest = "awaiting_harvest"
	JobDone            = "done"
	JobFailed          = "failed"
	JobCanceled        = "canceled"
	JobRejected        = "rejected"
	JobUnknown         = "unknown"
)

// Order is what a person asks a lab for: copies of a design version's parts.
type Order struct {
	ID          string    `json:"id"`
	RequesterID string    `json:"-"`
	Requester   string    `json:"requester"` // handle
	LabID       string    `json:"lab_id"`
	LabSlug     string    `json:"lab"`
	DesignID    string    `json:"design_id"`
	DesignSlug  string    `json:"design"`
	DesignTitle string    `json:"design_title"`
	Version     int       `json:"version"`
	Material    string    `json:"material"`
	Colour      string    `json:"colour"`
	Process     string    `json:"process"`
	Quantity    int       `json:"quantity"`
	Priority    int       `json:"priority"`
	Files       []string  `json:"files"`
	BOMRefs     []string  `json:"bom_refs"`
	CreatedAt   time.Time `json:"created_at"`
}

// Job is one physical make of one file on one machine: what an agent claims.
type Job struct {
	ID           string     `json:"id"`
	OrderID      string     `json:"order_id"`
	LabID        string     `json:"lab_id"`
	RequesterID  string     `json:"-"`
	Requester    string     `json:"requester"`
	DesignID     string     `json:"design_id"`
	DesignSlug   string     `json:"design"`
	Version      int        `json:"version"`
	File         string     `json:"file"`
	SHA256       string     `json:"sha256"`
	Size         int64      `json:"size"`
	BBox         Volume     `json:"bbox"` // the part's size in mm
	Process      string     `json:"process"`
	Material     string     `json:"material"`
	Colour       string     `json:"colour"`
	Tags         []string   `json:"tags"` // machine tags the job requires
	Priority     int        `json:"priority"`
	Copy         int        `json:"copy"` // 1..n among the order's copies of this file
	State        string     `json:"state"`
	MachineID    string     `json:"machine_id"`
	Holding      bool       `json:"-"` // the job occupies its machine (assigned … awaiting harvest, or canceled until the agent lets go)
	LeaseHash    string     `json:"-"`
	LeaseExpires *time.Time `json:"lease_expires_at"`
	Attempts     int        `json:"attempts"` // claims, one per agent that took it (each names its printer file)
	Failures     int        `json:"failures"` // prints that failed for the machine's reasons
	Progress     float64    `json:"progress"`
	Message      string     `json:"message"`
	Estimate     *Estimate  `json:"estimate"`
	HoldMinutes  int64      `json:"hold_minutes"` // machine-minutes held on the requester's account (labs that require credits)
	Charged      bool       `json:"charged"`      // ordered while the lab required credits: the requester pays for it
	EnqueuedAt   time.Time  `json:"enqueued_at"`
	StartedAt    *time.Time `json:"started_at"`
	FinishedAt   *time.Time `json:"finished_at"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	Events       []Event    `json:"events"`
	Photos       []Photo    `json:"photos,omitempty"` // of the make: the camera's at the end, people's at harvest
	Rev          int        `json:"-"`                // bumped by every save; a save names the rev it read
}

// Estimate is what a slicer on the agent worked out for the print.
type Estimate struct {
	Seconds    float64 `json:"seconds"`
	FilamentMM float64 `json:"filament_mm"`
}

// Event is one entry in a job's public log.
type Event struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"` // a state, or "progress", "note"
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	Actor   string    `json:"actor,omitempty"` // a handle, "machine:<name>" or "hub"
	Message string    `json:"message,omitempty"`
}

// madeTime is the machine time the hub recorded for a job that was made (done, waiting
// to be harvested, or canceled mid-print), from its start to its finish; zero for
// any other.
func (j Job) madeTime() time.Duration {
	if j.StartedAt == nil || (j.State != JobDone && j.State != JobAwaitingHarvest && j.State != JobCanceled) {
		return 0
	}
	end := j.UpdatedAt
	if j.FinishedAt != nil {
		end = *j.FinishedAt
	}
	return end.Sub(*j.StartedAt)
}

// Terminal reports whether the job has ended.
func (j Job) Terminal() bool {
	switch j.State {
	case JobDone, JobFailed, JobCanceled, JobRejected:
		return true
	}
	return false
}

// Enrollment is a one-time code that lets an agent take over a machine record.
type Enrollment struct {
	CodeHash  string
	MachineID string
	ExpiresAt time.Time
}

// JoinToken lets agents register new machines in a lab without a code each.
type JoinToken struct {
	ID        string    `json:"id"`
	LabID     string    `json:"-"`
	Name      string    `json:"name"`
	Prefix    string    `json:"prefix"`
	Hash      string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	Revoked   bool      `json:"revoked"`
}

// Usage is a requester's recent machine time in a lab, decaying with a half-life so
// that old use counts for less: the fair-share key.
type Usage struct {
	LabID       string
	RequesterID string
	Seconds     float64
	UpdatedAt   time.Time
}

// UsageHalfLife is how fast machine time is forgotten for fair share (stores that
// decay usage in their own query use it too).
const UsageHalfLife = 7 * 24 * time.Hour

// At returns the decayed usage at t.
func (u Usage) At(t time.Time) float64 {
	if u.Seconds == 0 {
		return 0
	}
	age := t.Sub(u.UpdatedAt)
	if age <= 0 {
		return u.Seconds
	}
	return u.Seconds * math.Exp2(-float64(age)/float64(UsageHalfLife))
}
