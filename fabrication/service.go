package fabrication

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/fabcommons/fabcommons/storage"
)

// Errors of the agent protocol, which agents act on by their codes (agentapi).
var (
	ErrStaleLease  = errors.New("stale lease: the job is no longer yours; drop it")
	ErrUnsupported = errors.New("unsupported agent protocol")
)

// Actor is who is acting.
type Actor struct {
	ID     string
	Handle string
	Admin  bool
}

// Users resolves handles, for adding lab members.
type Users interface {
	UserIDByHandle(ctx context.Context, handle string) (string, error)
}

// Designs is what fabrication needs of the catalog: a version's printable files.
type Designs interface {
	Printable(ctx context.Context, slug string, version int) (Printable, error)
}

// Printable is a design version as a lab sees it.
type Printable struct {
	DesignID string
	Slug     string
	Title    string
	Version  int
	Files    []PrintableFile // meshes only
	BOM      []PrintableLine // printed lines only
}

// PrintableFile is one mesh with its size.
type PrintableFile struct {
	Path   string
	SHA256 string
	Size   int64
	BBox   Volume
}

// PrintableLine is one printed line of a BOM.
type PrintableLine struct {
	Ref      string
	File     string
	Qty      int
	Material string
}

// Options tune the service.
type Options struct {
	LeaseTTL      time.Duration // FAB_LEASE_TTL, 60 s by default
	MaxAttempts   int           // a retryable failure is requeued until a job has failed this many times (3)
	EnrollCodeTTL time.Duration // a one-time enrolment code's life (24 h)
	MaxOrderJobs  int           // jobs one order may create (500)
	Clock         func() time.Time
}

// Service is the fabrication use cases.
type Service struct {
	store   Store
	designs Designs
	users   Users
	feed    *Feed
	log     *slog.Logger
	opts    Options
	now     func() time.Time
	queues  queueHeads
}

