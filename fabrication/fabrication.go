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
	"slices"
	"strings"
	"time"
	"unicode/utf8"

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
	// Hidden says whether maintainers hid the design since: its files are then not
	// handed out, not even to make a job queued before.
	Hidden(ctx context.Context, designID string) (bool, error)
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
	Volume float64 // mm³, from the mesh check (0 when the mesh is not closed)
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
	LabsPerUser   int           // labs one person may open (10)
	JobsPerDay    int           // jobs one person may order a day (1,000)
	CreditFloor   *int64        // FAB_CREDIT_FLOOR: how far an account may go below zero (-600)
	Clock         func() time.Time
}

// Fabrication is the making side of the hub, by aggregate: labs and their machines,
// orders and the jobs they make, and the scheduler that gives jobs to agents.
type Fabrication struct {
	Labs      *Labs
	Orders    *Orders
	Scheduler *Scheduler
	Ledger    *Ledger
	Feed      *Feed
}

// New builds the three over one store (each keeps only the part of it it uses).
func New(store Store, designs Designs, users Users, feed *Feed, quotas storage.Quotas, log *slog.Logger, o Options) Fabrication {
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
	if o.LabsPerUser == 0 {
		o.LabsPerUser = 10
	}
	if o.JobsPerDay == 0 {
		o.JobsPerDay = 1000
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	floor := int64(-600)
	if o.CreditFloor != nil {
		floor = *o.CreditFloor
	}
	c := core{feed: feed, log: log, opts: o, now: o.Clock, quotas: quotas, tokens: &machineTokens{}, labs: &labCache{}}
	ledger := &Ledger{core: c, roles: roles{store}, store: store, users: users, floor: floor,
		turn: make(chan struct{}, 1), records: make(chan Settlement, recordsQueued)}
	jobs := &jobBook{core: c, store: store, ledger: ledger}
	return Fabrication{
		Labs:      &Labs{core: c, roles: roles{store}, store: store, users: users},
		Orders:    &Orders{jobBook: jobs, roles: roles{store}, store: store, designs: designs},
		Scheduler: &Scheduler{jobBook: jobs, roles: roles{store}, store: store, designs: designs},
		Ledger:    ledger,
		Feed:      feed,
	}
}

// core is what every aggregate shares: where changes are published, the log, the
// options and the clock.
type core struct {
	feed   *Feed
	log    *slog.Logger
	opts   Options
	now    func() time.Time
	quotas storage.Quotas // nil: no quotas
	tokens *machineTokens // the machines agents' tokens name, for a moment (machinetokens.go)
	labs   *labCache      // labs by id, for a moment, for the agents' hot path (labcache.go)
}

// useQuota counts amount against actor's quota of kind over window.
func (c core) useQuota(ctx context.Context, actor Actor, kind string, amount, limit int, window time.Duration, what string) error {
	if actor.Admin {
		return nil
	}
	return storage.UseQuota(ctx, c.quotas, kind+"/"+actor.ID, int64(amount), int64(limit), c.now(), window, what)
}

// roles answers who may act in a lab.
type roles struct{ members memberStore }

type memberStore interface {
	Member(ctx context.Context, labID, userID string) (Member, error)
}

func (c core) clock() time.Time { return c.now().UTC().Truncate(time.Millisecond) }

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

func checkText(field, v string, maxLen int, required bool) error {
	if required && strings.TrimSpace(v) == "" {
		return storage.Invalid(field, "is required")
	}
	if utf8.RuneCountInString(v) > maxLen || !utf8.ValidString(v) {
		return storage.Invalid(field, fmt.Sprintf("at most %d characters of UTF-8 text", maxLen))
	}
	return nil
}

// role returns the actor's role in the lab ("" for none); site admins act as owners.
func (rs roles) role(ctx context.Context, actor Actor, labID string) (string, error) {
	if actor.Admin {
		return RoleOwner, nil
	}
	if actor.ID == "" {
		return "", nil
	}
	m, err := rs.members.Member(ctx, labID, actor.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	return m.Role, err
}

func (rs roles) requireRole(ctx context.Context, actor Actor, lab Lab, roles ...string) error {
	r, err := rs.role(ctx, actor, lab.ID)
	if err != nil {
		return err
	}
	if !slices.Contains(roles, r) {
		return fmt.Errorf("you need to be %s of lab %s: %w", strings.Join(roles, " or "), lab.Slug, storage.ErrForbidden)
	}
	return nil
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

func (c core) publishMachine(m Machine) {
	m.TokenHash = ""
	c.feed.Publish(Change{Kind: "machine", LabID: m.LabID, Machine: &m})
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
