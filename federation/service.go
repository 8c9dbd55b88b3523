package federation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/federation/netguard"
	"github.com/fabcommons/fabcommons/storage"
)

// Options tune the service; zero values take the defaults.
type Options struct {
	PublicURL    string           // FAB_PUBLIC_URL: the hub's identity, http(s)://host[:port]; required
	AllowHosts   []string         // FAB_FEDERATION_ALLOW_HOSTS: hosts or CIDRs reachable even when private
	Timeout      time.Duration    // one fetch or delivery, connecting to the end of the answer (10 s)
	FileTimeout  time.Duration    // one fetch of a remote design's file (5 min)
	KeyTTL       time.Duration    // how long a fetched signer's key is trusted before it is fetched again (1 h)
	MaxClockSkew time.Duration    // how far a signed Date may be from the hub's clock (12 h, as Mastodon)
	PerHost      int              // inbound activities one remote host may send a minute (300)
	Backoff      []time.Duration  // the waits before each retry of a delivery (DefaultBackoff)
	PollEvery    time.Duration    // how often the store is checked for due deliveries, besides when woken (5 s)
	KeyBits      int              // RSA key size (2048)
	MakesPerHost int              // makes of this hub's designs kept from one remote host (10,000)
	MaxWaiting   int              // deliveries that may wait, for every host together (100,000; 1,000 for one host)
	Clock        func() time.Time // time.Now by default
}

// DefaultBackoff retries a delivery for about a day, as Mastodon does.
var DefaultBackoff = []time.Duration{30 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour}

// Caller is who calls the admin API.
type Caller struct {
	ID    string
	Admin bool
}

// Service is the hub's federation: its actors, inbox and follows.
type Service struct {
	store   Store
	dir     Directory
	designs Designs
	log     *slog.Logger
	opts    Options
	base    string // the public URL without a trailing slash
	host    string // its host (and port)
	guard   netguard.Guard
	client  *http.Client
	files   *http.Client // for remote designs' files, with the longer FileTimeout
	resyncs chan Follow  // accepted follows whose outbox is to be pulled
	rate    *account.Throttle
	leases  storage.Leases // nil: a single hub, no lease needed to deliver
	holder  string         // this hub's name for the delivery lease
	wake    chan struct{}  // a delivery is due now
	queued  atomic.Uint32  // deliveries queued, for their ids' order
	waiting waitingCount   // deliveries waiting for every host (deliver.go)
	keygen  chan struct{}  // one local key pair made at a time

	mu   sync.Mutex
	keys map[string]cachedKey // remote signers' keys by key id
	own  map[string]ownKey    // local actors' keys by ref
}