// NewService builds the service.
func NewService(store Store, designs Designs, users Users, feed *Feed, log *slog.Logger, o Options) *Service {
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 60 * time.Second
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	if o.EnrollCodeTTL == 0 {
		o.EnrollCodeTTL = 24 * time.Hour
	}
	if o.MaxOrderJobs == 0 {
		o.MaxOrderJobs = 500
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &Service{store: store, designs: designs, users: users, feed: feed, log: log, opts: o, now: o.Clock}
}

// Feed is where the service publishes changes.
func (s *Service) Feed() *Feed { return s.feed }

// HeartbeatSeconds is how often agents should report: three times per lease.
func (s *Service) HeartbeatSeconds() int { return max(1, int(s.opts.LeaseTTL.Seconds()/3)) }

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

func secret(prefix string) (string, string) {
	b := make([]byte, 32)
	rand.Read(b)
	sec := prefix + base64.RawURLEncoding.EncodeToString(b)
	return sec, hashSecret(sec)
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
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
	return nil
}

func checkText(field, v string, maxLen int, required bool) error {
	if required && strings.TrimSpace(v) == "" {
		return storage.Invalid(field, "is required")
	}
	if utf8.RuneCountInString(v) > maxLen || !utf8.ValidString(v) {
		return storage.Invalid(field, fmt.Sprintf("at most %d characters of UTF-8 text", maxLen))
	}
	return nil
}

// CreateLab opens a lab; the actor becomes its owner.
func (s *Service) CreateLab(ctx context.Context, actor Actor, nl NewLab) (Lab, error) {
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
	lab := Lab{ID: uuid.NewString(), Slug: nl.Slug, Name: nl.Name, Location: nl.Location, Timezone: nl.Timezone, Policy: nl.Policy, CreatedAt: s.clock()}
	err := s.store.CreateLab(ctx, lab, Member{LabID: lab.ID, UserID: actor.ID, Handle: actor.Handle, Role: RoleOwner})
	if errors.Is(err, storage.ErrConflict) {
		return Lab{}, fmt.Errorf("lab %q exists: %w", nl.Slug, err)
	}
	return lab, err
}

// role returns the actor's role in the lab ("" for none); site admins act as owners.
func (s *Service) role(ctx context.Context, actor Actor, labID string) (string, error) {
	if actor.Admin {
		return RoleOwner, nil
	}
	if actor.ID == "" {
		return "", nil
	}
	m, err := s.store.Member(ctx, labID, actor.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	return m.Role, err
}

func (s *Service) requireRole(ctx context.Context, actor Actor, lab Lab, roles ...string) error {
	r, err := s.role(ctx, actor, lab.ID)
	if err != nil {
		return err
	}
	if !slices.Contains(roles, r) {
		return fmt.Errorf("you need to be %s of lab %s: %w", strings.Join(roles, " or "), lab.Slug, storage.ErrForbidden)
	}
	return nil
}

// Lab finds a lab by slug.
func (s *Service) Lab(ctx context.Context, slug string) (Lab, error) {
	lab, err := s.store.LabBySlug(ctx, slug)
	if err != nil {
		return Lab{}, fmt.Errorf("lab %s: %w", slug, err)
	}
	return lab, nil
}

// Labs lists every lab.
func (s *Service) Labs(ctx context.Context) ([]Lab, error) { return s.store.Labs(ctx) }

// QueuedJob is a job in a lab's queue, with the reason when no machine can make it.
type QueuedJob struct {
	Job
	Blocked string `json:"blocked,omitempty"`
}

// LabView is everything anyone may see of a lab.
type LabView struct {
	Lab      Lab         `json:"lab"`
	Members  []Member    `json:"members"`
	Machines []Machine   `json:"machines"`
	Queue    []QueuedJob `json:"queue"`   // in order of service
	Active   []Job       `json:"active"`  // on machines now
	Pending  []Job       `json:"pending"` // waiting for approval
	History  []Job       `json:"history"` // recently ended
	Role     string      `json:"role"`    // the viewer's role
}

// View assembles a lab's public page.
func (s *Service) View(ctx context.Context, actor Actor, slug string) (LabView, error) {
	lab, err := s.Lab(ctx, slug)
	if err != nil {
		return LabView{}, err
	}
	v := LabView{Lab: lab}
	if v.Members, err = s.store.Members(ctx, lab.ID); err != nil {
		return LabView{}, err
	}
	if v.Machines, err = s.store.Machines(ctx, lab.ID); err != nil {
		return LabView{}, err
	}
	queued, err := s.store.Queued(ctx, lab.ID, 500)
	if err != nil {
		return LabView{}, err
	}
	usage, err := s.store.Usage(ctx, lab.ID)
	if err != nil {
		return LabView{}, err
	}
	ServiceOrder(queued, usage, s.now())
	v.Queue = make([]QueuedJob, 0, len(queued))
	for _, j := range queued {
		v.Queue = append(v.Queue, QueuedJob{Job: j, Blocked: WhyUnfit(j, lab, usable(v.Machines))})
	}
	if v.Active, err = s.store.LabJobs(ctx, lab.ID, []string{JobAssigned, JobPrinting, JobAwaitingHarvest, JobUnknown}, 200); err != nil {
		return LabView{}, err
	}
	if v.Pending, err = s.store.LabJobs(ctx, lab.ID, []string{JobPendingApproval}, 200); err != nil {
		return LabView{}, err
	}
	if v.History, err = s.store.LabJobs(ctx, lab.ID, []string{JobDone, JobFailed, JobCanceled, JobRejected}, 50); err != nil {
		return LabView{}, err
	}
	if v.Role, err = s.role(ctx, actor, lab.ID); err != nil {
		return LabView{}, err
	}
	for i := range v.Members {
		v.Members[i].UserID = ""
	}
	return v, nil
}

// usable are the machines that can take work (approved, not in maintenance).
func usable(ms []Machine) []Machine {
	var out []Machine
	for _, m := range ms {
		if m.Approved && !m.Maintenance {
			out = append(out, m)
		}
	}
	return out
}

// SetMember adds a member or changes a role; only the lab's owner may.
func (s *Service) SetMember(ctx context.Context, actor Actor, slug, handle, role string) (Member, error) {
	lab, err := s.Lab(ctx, slug)
	if err != nil {
		return Member{}, err
	}
	if err := s.requireRole(ctx, actor, lab, RoleOwner); err != nil {
		return Member{}, err
	}
	if role != RoleOwner && role != RoleOperator && role != RoleMember {
		return Member{}, storage.Invalid("role", "want owner, operator or member")
	}
	uid, err := s.users.UserIDByHandle(ctx, handle)
	if errors.Is(err, storage.ErrNotFound) {
		return Member{}, storage.Invalid("handle", fmt.Sprintf("no account %q", handle))
	}
	if err != nil {
		return Member{}, err
	}
	m := Member{LabID: lab.ID, UserID: uid, Handle: handle, Role: role}
	return m, s.store.PutMember(ctx, m)
}

// ---- machines and enrolment ------------------------------------------------------

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
	if len(m.Materials) > 50 || len(m.Tags) > 50 {
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
func (s *Service) AddMachine(ctx context.Context, actor Actor, slug string, spec MachineSpec) (Machine, string, error) {
	lab, err := s.Lab(ctx, slug)
	if err != nil {
		return Machine{}, "", err
	}
	if err := s.requireRole(ctx, actor, lab, RoleOwner, RoleOperator); err != nil {
		return Machine{}, "", err
	}
	if err := checkMachine(&spec); err != nil {
		return Machine{}, "", err
	}
	now := s.clock()
	m := Machine{ID: uuid.NewString(), LabID: lab.ID, Name: spec.Name, Process: spec.Process, BuildVolume: spec.BuildVolume,
		Nozzle: spec.Nozzle, Materials: spec.Materials, Tags: spec.Tags, Driver: spec.Driver, State: MachineOffline,
		Approved: true, CreatedAt: now}
	if err := s.store.CreateMachine(ctx, m); err != nil {
		return Machine{}, "", err
	}
	code, hash := enrollCode()
	if err := s.store.CreateEnrollment(ctx, Enrollment{CodeHash: hash, MachineID: m.ID, ExpiresAt: now.Add(s.opts.EnrollCodeTTL)}); err != nil {
		return Machine{}, "", err
	}
	s.publishMachine(m)
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
func (s *Service) Enroll(ctx context.Context, code string) (Machine, string, error) {
	if len(code) > 64 {
		return Machine{}, "", storage.Invalid("code", "not an enrolment code")
	}
	id, err := s.store.ConsumeEnrollment(ctx, hashSecret(normalizeCode(code)), s.now())
	if errors.Is(err, storage.ErrNotFound) {
		return Machine{}, "", fmt.Errorf("the code is unknown, used or expired; ask an operator for a new one: %w", storage.ErrForbidden)
	}
	if err != nil {
		return Machine{}, "", err
	}
	return s.issueMachineToken(ctx, id)
}

func (s *Service) issueMachineToken(ctx context.Context, id string) (Machine, string, error) {
	for range 5 {
		m, err := s.store.Machine(ctx, id)
		if err != nil {
			return Machine{}, "", err
		}
		token, hash := secret(machineTokenPrefix)
		prev := m.Rev
		m.TokenHash = hash
		if err := s.store.SaveMachine(ctx, m, prev); errors.Is(err, storage.ErrConflict) {
			continue
		} else if err != nil {
			return Machine{}, "", err
		}
		m.Rev = prev + 1
		return m, token, nil
	}
	return Machine{}, "", fmt.Errorf("machine %s: too much contention: %w", id, storage.ErrConflict)
}

// NewJoinToken makes a reusable token with which agents register machines in a lab.
func (s *Service) NewJoinToken(ctx context.Context, actor Actor, slug, name string) (JoinToken, string, error) {
	lab, err := s.Lab(ctx, slug)
	if err != nil {
		return JoinToken{}, "", err
	}
	if err := s.requireRole(ctx, actor, lab, RoleOwner); err != nil {
		return JoinToken{}, "", err
	}
	if err := checkText("name", name, 80, true); err != nil {
		return JoinToken{}, "", err
	}
	sec, hash := secret("fab_j_")
	t := JoinToken{ID: uuid.NewString(), LabID: lab.ID, Name: name, Prefix: sec[:10], Hash: hash, CreatedAt: s.clock()}
	return t, sec, s.store.CreateJoinToken(ctx, t)
}

// JoinTokens lists a lab's join tokens, for its owner.
func (s *Service) JoinTokens(ctx context.Context, actor Actor, slug string) ([]JoinToken, error) {
	lab, err := s.Lab(ctx, slug)
	if err != nil {
		return nil, err
	}
	if err := s.requireRole(ctx, actor, lab, RoleOwner); err != nil {
		return nil, err
	}
	return s.store.JoinTokens(ctx, lab.ID)
}

// RevokeJoinToken stops a join token from registering more machines.
func (s *Service) RevokeJoinToken(ctx context.Context, actor Actor, slug, id string) error {
	lab, err := s.Lab(ctx, slug)
	if err != nil {
		return err
	}
	if err := s.requireRole(ctx, actor, lab, RoleOwner); err != nil {
		return err
	}
	return s.store.RevokeJoinToken(ctx, lab.ID, id)
}

// Register creates a machine from an agent's report, with a lab's join token. The
// machine waits for an operator's approval when the lab's policy says so.
func (s *Service) Register(ctx context.Context, joinToken, name string, caps MachineSpec) (Machine, string, error) {
	t, err := s.store.JoinTokenByHash(ctx, hashSecret(joinToken))
	if errors.Is(err, storage.ErrNotFound) || (err == nil && t.Revoked) {
		return Machine{}, "", fmt.Errorf("the join token is unknown or revoked: %w", storage.ErrForbidden)
	}
	if err != nil {
		return Machine{}, "", err
	}
	lab, err := s.store.LabByID(ctx, t.LabID)
	if err != nil {
		return Machine{}, "", err
	}
	caps.Name = name
	if err := checkMachine(&caps); err != nil {
		return Machine{}, "", err
	}
	now := s.clock()
	m := Machine{ID: uuid.NewString(), LabID: lab.ID, Name: caps.Name, Process: caps.Process, BuildVolume: caps.BuildVolume,
		Nozzle: caps.Nozzle, Materials: caps.Materials, Tags: caps.Tags, Driver: caps.Driver, State: MachineIdle,
		Approved: !lab.Policy.ApproveMachines, LastSeen: &now, CreatedAt: now}
	token, hash := secret(machineTokenPrefix)
	m.TokenHash = hash
	if err := s.store.CreateMachine(ctx, m); err != nil {
		return Machine{}, "", err
	}
	s.log.Info("machine registered", "lab", lab.Slug, "machine", m.ID, "name", m.Name, "approved", m.Approved)
	s.publishMachine(m)
	return m, token, nil
}

// MachineByToken authenticates an agent.
func (s *Service) MachineByToken(ctx context.Context, token string) (Machine, error) {
	if !strings.HasPrefix(token, machineTokenPrefix) {
		return Machine{}, storage.ErrNotFound
	}
	return s.store.MachineByTokenHash(ctx, hashSecret(token))
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
func (s *Service) PatchMachine(ctx context.Context, actor Actor, id string, p MachinePatch) (Machine, error) {
	for range 5 {
		m, err := s.store.Machine(ctx, id)
		if err != nil {
			return Machine{}, fmt.Errorf("machine %s: %w", id, err)
		}
		lab, err := s.store.LabByID(ctx, m.LabID)
		if err != nil {
			return Machine{}, err
		}
		if err := s.requireRole(ctx, actor, lab, RoleOwner, RoleOperator); err != nil {
			return Machine{}, err
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
			return Machine{}, err
		}
		prev := m.Rev
		m.Name, m.Materials, m.Tags, m.BuildVolume = spec.Name, spec.Materials, spec.Tags, spec.BuildVolume
		if p.Maintenance != nil {
			m.Maintenance = *p.Maintenance
		}
		if p.Approved != nil {
			m.Approved = *p.Approved
		}
		m.State = s.machineState(ctx, m)
		if err := s.store.SaveMachine(ctx, m, prev); errors.Is(err, storage.ErrConflict) {
			continue
		} else if err != nil {
			return Machine{}, err
		}
		m.Rev = prev + 1
		s.publishMachine(m)
		s.feed.WorkAvailable(m.LabID, 1)
		return m, nil
	}
	return Machine{}, fmt.Errorf("machine %s changed under us, try again: %w", id, storage.ErrConflict)
}

// machineState derives what a machine is doing now.
func (s *Service) machineState(ctx context.Context, m Machine) string {
	switch {
	case m.Maintenance:
		return MachineMaintenance
	case m.LastSeen == nil || s.now().Sub(*m.LastSeen) > 3*s.opts.LeaseTTL:
		return MachineOffline
	}
	held, err := s.store.HeldJobs(ctx, m.ID)
	if err == nil && len(held) > 0 {
		return MachineBusy
	}
	return MachineIdle
}

func (s *Service) publishMachine(m Machine) {
	m.TokenHash = ""
	s.feed.Publish(Change{Kind: "machine", LabID: m.LabID, Machine: &m})
}

func (s *Service) publishJob(j Job) {
	if j.State == JobQueued {
		s.noteQueued(j)
	}
	s.feed.Publish(Change{Kind: "job", LabID: j.LabID, OrderID: j.OrderID, Job: &j})
}
