package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/fabcommons/fabcommons/federation/netguard"
	"github.com/fabcommons/fabcommons/storage"
)

// Options tune the service; zero values take the defaults.
type Options struct {
	MaxHooksPerOwner int             // hooks one person may register (20)
	AllowHosts       []string        // FAB_WEBHOOK_ALLOW_HOSTS: receivers allowed even at private addresses
	Timeout          time.Duration   // one attempt's limit, connecting to the end of the answer (10 s)
	Backoff          []time.Duration // the waits before each retry; after the last, a delivery has failed (DefaultBackoff)
	PollEvery        time.Duration   // how often the store is checked for due deliveries, besides when woken (5 s)
	KeepDeliveries   time.Duration   // how long finished deliveries stay listed before they are pruned (30 days)
	Clock            func() time.Time
}

// DefaultBackoff retries for about a day: 8 retries after the first attempt, the last
// 22 h 12 min after it.
var DefaultBackoff = []time.Duration{30 * time.Second, 2 * time.Minute, 10 * time.Minute, time.Hour,
	3 * time.Hour, 6 * time.Hour, 6 * time.Hour, 6 * time.Hour}

// Actor is who is acting.
type Actor struct {
	ID    string
	Admin bool
}

// Labs is what the service needs of fabrication: which lab a slug names, and that the
// actor may manage its notifications (is its owner or an operator). It answers
// storage.ErrNotFound or storage.ErrForbidden otherwise.
type Labs interface {
	ManagedLab(ctx context.Context, actor Actor, slug string) (labID string, err error)
}

// Notice is something that happened, for the hooks that want it: the lab's hooks
// (LabID), the personal hooks of one person (OwnerID), either may be "", and the hooks
// for the whole hub when Maintainers is set.
type Notice struct {
	Event       string
	LabID       string
	OwnerID     string
	Maintainers bool
	Data        any // the payload's "data"
}

// Service registers hooks and delivers to them. Notify only queues: recording and
// delivering happen in Run, never in the caller's request.
type Service struct {
	store   Store
	labs    Labs
	leases  storage.Leases // nil: a single hub, no lease needed
	holder  string
	client  *http.Client
	guard   netguard.Guard
	log     *slog.Logger
	opts    Options
	notices chan Notice
	wake    chan struct{}
}