// NewService builds the service. It fails when o.PublicURL is not an http(s) URL of a
// host: a hub without one does not federate (cmd/fabhub then builds none, and the
// federation routes answer 404 saying so).
func NewService(store Store, dir Directory, designs Designs, leases storage.Leases, log *slog.Logger, o Options) (*Service, error) {
	base, host, err := parseBase(o.PublicURL)
	if err != nil {
		return nil, err
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.FileTimeout == 0 {
		o.FileTimeout = 5 * time.Minute
	}
	if o.KeyTTL == 0 {
		o.KeyTTL = time.Hour
	}
	if o.MaxClockSkew == 0 {
		o.MaxClockSkew = 12 * time.Hour
	}
	if o.PerHost == 0 {
		o.PerHost = 300
	}
	if o.Backoff == nil {
		o.Backoff = DefaultBackoff
	}
	if o.PollEvery == 0 {
		o.PollEvery = 5 * time.Second
	}
	if o.KeyBits == 0 {
		o.KeyBits = 2048
	}
	if o.MakesPerHost == 0 {
		o.MakesPerHost = 10_000
	}
	if o.MaxWaiting == 0 {
		o.MaxWaiting = 100_000
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	guard := netguard.New(o.AllowHosts)
	return &Service{store: store, dir: dir, designs: designs, log: log, opts: o, base: base, host: host, guard: guard,
		client: guard.Client(o.Timeout), files: guard.Client(o.FileTimeout), resyncs: make(chan Follow, 64), rate: account.NewThrottle(o.PerHost, time.Minute, 100_000),
		leases: leases, holder: "hub-" + randomHex(6), wake: make(chan struct{}, 1), keygen: make(chan struct{}, 1), keys: map[string]cachedKey{}, own: map[string]ownKey{}}, nil
}

// BaseURL is the hub's public URL, without a trailing slash.
func (s *Service) BaseURL() string { return s.base }

// rateLimited is a remote host over its PerHost.
type rateLimited struct {
	host string
	wait time.Duration
}

func (e *rateLimited) Error() string {
	return fmt.Sprintf("too many activities from %s: try again in %s", e.host, e.wait.Round(time.Second))
}
func (e *rateLimited) RetryAfter() time.Duration { return e.wait }

// Receive takes in an activity POSTed to one of the hub's inboxes. It ends one of
// these ways: nil (done, or understood and ignored); storage.ErrForbidden (its host is
// blocked, or the signer is not the activity's actor, or speaks for another host);
// ErrBadSignature; a rate limit (RetryAfter); storage.ErrInvalid (not an activity, a
// Follow of no actor of this hub, or a make of a version its design lacks); or
// storage.ErrNotFound (an Accept of no follow of this hub's).
func (s *Service) Receive(ctx context.Context, r *http.Request, body []byte) error {
	keyID, _, ok := signatureParams(r.Header)
	if !ok {
		return fmt.Errorf("%w: the request is not signed", ErrBadSignature)
	}
	host := hostOf(keyID)
	if host == "" {
		return fmt.Errorf("%w: the keyId %q is not an http(s) URL", ErrBadSignature, keyID)
	}
	if err := s.refuseBlocked(ctx, host); err != nil {
		return err
	}
	if wait := s.rate.Take(host, s.opts.Clock()); wait > 0 {
		return &rateLimited{host: host, wait: wait}
	}
	signer, err := s.Verify(ctx, r, body)
	if err != nil {
		return err
	}
	a, err := ParseActivity(body)
	if err != nil {
		return err
	}
	if a.Actor != signer.ID {
		return fmt.Errorf("%w: the activity's actor is %s but %s signed it", storage.ErrForbidden, a.Actor, signer.ID)
	}
	switch a.Type {
	case "Follow":
		return s.onFollow(ctx, a, signer)
	case "Accept", "Reject":
		return s.onAnswer(ctx, a)
	case "Create", "Update", "Delete":
		if a.Object.Type == TypeMake {
			return s.onMake(ctx, a, signer, body)
		}
		return s.onDesign(ctx, a, signer, body)
	case "Undo":
		// Only an Undo that embeds its Follow (as Mastodon's do) unfollows: one that
		// names its object by id alone may be undoing anything.
		if a.Object.Type == "Follow" {
			return s.onUnfollow(ctx, a)
		}
	}
	s.log.Debug("federation: activity ignored", "type", a.Type, "actor", a.Actor)
	return nil
}

// refuseBlocked is storage.ErrForbidden when host is blocked.
func (s *Service) refuseBlocked(ctx context.Context, host string) error {
	blocks, err := s.store.Blocks(ctx)
	if err != nil {
		return err
	}
	for _, b := range blocks {
		if blockedBy(host, b.Host) {
			return fmt.Errorf("%w: %s is blocked on this hub", storage.ErrForbidden, host)
		}
	}
	return nil
}

// onFollow records a follower of a local actor and answers with an Accept from it.
func (s *Service) onFollow(ctx context.Context, a Activity, from RemoteActor) error {
	l, err := s.localOf(ctx, a.Object.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Invalid("object", fmt.Sprintf("%s is not an actor of this hub", a.Object.ID))
	}
	if err != nil {
		return err
	}
	inbox := from.Inbox
	if from.SharedInbox != "" {
		inbox = from.SharedInbox
	}
	f := Follower{Local: l.Ref, Actor: from.ID, Inbox: inbox, Host: hostOf(from.ID), ActivityID: a.ID,
		CreatedAt: s.opts.Clock().UTC().Truncate(time.Millisecond)}
	if err := s.store.AddFollower(ctx, f); err != nil {
		return err
	}
	id := s.ActorURL(l)
	accept := map[string]any{"@context": contextAS, "id": id + "#accepts/" + randomHex(8), "type": "Accept", "actor": id,
		"object": map[string]any{"id": a.ID, "type": "Follow", "actor": a.Actor, "object": a.Object.ID}}
	if err := s.enqueue(ctx, l, from.Inbox, accept); err != nil {
		return err // the sender tries again, and is answered then
	}
	s.log.Info("federation: a remote actor follows", "local", l.Ref, "actor", from.ID)
	return nil
}

// onAnswer marks a follow of this hub's accepted or rejected. The answer names the
// Follow by its id (which this hub made: <base>/ap/follows/<id>), and must come from
// the actor followed.
func (s *Service) onAnswer(ctx context.Context, a Activity) error {
	id, ok := strings.CutPrefix(a.Object.ID, s.base+PathFollows+"/")
	if !ok {
		return fmt.Errorf("%w: %s answers %s, not a follow of this hub", storage.ErrNotFound, a.Type, a.Object.ID)
	}
	f, err := s.store.Follow(ctx, id)
	if err != nil {
		return err
	}
	if f.Actor != a.Actor {
		return fmt.Errorf("%w: %s may not answer a follow of %s", storage.ErrForbidden, a.Actor, f.Actor)
	}
	state := Accepted
	if a.Type == "Reject" {
		state = Rejected
	}
	if err := s.store.SetFollowState(ctx, f.ID, state, s.opts.Clock().UTC().Truncate(time.Millisecond)); err != nil {
		return err
	}
	if state == Accepted && f.State != Accepted {
		f.State = state
		select {
		case s.resyncs <- f: // Run pulls its outbox, not this request
		default:
			s.log.Warn("federation: too many resyncs waiting; one is dropped", "actor", f.Actor)
		}
	}
	return nil
}

// onUnfollow removes a follower on its Undo of a Follow, of whichever local actor
// its Follow named (or of every local actor it follows when the Undo names none).
func (s *Service) onUnfollow(ctx context.Context, a Activity) error {
	if a.Object.Object != "" {
		l, err := s.localOf(ctx, a.Object.Object)
		if err != nil {
			return nil // not one of ours: nothing to undo
		}
		return s.store.RemoveFollower(ctx, l.Ref, a.Actor)
	}
	return s.store.RemoveFollower(ctx, "", a.Actor)
}

// Follow has this hub's instance actor follow target (a hub's URL, an actor's URL or
// @handle@host): it records the follow as pending and sends the Follow in the
// background. It is storage.ErrForbidden for anyone but a site admin, ErrInvalid for a
// target that resolves to no actor (or to this hub, or a blocked host), ErrConflict
// when the actor is followed already.
func (s *Service) Follow(ctx context.Context, c Caller, target string) (Follow, error) {
	if !c.Admin {
		return Follow{}, fmt.Errorf("%w: only a site admin has the hub follow others", storage.ErrForbidden)
	}
	if target == "" || len(target) > 2000 {
		return Follow{}, storage.Invalid("target", "name a hub's URL, an actor's URL or @handle@host")
	}
	remote, err := s.Resolve(ctx, target)
	if err != nil {
		if errors.Is(err, storage.ErrInvalid) {
			return Follow{}, err
		}
		return Follow{}, storage.Invalid("target", fmt.Sprintf("%s could not be reached: %v", target, err))
	}
	host := hostOf(remote.ID)
	if host == s.host {
		return Follow{}, storage.Invalid("target", "that is this hub")
	}
	if err := s.refuseBlocked(ctx, host); err != nil {
		return Follow{}, storage.Invalid("target", fmt.Sprintf("%s is blocked; unblock it first", host))
	}
	now := s.opts.Clock().UTC().Truncate(time.Millisecond)
	f := Follow{ID: randomHex(12), Target: target, Actor: remote.ID, Inbox: remote.Inbox, Host: host, State: Pending, CreatedAt: now, UpdatedAt: now}
	if err := s.store.AddFollow(ctx, f); err != nil {
		return Follow{}, err
	}
	if err := s.enqueue(ctx, s.instance(), f.Inbox, s.followActivity(f)); err != nil {
		if derr := s.store.DeleteFollow(ctx, f.ID); derr != nil {
			s.log.Error("federation: a follow whose Follow was not queued was not deleted", "follow", f.ID, "err", derr)
		}
		return Follow{}, err
	}
	return f, nil
}

func (s *Service) followActivity(f Follow) map[string]any {
	return map[string]any{"@context": contextAS, "id": s.base + PathFollows + "/" + f.ID, "type": "Follow",
		"actor": s.ActorURL(s.instance()), "object": f.Actor}
}

// Follows are the hub's follows, for a site admin.
func (s *Service) Follows(ctx context.Context, c Caller) ([]Follow, error) {
	if !c.Admin {
		return nil, fmt.Errorf("%w: only a site admin sees the hub's follows", storage.ErrForbidden)
	}
	return s.store.Follows(ctx)
}

// Unfollow deletes a follow and sends its Undo in the background. It is
// storage.ErrForbidden for anyone but a site admin and ErrNotFound for no such follow.
func (s *Service) Unfollow(ctx context.Context, c Caller, id string) error {
	if !c.Admin {
		return fmt.Errorf("%w: only a site admin unfollows for the hub", storage.ErrForbidden)
	}
	f, err := s.store.Follow(ctx, id)
	if err != nil {
		return err
	}
	// The Undo is queued first: should that fail, the follow stays, to be undone again.
	follow := s.followActivity(f)
	if err := s.enqueue(ctx, s.instance(), f.Inbox, map[string]any{"@context": contextAS, "id": follow["id"].(string) + "#undo",
		"type": "Undo", "actor": follow["actor"], "object": follow}); err != nil {
		return err
	}
	return s.store.DeleteFollow(ctx, id)
}

// BlockHost blocks host (a host name, host:port, or a URL whose host is taken): its
// activities are refused from now on, and the follows both ways with it are dropped
// (without telling it). It is storage.ErrForbidden for anyone but a site admin.
func (s *Service) BlockHost(ctx context.Context, c Caller, host string) (Block, error) {
	if !c.Admin {
		return Block{}, fmt.Errorf("%w: only a site admin blocks hosts", storage.ErrForbidden)
	}
	host, err := blockedHost(host)
	if err != nil {
		return Block{}, err
	}
	b := Block{Host: host, CreatedAt: s.opts.Clock().UTC().Truncate(time.Millisecond)}
	if err := s.store.AddBlock(ctx, b); err != nil {
		return Block{}, err
	}
	if err := s.store.DropHost(ctx, host); err != nil {
		return Block{}, fmt.Errorf("drop the follows of %s: %w", host, err)
	}
	n, err := s.designs.DropRemoteHost(ctx, host)
	if err != nil {
		return Block{}, fmt.Errorf("drop the designs of %s: %w", host, err)
	}
	s.log.Info("federation: a host is blocked", "host", host, "designs_dropped", n)
	return b, nil
}

// blockedHost is the host a block names, given as a host (with or without a port) or a
// URL, in lower case.
func blockedHost(host string) (string, error) {
	host = strings.ToLower(strings.TrimSpace(host))
	if strings.Contains(host, "://") {
		host = hostOf(host)
	}
	if host == "" || len(host) > 255 || strings.ContainsAny(host, "/?#@ ") {
		return "", storage.Invalid("host", "name a host, such as hub.example.org or hub.example.org:8443")
	}
	if _, err := url.Parse("https://" + host); err != nil {
		return "", storage.Invalid("host", "name a host, such as hub.example.org or hub.example.org:8443")
	}
	return host, nil
}

// Unblock lifts a block: the host's activities are taken again. What the block dropped
// (follows, followers, remote designs) comes back only by following anew.
func (s *Service) Unblock(ctx context.Context, c Caller, host string) error {
	if !c.Admin {
		return fmt.Errorf("%w: only a site admin lifts blocks", storage.ErrForbidden)
	}
	host, err := blockedHost(host)
	if err != nil {
		return err
	}
	if err := s.store.RemoveBlock(ctx, host); err != nil {
		return err
	}
	s.log.Info("federation: a host is unblocked", "host", host)
	return nil
}

// Blocks are the blocked hosts, for a site admin.
func (s *Service) Blocks(ctx context.Context, c Caller) ([]Block, error) {
	if !c.Admin {
		return nil, fmt.Errorf("%w: only a site admin sees the blocks", storage.ErrForbidden)
	}
	bs, err := s.store.Blocks(ctx)
	slices.SortFunc(bs, func(a, b Block) int { return strings.Compare(a.Host, b.Host) })
	return bs, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
