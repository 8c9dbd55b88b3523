// Package federation joins hubs over ActivityPub: WebFinger, the actors of a hub (the
// instance, its people and labs), HTTP Signatures as Mastodon applies them, and
// following between hubs with its Follow, Accept, Reject and Undo.
package federation

import (
	"context"
	"errors"
	"time"
)

// The states of a follow this hub asked for.
const (
	Pending  = "pending"  // the Follow was sent (or is on its way); no answer yet
	Accepted = "accepted" // the remote actor answered Accept
	Rejected = "rejected" // the remote actor answered Reject
)

// The kinds of local actor.
const (
	KindInstance = "instance" // the hub itself (type Application)
	KindPerson   = "person"   // a person with an account (type Person)
	KindLab      = "lab"      // a fab lab (type Organization)
)

// ErrBadSignature is an inbound request whose HTTP signature is missing, malformed,
// stale, over a changed body, or does not verify against the signer's key. It is a 401.
var ErrBadSignature = errors.New("bad or missing HTTP signature")

// ErrOff is a federation route of a hub that has no public URL (FAB_PUBLIC_URL): it
// has no identity to federate under.
var ErrOff = errors.New("this hub does not federate: it has no public URL (set FAB_PUBLIC_URL)")

// Key is a local actor's RSA key pair, PEM-encoded. The private key signs what the
// actor sends; it is never logged, shown, or written to a public archive.
type Key struct {
	Owner      string    `json:"owner"` // the local actor's ref: "instance", "person:<user id>", "lab:<lab id>"
	PublicPEM  string    `json:"public_pem"`
	PrivatePEM string    `json:"-"`
	CreatedAt  time.Time `json:"created_at"`
}

// Follow is a follow this hub asked for: the instance actor follows a remote actor.
type Follow struct {
	ID        string    `json:"id"`
	Target    string    `json:"target"` // as the admin gave it
	Actor     string    `json:"actor"`  // the remote actor's id (a URL)
	Inbox     string    `json:"inbox"`  // where the Follow and its Undo go
	Host      string    `json:"host"`   // the remote actor's host (with its port, if any)
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Follower is a remote actor following one of this hub's actors.
type Follower struct {
	Local      string    `json:"local"`       // the followed local actor's ref
	Actor      string    `json:"actor"`       // the remote actor's id
	Inbox      string    `json:"inbox"`       // its inbox (the shared one when it has one)
	Host       string    `json:"host"`        // its host
	ActivityID string    `json:"activity_id"` // the id of its Follow, which its Undo names
	CreatedAt  time.Time `json:"created_at"`
}

// Block is a host this hub refuses: its activities are answered 403 and its follows
// (both ways) were dropped when it was blocked.
type Block struct {
	Host      string    `json:"host"` // a host name (any port), or host:port (that port only)
	CreatedAt time.Time `json:"created_at"`
}

// Delivery is an activity on its way to a remote inbox. It is kept in the store until
// it is sent (or given up), so that a hub that stops sends it once it starts again.
type Delivery struct {
	ID        string // in the order the deliveries were queued
	From      string // the id of the local actor that sends it, and signs it
	Inbox     string // where it goes; "" when Hub says
	Hub       string // else a hub's URL: it goes to the inbox of its instance actor, found when sending
	Host      string // the host it goes to (of Inbox or Hub), which bounds how many may wait for one
	Body      []byte // the activity, exactly as every attempt sends it
	Attempts  int    // failed attempts so far
	Due       time.Time
	CreatedAt time.Time
}

// Store persists keys, follows, followers, blocks, the deliveries on their way and
// the makes other hubs told of. Missing records are storage.ErrNotFound.
type Store interface {
	MakeStore

	// Key is the key pair of the local actor owner.
	Key(ctx context.Context, owner string) (Key, error)
	// AddKey stores a key pair; it is storage.ErrConflict when owner has one already
	// (another hub replica made it first: read that one).
	AddKey(ctx context.Context, k Key) error

	// AddFollow records a follow; storage.ErrConflict when one of the same remote
	// actor exists.
	AddFollow(ctx context.Context, f Follow) error
	Follow(ctx context.Context, id string) (Follow, error)
	// Follows are every follow, oldest first.
	Follows(ctx context.Context) ([]Follow, error)
	// SetFollowState sets a follow's State and UpdatedAt.
	SetFollowState(ctx context.Context, id, state string, at time.Time) error
	DeleteFollow(ctx context.Context, id string) error

	// AddFollower records (or, for the same local and remote actor, replaces) a follower.
	AddFollower(ctx context.Context, f Follower) error
	// RemoveFollower removes remote actor's follow of local (of every local actor when
	// local is ""); absent is not an error.
	RemoveFollower(ctx context.Context, local, actor string) error
	// Followers are local's followers, oldest first.
	Followers(ctx context.Context, local string) ([]Follower, error)

	// AddBlock records a block; blocking a host twice keeps the first.
	AddBlock(ctx context.Context, b Block) error
	// Blocks are every block, by host.
	Blocks(ctx context.Context) ([]Block, error)
	// RemoveBlock lifts the block of host; storage.ErrNotFound when there is none.
	RemoveBlock(ctx context.Context, host string) error
	// DropHost deletes the follows, followers and remote makes whose Host is host, or
	// whose host name is host when host has no port.
	DropHost(ctx context.Context, host string) error

	AddDelivery(ctx context.Context, d Delivery) error
	// DueDeliveries are up to limit deliveries, each the first queued (the lowest ID) of
	// those to its destination (its Inbox and Hub), whose Due is not after now, by ID: a
	// destination's deliveries go one at a time, in order, and one that waits for its
	// retry holds back those behind it, not other destinations'.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error)
	// CountDeliveries is how many deliveries wait for host (every host when "").
	CountDeliveries(ctx context.Context, host string) (int, error)
	// RetryDelivery sets a delivery's Attempts and Due; storage.ErrNotFound when it is gone.
	RetryDelivery(ctx context.Context, id string, attempts int, due time.Time) error
	// DeleteDelivery deletes a delivery that is over; absent is not an error.
	DeleteDelivery(ctx context.Context, id string) error
}
