package fabrication

import (
	"context"
	"time"
)

// LabStore keeps labs, members and join tokens. Backends return storage.ErrNotFound
// and storage.ErrConflict.
type LabStore interface {
	CreateLab(ctx context.Context, lab Lab, owner Member) error
	LabBySlug(ctx context.Context, slug string) (Lab, error)
	LabByID(ctx context.Context, id string) (Lab, error)
	Labs(ctx context.Context) ([]Lab, error)
	// SetPolicy replaces a lab's policy, or returns storage.ErrNotFound.
	SetPolicy(ctx context.Context, labID string, p Policy) error
	PutMember(ctx context.Context, m Member) error
	Member(ctx context.Context, labID, userID string) (Member, error)
	Members(ctx context.Context, labID string) ([]Member, error)
	// DeleteMember removes a member, or returns storage.ErrNotFound.
	DeleteMember(ctx context.Context, labID, userID string) error
	CreateJoinToken(ctx context.Context, t JoinToken) error
	JoinTokenByHash(ctx context.Context, hash string) (JoinToken, error)
	JoinTokens(ctx context.Context, labID string) ([]JoinToken, error)
	RevokeJoinToken(ctx context.Context, labID, id string) error
}

// MachineStore keeps machines and their one-time enrolment codes.
type MachineStore interface {
	CreateMachine(ctx context.Context, m Machine) error
	Machine(ctx context.Context, id string) (Machine, error)
	MachineByTokenHash(ctx context.Context, hash string) (Machine, error)
	Machines(ctx context.Context, labID string) ([]Machine, error)
	// SaveMachine writes m if its stored rev is still prevRev (then rev becomes
	// prevRev+1), or returns storage.ErrConflict.
	SaveMachine(ctx context.Context, m Machine, prevRev int) error
	// TouchMachine records that the machine's agent was heard from at `at`; a machine
	// in state from moves to state to in the same write.
	TouchMachine(ctx context.Context, id string, at time.Time, from, to string) error
	// MarkUnheard moves every machine in one of the states from, not heard from since
	// `before`, to state to, and returns their ids.
	MarkUnheard(ctx context.Context, before time.Time, from []string, to string) ([]string, error)
	CreateEnrollment(ctx context.Context, e Enrollment) error
	// DeleteEnrollments voids every outstanding one-time code of the machines.
	DeleteEnrollments(ctx context.Context, machineIDs []string) error
	// ConsumeEnrollment uses up a code that exists, is unused and has not expired at
	// now, in one atomic step, and returns its machine; otherwise storage.ErrNotFound.
	ConsumeEnrollment(ctx context.Context, codeHash string, now time.Time) (string, error)
}

// JobStore keeps orders and jobs. Every change to a job is a compare-and-set on its
// rev, so concurrent claims, reports and rescues never both win.
type JobStore interface {
	CreateOrder(ctx context.Context, o Order, jobs []Job) error
	Order(ctx context.Context, id string) (Order, error)
	Job(ctx context.Context, id string) (Job, error)
	// SaveJob writes j if its stored rev is still prevRev (then rev becomes prevRev+1),
	// or returns storage.ErrConflict.
	SaveJob(ctx context.Context, j Job, prevRev int) error
	// ClaimJob is SaveJob for a job read without its log (from Queued): it writes j's
	// fields, keeps the stored log and appends e to it, if the rev is still prevRev.
	ClaimJob(ctx context.Context, j Job, prevRev int, e Event) error
	JobsOfOrder(ctx context.Context, orderID string) ([]Job, error)
	// Queued lists a lab's queued jobs by priority (highest first), then age.
	Queued(ctx context.Context, labID string, limit int) ([]Job, error)
	// LabJobs lists a lab's jobs in the given states, most recently updated first.
	LabJobs(ctx context.Context, labID string, states []string, limit int) ([]Job, error)
	// DesignJobs lists a design's jobs in the given states, longest queued first, without logs.
	DesignJobs(ctx context.Context, designID string, states []string, limit int) ([]Job, error)
	// HeldJobs lists the jobs that occupy a machine (Holding).
	HeldJobs(ctx context.Context, machineID string) ([]Job, error)
	// ExpiredLeases lists assigned or printing jobs whose lease ended before now.
	ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]Job, error)
	Usage(ctx context.Context, labID string) (map[string]Usage, error)
	// AddUsage adds seconds of machine time to a requester's decayed usage in a lab.
	AddUsage(ctx context.Context, labID, requesterID string, seconds float64, at time.Time) error
	// DesignJobCounts counts, per design id, jobs done and failed (for the counters).
	DesignJobCounts(ctx context.Context) (map[string][2]int, error)
	// DesignLabCounts counts, per lab id, one design's jobs done and failed (its
	// fabrication record).
	DesignLabCounts(ctx context.Context, designID string) (map[string][2]int, error)
}

// Store is all four, as each backend provides them.
type Store interface {
	LabStore
	MachineStore
	JobStore
	LedgerStore
}
