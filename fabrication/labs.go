package fabrication

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"

	"github.com/fabcommons/fabcommons/storage"
)

// Labs keeps labs, their members and join tokens, and their machines with enrolment.
type Labs struct {
	core
	roles
	store labsStore
	users Users
}

// labsStore is what Labs reads and writes.
type labsStore interface {
	LabStore
	MachineStore
	HeldJobs(ctx context.Context, machineID string) ([]Job, error)
}

var slugRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$`)

// ---- labs -----------------------------------------------------------------------

// NewLab is what a person fills in to open a lab on the hub.
type NewLab struct {
	Slug     string `json:"slug"`
	Name     string `json:"name"`
	Location string `json:"location"`
	Timezone string `json:"timezone"`
	Policy   Policy `json:"policy"`
}

func checkPolicy(p *Policy) error {
	if p.Submit == "" {
		p.Submit = "public"
	}
	if p.Submit != "public" && p.Submit != "members" {
		return storage.Invalid("policy.submit", "want public or members")
	}
	if p.MaxJobHours < 0 || p.MaxJobHours > 24*30 {
		return storage.Invalid("policy.max_job_hours", "want 0 (no limit) to 720")
	}
	if p.Credits == "" {
		p.Credits = CreditsOff
	}
	if p.Credits != CreditsOff && p.Credits != CreditsRequired {
		return storage.Invalid("policy.credits", "want off or required")
	}
	if p.MinutesPerCm3 < 0 || p.MinutesPerCm3 > 1000 || p.MinutesPerCm3 != p.MinutesPerCm3 {
		return storage.Invalid("policy.minutes_per_cm3", "want 0 (the hub's default) to 1000")
	}
	return nil
}

// SetPolicy changes a lab's rules; its owners (and site admins) may. Jobs in flight
// keep what they were ordered under: a hold stays until its job ends, and a lab that
// starts charging charges only new orders.
func (l *Labs) SetPolicy(ctx context.Context, actor Actor, slug string, p Policy) (Lab, error) {
	lab, err := labBySlug(ctx, l.store, slug)
	if err != nil {
		return Lab{}, err
	}
	if err := l.requireRole(ctx, actor, lab, RoleOwner); err != nil {
		return Lab{}, err
	}
	if err := checkPolicy(&p); err != nil {
		return Lab{}, err
	}
	err = l.store.SetPolicy(ctx, lab.ID, p)
	l.labs.forget(lab.ID) // even when it failed: the write may have been made
	if err != nil {
		return Lab{}, err
	}
	lab.Policy = p
	l.log.Info("lab policy changed", "lab", lab.Slug, "by", actor.Handle)
	return lab, nil
}

// CreateLab opens a lab; the actor becomes its owner.
func (l *Labs) CreateLab(ctx context.Context, actor Actor, nl NewLab) (Lab, error) {
	if !slugRE.MatchString(nl.Slug) {
		return Lab{}, storage.Invalid("slug", "use 1 to 40 lowercase letters, digits and hyphens")
	}
	if err := checkText("name", nl.Name, 100, true); err != nil {
		return Lab{}, err
	}
	if err := checkText("location", nl.Location, 200, false); err != nil {
		return Lab{}, err
	}
	if nl.Timezone == "" {
		nl.Timezone = "UTC"
	}
	if _, err := time.LoadLocation(nl.Timezone); err != nil {
		return Lab{}, storage.Invalid("timezone", "want an IANA time zone such as Europe/Berlin")
	}
	if err := checkPolicy(&nl.Policy); err != nil {
		return Lab{}, err
	}
	// Labs are counted for good (a window of a century): opening one is not undone.
	if err := l.useQuota(ctx, actor, "labs", 1, l.opts.LabsPerUser, 100*365*24*time.Hour, "labs"); err != nil {
		return Lab{}, err
	}
	lab := Lab{ID: uuid.NewString(), Slug: nl.Slug, Name: nl.Name, Location: nl.Location, Timezone: nl.Timezone, Policy: nl.Policy, CreatedAt: l.clock()}
	err := l.store.CreateLab(ctx, lab, Member{LabID: lab.ID, UserID: actor.ID, Handle: actor.Handle, Role: RoleOwner})
	if err != nil {
		l.useQuota(ctx, actor, "labs", -1, l.opts.LabsPerUser, 100*365*24*time.Hour, "labs") // not opened after all
	}
	if errors.Is(err, storage.ErrConflict) {
		return Lab{}, fmt.Errorf("lab %q exists: %w", nl.Slug, err)
	}
	return lab, err
}

// Lab finds a lab by slug.
func (l *Labs) Lab(ctx context.Context, slug string) (Lab, error) {
	return labBySlug(ctx, l.store, slug)
}

func labBySlug(ctx context.Context, st interface {
	LabBySlug(ctx context.Context, slug string) (Lab, error)
}, slug string) (Lab, error) {
	lab, err := st.LabBySlug(ctx, slug)
	if err != nil {
		return Lab{}, fmt.Errorf("lab %s: %w", slug, err)
	}
	return lab, nil
}

// All lists every lab.
func (l *Labs) All(ctx context.Context) ([]Lab, error) { return l.store.Labs(ctx) }

// SetMember adds a member or changes a role; only the lab's owner may.
func (l *Labs) SetMember(ctx context.Context, actor Actor, slug, handle, role string) (Member, error) {
	lab, err := l.Lab(ctx, slug)
	if err != nil {
		return Member{}, err
	}
	if err := l.requireRole(ctx, actor, lab, RoleOwner); err != nil {
		return Member{}, err
	}
	if role != RoleOwner && role != RoleOperator && role != RoleMember {
		return Member{}, storage.Invalid("role", "want owner, operator or member")
	}
	uid, err := l.users.UserIDByHandle(ctx, handle)
	if errors.Is(err, storage.ErrNotFound) {
		return Member{}, storage.Invalid("handle", fmt.Sprintf("no account %q", handle))
	}
	if err != nil {
		return Member{}, err
	}
	if role != RoleOwner {
		if err := l.keepAnOwner(ctx, lab, uid); err != nil {
			return Member{}, err
		}
	}
	m := Member{LabID: lab.ID, UserID: uid, Handle: handle, Role: role}
	return m, l.store.PutMember(ctx, m)
}

// RemoveMember takes a person out of a lab: their role there ends at once.
func (l *Labs) RemoveMember(ctx context.Context, actor Actor, slug, handle string) error {
	lab, err := l.Lab(ctx, slug)
	if err != nil {
		return err
	}
	if err := l.requireRole(ctx, actor, lab, RoleOwner); err != nil {
		return err
	}
	uid, err := l.users.UserIDByHandle(ctx, handle)
	if err != nil {
		return fmt.Errorf("member %s: %w", handle, err)
	}
	if err := l.keepAnOwner(ctx, lab, uid); err != nil {
		return err
	}
	if err := l.store.DeleteMember(ctx, lab.ID, uid); err != nil {
		return fmt.Errorf("member %s of %s: %w", handle, lab.Slug, err)
	}
	// A code the person may have been handed as operator would still let them take
	// over a machine: every outstanding code of the lab is void (operators hand out
	// new ones).
	machines, err := l.store.Machines(ctx, lab.ID)
	if err != nil {
		return err
	}
	ids := make([]string, len(machines))
	for i, m := range machines {
		ids[i] = m.ID
	}
	return l.store.DeleteEnrollments(ctx, ids)
}

// keepAnOwner refuses to take the owner role from a lab's last owner.
func (l *Labs) keepAnOwner(ctx context.Context, lab Lab, uid string) error {
	members, err := l.store.Members(ctx, lab.ID)
	if err != nil {
		return err
	}
	owners, isOwner := 0, false
	for _, m := range members {
		if m.Role == RoleOwner {
			owners++
			isOwner = isOwner || m.UserID == uid
		}
	}
	if isOwner && owners == 1 {
		return fmt.Errorf("%s would have no owner left; make someone else owner first: %w", lab.Slug, storage.ErrConflict)
	}
	return nil
}

// ---- machines and enrolment ------------------------------------------------------

// NewJoinToken makes a reusable token with which agents register machines in a lab.
func (l *Labs) NewJoinToken(ctx context.Context, actor Actor, slug, name string) (JoinToken, string, error) {
	lab, err := l.Lab(ctx, slug)
	if err != nil {
		return JoinToken{}, "", err
	}
	if err := l.requireRole(ctx, actor, lab, RoleOwner); err != nil {
		return JoinToken{}, "", err
	}
	if err := checkText("name", name, 80, true); err != nil {
		return JoinToken{}, "", err
	}
	sec, hash := secret("fab_j_")
	t := JoinToken{ID: uuid.NewString(), LabID: lab.ID, Name: name, Prefix: sec[:10], Hash: hash, CreatedAt: l.clock()}
	return t, sec, l.store.CreateJoinToken(ctx, t)
}

// JoinTokens lists a lab's join tokens, for its owner.
func (l *Labs) JoinTokens(ctx context.Context, actor Actor, slug string) ([]JoinToken, error) {
	lab, err := l.Lab(ctx, slug)
	if err != nil {
		return nil, err
	}
	if err := l.requireRole(ctx, actor, lab, RoleOwner); err != nil {
		return nil, err
	}
	return l.store.JoinTokens(ctx, lab.ID)
}

// RevokeJoinToken stops a join token registering machines; with retireMachines, the
// machines it registered are retired too (their tokens stop as Retire says). It
// returns how many were retired.
func (l *Labs) RevokeJoinToken(ctx context.Context, actor Actor, slug, id string, retireMachines bool) (int, error) {
	lab, err := l.Lab(ctx, slug)
	if err != nil {
		return 0, err
	}
	if err := l.requireRole(ctx, actor, lab, RoleOwner); err != nil {
		return 0, err
	}
	if err := l.store.RevokeJoinToken(ctx, lab.ID, id); err != nil {
		return 0, err
	}
	if !retireMachines {
		return 0, nil
	}
	machines, err := l.store.Machines(ctx, lab.ID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range machines {
		if m.JoinTokenID != id || m.Retired {
			continue
		}
		if _, err := l.retire(ctx, m.ID); err != nil { // the lab's owner may: checked above
			return n, fmt.Errorf("retire %s: %w", m.Name, err)
		}
		n++
	}
	return n, nil
}

// LabByID finds a lab by id.
func (l *Labs) LabByID(ctx context.Context, id string) (Lab, error) {
	return l.store.LabByID(ctx, id)
}

// Managed returns the lab if the actor runs it (its owner or an operator; site admins
// run every lab). It is storage.ErrNotFound for no such lab, ErrForbidden otherwise.
func (l *Labs) Managed(ctx context.Context, actor Actor, slug string) (Lab, error) {
	lab, err := l.Lab(ctx, slug)
	if err != nil {
		return Lab{}, err
	}
	if err := l.requireRole(ctx, actor, lab, RoleOwner, RoleOperator); err != nil {
		return Lab{}, err
	}
	return lab, nil
}
