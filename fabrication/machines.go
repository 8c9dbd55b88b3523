package fabrication

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fabcommons/fabcommons/storage"
)

// MachineSpec is what an operator says about a machine.
type MachineSpec struct {
	Name        string   `json:"name"`
	Process     string   `json:"process"`
	BuildVolume Volume   `json:"build_volume"`
	Nozzle      float64  `json:"nozzle"`
	Materials   []string `json:"materials"`
	Tags        []string `json:"tags"`
	Driver      string   `json:"driver"`
}

func checkMachine(m *MachineSpec) error {
	if err := checkText("name", m.Name, 80, true); err != nil {
		return err
	}
	switch m.Process {
	case ProcessFDM, ProcessSLA, ProcessLaser, ProcessCNC:
	default:
		return storage.Invalid("process", "want fdm, sla, laser or cnc")
	}
	v := m.BuildVolume
	if !(v.X > 0 && v.Y > 0 && v.Z >= 0 && v.X < 1e5 && v.Y < 1e5 && v.Z < 1e5) || (m.Process != ProcessLaser && v.Z <= 0) {
		return storage.Invalid("build_volume", "want positive x, y and z in millimetres (z may be 0 for a laser)")
	}
	if m.Nozzle < 0 || m.Nozzle > 5 {
		return storage.Invalid("nozzle", "want a nozzle diameter in mm, up to 5")
	}
	if len(m.Materials) > maxMachineTags || len(m.Tags) > maxMachineTags {
		return storage.Invalid("materials", "at most 50 materials and 50 tags")
	}
	for _, x := range append(slices.Clone(m.Materials), m.Tags...) {
		if err := checkText("materials", x, 40, true); err != nil {
			return err
		}
	}
	if m.Materials == nil {
		m.Materials = []string{}
	}
	if m.Tags == nil {
		m.Tags = []string{}
	}
	return nil
}

// AddMachine registers a machine in a lab and returns a one-time enrolment code for
// its agent. Owners and operators may.
func (l *Labs) AddMachine(ctx context.Context, actor Actor, slug string, spec MachineSpec) (Machine, string, error) {
	lab, err := l.Lab(ctx, slug)
	if err != nil {
		return Machine{}, "", err
	}
	if err := l.requireRole(ctx, actor, lab, RoleOwner, RoleOperator); err != nil {
		return Machine{}, "", err
	}
	if err := checkMachine(&spec); err != nil {
		return Machine{}, "", err
	}
	now := l.clock()
	m := Machine{ID: uuid.NewString(), LabID: lab.ID, Name: spec.Name, Process: spec.Process, BuildVolume: spec.BuildVolume,
		Nozzle: spec.Nozzle, Materials: spec.Materials, Tags: spec.Tags, Driver: spec.Driver, State: MachineOffline,
		Approved: true, CreatedAt: now}
	if err := l.store.CreateMachine(ctx, m); err != nil {
		return Machine{}, "", err
	}
	code, hash := enrollCode()
	if err := l.store.CreateEnrollment(ctx, Enrollment{CodeHash: hash, MachineID: m.ID, ExpiresAt: now.Add(l.opts.EnrollCodeTTL)}); err != nil {
		return Machine{}, "", err
	}
	l.publishMachine(m)
	return m, code, nil
}

// enrollCode is short enough to type from a screen: 16 characters from a 32-letter
// alphabet without look-alikes (80 bits), grouped in fours.
func enrollCode() (string, string) {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 16)
	rand.Read(b)
	var sb strings.Builder
	for i, x := range b {
		if i > 0 && i%4 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(alphabet[int(x)%len(alphabet)])
	}
	code := sb.String()
	return code, hashSecret(normalizeCode(code))
}

func normalizeCode(c string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(c), "-", ""))
}

// Machine token secrets carry their kind, like personal tokens.
const machineTokenPrefix = "fab_m_"

// Enroll exchanges a one-time code for a machine token.
func (l *Labs) Enroll(ctx context.Context, code string) (Machine, string, error) {
	if len(code) > 64 {
		return Machine{}, "", storage.Invalid("code", "not an enrolment code")
	}
	id, err := l.store.ConsumeEnrollment(ctx, hashSecret(normalizeCode(code)), l.now())
	if errors.Is(err, storage.ErrNotFound) {
		return Machine{}, "", fmt.Errorf("the code is unknown, used or expired; ask an operator for a new one: %w", storage.ErrForbidden)
	}
	if err != nil {
		return Machine{}, "", err
	}
	var token string
	m, err := l.casMachine(ctx, id, func(m *Machine) error {
		if m.Retired { // checked in the compare-and-set: a retirement cannot slip between
			return fmt.Errorf("the machine was retired: %w", storage.ErrForbidden)
		}
		token, m.TokenHash = secret(machineTokenPrefix)
		return nil
	})
	if err != nil {
		return Machine{}, "", err
	}
	return m, token, nil
}