// NewService builds the service; Run makes it work.
func NewService(store Store, labs Labs, leases storage.Leases, log *slog.Logger, o Options) *Service {
	if o.MaxHooksPerOwner == 0 {
		o.MaxHooksPerOwner = 20
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Backoff == nil {
		o.Backoff = DefaultBackoff
	}
	if o.PollEvery == 0 {
		o.PollEvery = 5 * time.Second
	}
	if o.KeepDeliveries == 0 {
		o.KeepDeliveries = 30 * 24 * time.Hour
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	guard := netguard.New(o.AllowHosts)
	return &Service{store: store, labs: labs, leases: leases, holder: "hub-" + randomHex(6),
		client: guard.Client(o.Timeout), guard: guard, log: log, opts: o,
		notices: make(chan Notice, 4096), wake: make(chan struct{}, 1)}
}

// NewHook is what a person asks to register.
type NewHook struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Lab    string   `json:"lab"` // a lab's slug, for a lab's hook; "" for a personal one
	Hub    bool     `json:"hub"` // a site admin's hook for the whole hub (HubEvents)
}

// Create registers a hook and returns it with its secret, which is not shown again. It
// is storage.ErrInvalid for a bad URL or event, ErrForbidden for a lab the actor does
// not manage, and ErrConflict when the actor has MaxHooksPerOwner hooks already.
func (s *Service) Create(ctx context.Context, actor Actor, nh NewHook) (Hook, string, error) {
	if err := s.guard.CheckURL(nh.URL); err != nil {
		return Hook{}, "", err
	}
	if len(nh.Events) == 0 {
		return Hook{}, "", storage.Invalid("events", "name at least one event")
	}
	events := slices.Clone(nh.Events)
	slices.Sort(events)
	events = slices.Compact(events)
	for _, e := range events {
		if !slices.Contains(Events, e) {
			return Hook{}, "", storage.Invalid("events", fmt.Sprintf("no event %q; the events are %v", e, Events))
		}
	}
	if nh.Hub {
		switch {
		case !actor.Admin:
			return Hook{}, "", fmt.Errorf("only a site admin may register a hook for the whole hub: %w", storage.ErrForbidden)
		case nh.Lab != "":
			return Hook{}, "", storage.Invalid("hub", "a hook is for a lab or for the whole hub, not both")
		}
		for _, e := range events {
			if !slices.Contains(HubEvents, e) {
				return Hook{}, "", storage.Invalid("events", fmt.Sprintf("a hook for the whole hub hears of %v, not %q", HubEvents, e))
			}
		}
	}
	h := Hook{ID: "wh_" + randomHex(12), OwnerID: actor.ID, URL: nh.URL, Events: events, Hub: nh.Hub,
		CreatedAt: s.opts.Clock().UTC().Truncate(time.Millisecond)}
	if nh.Lab != "" {
		labID, err := s.labs.ManagedLab(ctx, actor, nh.Lab)
		if err != nil {
			return Hook{}, "", fmt.Errorf("register a hook for lab %s: %w", nh.Lab, err)
		}
		h.LabID, h.Lab = labID, nh.Lab
	}
	have, err := s.store.Hooks(ctx, actor.ID)
	if err != nil {
		return Hook{}, "", fmt.Errorf("register a hook: %w", err)
	}
	if len(have) >= s.opts.MaxHooksPerOwner {
		return Hook{}, "", fmt.Errorf("you have %d webhooks, the most one person may have; delete one first: %w", len(have), storage.ErrConflict)
	}
	b := make([]byte, 32)
	rand.Read(b)
	h.Secret = "whsec_" + base64.RawURLEncoding.EncodeToString(b)
	if err := s.store.CreateHook(ctx, h); err != nil {
		return Hook{}, "", fmt.Errorf("register a hook: %w", err)
	}
	return h, h.Secret, nil
}

// Hooks are the actor's hooks.
func (s *Service) Hooks(ctx context.Context, actor Actor) ([]Hook, error) {
	return s.store.Hooks(ctx, actor.ID)
}

// own returns the hook if the actor registered it. Someone else's hook is
// storage.ErrNotFound, as if it did not exist: hook ids are not to be probed.
func (s *Service) own(ctx context.Context, actor Actor, id string) (Hook, error) {
	h, err := s.store.Hook(ctx, id)
	if err == nil && h.OwnerID != actor.ID {
		err = storage.ErrNotFound
	}
	if err != nil {
		return Hook{}, fmt.Errorf("webhook %s: %w", id, err)
	}
	return h, nil
}

// Delete deletes the actor's hook and its deliveries: nothing more is sent to it (an
// attempt already on the wire finishes, and its outcome is dropped).
func (s *Service) Delete(ctx context.Context, actor Actor, id string) error {
	if _, err := s.own(ctx, actor, id); err != nil {
		return err
	}
	return s.store.DeleteHook(ctx, id)
}

// Deliveries are the latest deliveries to the actor's hook, newest first.
func (s *Service) Deliveries(ctx context.Context, actor Actor, id string, limit int) ([]Delivery, error) {
	if _, err := s.own(ctx, actor, id); err != nil {
		return nil, err
	}
	return s.store.Deliveries(ctx, id, limit)
}

// SendTest queues a ping to the actor's hook and returns the pending delivery; its
// outcome shows in Deliveries once it has been tried.
func (s *Service) SendTest(ctx context.Context, actor Actor, id string) (Delivery, error) {
	h, err := s.own(ctx, actor, id)
	if err != nil {
		return Delivery{}, err
	}
	d, err := s.enqueue(ctx, h, Notice{Event: Ping, Data: map[string]string{"hook_id": h.ID}})
	if err != nil {
		return Delivery{}, err
	}
	s.poke()
	return d, nil
}

// Notify queues n for the hooks that want it and returns at once. When the queue is
// full (the store has been away for a while) the notice is dropped and logged.
func (s *Service) Notify(n Notice) {
	select {
	case s.notices <- n:
	default:
		s.log.Warn("webhook notice dropped: the queue is full", "event", n.Event, "lab_id", n.LabID)
	}
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run records notices as deliveries and delivers what is due, until ctx ends.
func (s *Service) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case n := <-s.notices:
				s.record(ctx, n)
			}
		}
	}()
	tick := time.NewTicker(s.opts.PollEvery)
	defer tick.Stop()
	var pruned time.Time
	for {
		if _, err := s.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("webhook deliveries failed", "err", err)
		}
		if now := s.opts.Clock(); now.Sub(pruned) >= pruneEvery {
			s.Prune(ctx)
			pruned = now
		}
		select {
		case <-ctx.Done():
			<-done
			return
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// pruneEvery is how often Run prunes old deliveries.
const pruneEvery = 6 * time.Hour

// Prune deletes the deliveries that ended more than KeepDeliveries ago, so the record
// of what was sent does not grow without end. Pending deliveries are never pruned.
func (s *Service) Prune(ctx context.Context) {
	n, err := s.store.PruneDeliveries(ctx, s.opts.Clock().Add(-s.opts.KeepDeliveries))
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.Warn("old webhook deliveries not pruned", "err", err)
	case n > 0:
		s.log.Info("old webhook deliveries pruned", "count", n)
	}
}

// record makes one delivery per hook that wants n.
func (s *Service) record(ctx context.Context, n Notice) {
	hooks, err := s.store.HooksFor(ctx, n.Event, n.LabID, n.OwnerID, n.Maintainers)
	if err != nil {
		s.log.Warn("webhook notice lost: the hooks could not be read", "event", n.Event, "err", err)
		return
	}
	for _, h := range hooks {
		if _, err := s.enqueue(ctx, h, n); err != nil {
			s.log.Warn("webhook delivery not recorded", "event", n.Event, "hook_id", h.ID, "err", err)
		}
	}
	if len(hooks) > 0 {
		s.poke()
	}
}

// payload is the body of a delivery.
type payload struct {
	ID        string    `json:"id"` // the delivery's id, as in X-Fab-Delivery
	Event     string    `json:"event"`
	CreatedAt time.Time `json:"created_at"`
	Data      any       `json:"data"`
}

func (s *Service) enqueue(ctx context.Context, h Hook, n Notice) (Delivery, error) {
	now := s.opts.Clock().UTC().Truncate(time.Millisecond)
	d := Delivery{ID: "whd_" + randomHex(12), HookID: h.ID, Event: n.Event, State: Pending,
		NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}
	body, err := json.Marshal(payload{ID: d.ID, Event: n.Event, CreatedAt: now, Data: n.Data})
	if err != nil {
		return Delivery{}, fmt.Errorf("webhook payload of %s: %w", n.Event, err)
	}
	d.Payload = body
	if err := s.store.AddDelivery(ctx, d); err != nil {
		return Delivery{}, fmt.Errorf("record a delivery of %s: %w", n.Event, err)
	}
	return d, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