// operatorMachine reads machine id for one of its lab's owners or operators.
func (l *Labs) operatorMachine(ctx context.Context, actor Actor, id string) (Machine, error) {
	m, err := l.store.Machine(ctx, id)
	if err != nil {
		return Machine{}, fmt.Errorf("machine %s: %w", id, err)
	}
	lab, err := l.store.LabByID(ctx, m.LabID)
	if err != nil {
		return Machine{}, err
	}
	return m, l.requireRole(ctx, actor, lab, RoleOwner, RoleOperator)
}

// saveMachine applies change to machine id with a compare-and-set (casMachine) and
// publishes the result.
func (l *Labs) saveMachine(ctx context.Context, id string, change func(m *Machine) error) (Machine, error) {
	m, err := l.casMachine(ctx, id, change)
	if err == nil {
		l.publishMachine(m)
	}
	return m, err
}

// casMachine applies change to machine id with a compare-and-set, from a fresh read
// when another writer got there first.
func (l *Labs) casMachine(ctx context.Context, id string, change func(m *Machine) error) (Machine, error) {
	for range 5 {
		m, err := l.store.Machine(ctx, id)
		if err != nil {
			return Machine{}, fmt.Errorf("machine %s: %w", id, err)
		}
		prev := m.Rev
		if err := change(&m); err != nil {
			return Machine{}, err
		}
		err = l.store.SaveMachine(ctx, m, prev)
		l.tokens.forget(id) // even when it failed: the write may have been made
		if errors.Is(err, storage.ErrConflict) {
			continue
		} else if err != nil {
			return Machine{}, err
		}
		m.Rev = prev + 1
		return m, nil
	}
	return Machine{}, fmt.Errorf("machine %s changed under us, try again: %w", id, storage.ErrConflict)
}

// RotateToken stops the machine's token at once on this hub, and within
// machineTokenTTL (2 s) on other replicas, each of which keeps what a token names for
// that long; it answers with a new one-time enrolment code, for fabagent enroll on
// the machine.
func (l *Labs) RotateToken(ctx context.Context, actor Actor, id string) (Machine, string, error) {
	if _, err := l.operatorMachine(ctx, actor, id); err != nil {
		return Machine{}, "", err
	}
	m, err := l.saveMachine(ctx, id, func(m *Machine) error {
		if m.Retired {
			return fmt.Errorf("machine %s is retired: %w", m.Name, storage.ErrConflict)
		}
		_, m.TokenHash = secret(machineTokenPrefix) // a token nobody holds
		return nil
	})
	if err != nil {
		return Machine{}, "", err
	}
	// Only the newest code brings the agent back: codes handed out before are void.
	if err := l.store.DeleteEnrollments(ctx, []string{m.ID}); err != nil {
		return Machine{}, "", err
	}
	code, hash := enrollCode()
	if err := l.store.CreateEnrollment(ctx, Enrollment{CodeHash: hash, MachineID: m.ID, ExpiresAt: l.clock().Add(l.opts.EnrollCodeTTL)}); err != nil {
		return Machine{}, "", err
	}
	return m, code, nil
}

// Retire takes a machine out of service for good: it gets no more work and its token
// stops, at once on this hub and within machineTokenTTL (2 s) on other replicas (it
// may claim a job there in that time). A job it held goes back to the queue, or
// becomes unknown if it was printing, as its lease runs out.
func (l *Labs) Retire(ctx context.Context, actor Actor, id string) (Machine, error) {
	if _, err := l.operatorMachine(ctx, actor, id); err != nil {
		return Machine{}, err
	}
	return l.retire(ctx, id)
}

// retire is Retire once the actor's role is checked.
func (l *Labs) retire(ctx context.Context, id string) (Machine, error) {
	m, err := l.saveMachine(ctx, id, func(m *Machine) error {
		_, m.TokenHash = secret(machineTokenPrefix)
		m.Retired, m.Approved, m.Maintenance, m.State = true, false, true, MachineMaintenance
		return nil
	})
	if err != nil {
		return Machine{}, err
	}
	return m, l.store.DeleteEnrollments(ctx, []string{m.ID})
}

// Register creates a machine from an agent's report, with a lab's join token. The
// machine waits for an operator's approval when the lab's policy says so.
func (l *Labs) Register(ctx context.Context, joinToken, name string, caps MachineSpec) (Machine, string, error) {
	t, err := l.store.JoinTokenByHash(ctx, hashSecret(joinToken))
	if errors.Is(err, storage.ErrNotFound) || (err == nil && t.Revoked) {
		return Machine{}, "", fmt.Errorf("the join token is unknown or revoked: %w", storage.ErrForbidden)
	}
	if err != nil {
		return Machine{}, "", err
	}
	lab, err := l.store.LabByID(ctx, t.LabID)
	if err != nil {
		return Machine{}, "", err
	}
	caps.Name = name
	if err := checkMachine(&caps); err != nil {
		return Machine{}, "", err
	}
	now := l.clock()
	m := Machine{ID: uuid.NewString(), LabID: lab.ID, Name: caps.Name, Process: caps.Process, BuildVolume: caps.BuildVolume,
		Nozzle: caps.Nozzle, Materials: caps.Materials, Tags: caps.Tags, Driver: caps.Driver, State: MachineIdle,
		Approved: !lab.Policy.ApproveMachines, LastSeen: &now, CreatedAt: now, JoinTokenID: t.ID}
	token, hash := secret(machineTokenPrefix)
	m.TokenHash = hash
	if err := l.store.CreateMachine(ctx, m); err != nil {
		return Machine{}, "", err
	}
	l.log.Info("machine registered", "lab", lab.Slug, "machine", m.ID, "name", m.Name, "approved", m.Approved)
	l.publishMachine(m)
	return m, token, nil
}

// MachineByToken authenticates an agent.
func (l *Labs) MachineByToken(ctx context.Context, token string) (Machine, error) {
	if !strings.HasPrefix(token, machineTokenPrefix) {
		return Machine{}, storage.ErrNotFound
	}
	hash := hashSecret(token)
	if m, ok := l.tokens.get(hash); ok {
		return m, nil
	}
	readAt := time.Now()
	m, err := l.store.MachineByTokenHash(ctx, hash)
	if err != nil {
		return Machine{}, err
	}
	l.tokens.put(hash, m, readAt)
	return m, nil
}

// MachinePatch is what an operator may change; nil fields stay.
type MachinePatch struct {
	Name        *string   `json:"name"`
	Materials   *[]string `json:"materials"`
	Tags        *[]string `json:"tags"`
	BuildVolume *Volume   `json:"build_volume"`
	Maintenance *bool     `json:"maintenance"`
	Approved    *bool     `json:"approved"`
}

// PatchMachine applies an operator's changes.
func (l *Labs) PatchMachine(ctx context.Context, actor Actor, id string, p MachinePatch) (Machine, error) {
	if _, err := l.operatorMachine(ctx, actor, id); err != nil {
		return Machine{}, err
	}
	m, err := l.saveMachine(ctx, id, func(m *Machine) error {
		if m.Retired {
			return fmt.Errorf("machine %s is retired: %w", m.Name, storage.ErrConflict)
		}
		spec := MachineSpec{Name: m.Name, Process: m.Process, BuildVolume: m.BuildVolume, Nozzle: m.Nozzle, Materials: m.Materials, Tags: m.Tags}
		if p.Name != nil {
			spec.Name = *p.Name
		}
		if p.Materials != nil {
			spec.Materials = *p.Materials
		}
		if p.Tags != nil {
			spec.Tags = *p.Tags
		}
		if p.BuildVolume != nil {
			spec.BuildVolume = *p.BuildVolume
		}
		if err := checkMachine(&spec); err != nil {
			return err
		}
		m.Name, m.Materials, m.Tags, m.BuildVolume = spec.Name, spec.Materials, spec.Tags, spec.BuildVolume
		if p.Maintenance != nil {
			m.Maintenance = *p.Maintenance
		}
		if p.Approved != nil {
			m.Approved = *p.Approved
		}
		m.State = l.machineState(ctx, *m)
		return nil
	})
	if err == nil {
		l.feed.WorkAvailable(m.LabID, 1)
	}
	return m, err
}

// machineState derives what a machine is doing now.
func (l *Labs) machineState(ctx context.Context, m Machine) string {
	switch {
	case m.Maintenance:
		return MachineMaintenance
	case m.LastSeen == nil || m.LastSeen.Before(l.offlineBefore()):
		return MachineOffline
	}
	held, err := l.store.HeldJobs(ctx, m.ID)
	if err == nil && len(held) > 0 {
		return MachineBusy
	}
	return MachineIdle
}

// Machine finds a machine by id.
func (l *Labs) Machine(ctx context.Context, id string) (Machine, error) {
	return l.store.Machine(ctx, id)
}

// Machines lists a lab's machines (everyone may see them).
func (l *Labs) Machines(ctx context.Context, labID string) ([]Machine, error) {
	return l.store.Machines(ctx, labID)
}

// maxMachineTags bounds a machine's materials and tags, and an order's required tags.
const maxMachineTags = 50

// offlineBefore: a machine whose agent was last heard from before this is offline
// (three lease lengths ago).
func (l *Labs) offlineBefore() time.Time { return l.now().Add(-3 * l.opts.LeaseTTL) }

// MarkOffline sets machines unheard of for three lease lengths offline.
func (l *Labs) MarkOffline(ctx context.Context) (int, error) {
	ids, err := l.store.MarkUnheard(ctx, l.offlineBefore(), []string{MachineIdle, MachineBusy}, MachineOffline)
	for _, id := range ids {
		l.tokens.forget(id)
		if m, err := l.store.Machine(ctx, id); err == nil {
			l.publishMachine(m)
		}
	}
	return len(ids), err
}
