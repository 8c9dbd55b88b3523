// Package webhook tells people and labs, over HTTP, of the events that need someone:
// signed JSON deliveries, queued in the store and retried with backoff for a day.
package webhook

import (
	"context"
	"encoding/json"
	"time"
)

// The events a hook may subscribe to.
const (
	JobAwaitingApproval = "job.awaiting_approval" // an operator must approve or reject a job
	JobFailed           = "job.failed"
	JobAwaitingHarvest  = "job.awaiting_harvest" // a part is ready to be taken off the machine
	JobDone             = "job.done"
	OrderRefused        = "order.refused"   // an operator rejected a job of an order
	MachineOffline      = "machine.offline" // the hub has not heard from a machine's agent
	DesignReported      = "design.reported" // someone flagged a design to the maintainers
	Ping                = "ping"            // a test delivery, sent on request; no hook subscribes to it
)

// Events are the events a hook may subscribe to, in the order the docs list them.
var Events = []string{JobAwaitingApproval, JobFailed, JobAwaitingHarvest, JobDone, OrderRefused, MachineOffline, DesignReported}

// HubEvents are the events a hook for the whole hub may ask for: what the hub's
// maintainers must act on.
var HubEvents = []string{DesignReported}

// The states of a delivery.
const (
	Pending   = "pending"   // not yet delivered; NextAttemptAt says when it is tried (again)
	Delivered = "delivered" // the receiver answered 2xx
	Failed    = "failed"    // every attempt failed; no more are made
)

// Hook is a URL someone registered for some events: a personal hook (LabID "") for
// things of their own, or a lab's hook (for a lab's owners and operators).
type Hook struct {
	ID      string   `json:"id"`
	OwnerID string   `json:"-"`
	LabID   string   `json:"lab_id,omitempty"`
	Lab     string   `json:"lab,omitempty"` // the lab's slug, when it is a lab's hook
	URL     string   `json:"url"`
	Events  []string `json:"events"`
	// Hub marks a site admin's hook for the whole hub: it hears of every design
	// reported, not only the owner's own (HubEvents).
	Hub bool `json:"hub,omitempty"`
	// Secret signs the deliveries. It is stored as it is (the hub must sign with it),
	// shown once when the hook is made, and never logged.
	Secret    string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// Delivery is one event sent (or to be sent) to one hook. Payload is the exact body of
// every attempt; the timestamp and signature are made at each attempt.
type Delivery struct {
	ID            string          `json:"id"`
	HookID        string          `json:"hook_id"`
	Event         string          `json:"event"`
	Payload       json.RawMessage `json:"payload"`
	State         string          `json:"state"`
	Attempts      int             `json:"attempts"`
	NextAttemptAt time.Time       `json:"next_attempt_at"`
	LastStatus    int             `json:"last_status,omitempty"` // the receiver's last HTTP status (0: no answer)
	LastError     string          `json:"last_error,omitempty"`  // why the last attempt failed
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
}

// Store persists hooks and their deliveries. Missing hooks and deliveries are
// storage.ErrNotFound.
type Store interface {
	CreateHook(ctx context.Context, h Hook) error
	Hook(ctx context.Context, id string) (Hook, error)
	// Hooks are the hooks ownerID registered, oldest first.
	Hooks(ctx context.Context, ownerID string) ([]Hook, error)
	// HooksFor are the hooks subscribed to event that are the lab's (labID), personal
	// hooks of ownerID, or, when hub is true, hooks for the whole hub; an empty labID or
	// ownerID matches nothing.
	HooksFor(ctx context.Context, event, labID, ownerID string, hub bool) ([]Hook, error)
	// DeleteHook deletes the hook and its deliveries, so nothing more is sent to it.
	DeleteHook(ctx context.Context, id string) error
	AddDelivery(ctx context.Context, d Delivery) error
	// DueDeliveries are up to limit pending deliveries whose NextAttemptAt is not after
	// now, earliest first.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error)
	// SaveAttempt records an attempt's outcome: State, Attempts, NextAttemptAt,
	// LastStatus, LastError and UpdatedAt. It is ErrNotFound when the delivery is gone
	// (its hook was deleted meanwhile).
	SaveAttempt(ctx context.Context, d Delivery) error
	// Deliveries are the hook's latest deliveries, newest first, at most limit.
	Deliveries(ctx context.Context, hookID string, limit int) ([]Delivery, error)
	// PruneDeliveries deletes the deliveries that are over (delivered or failed) and
	// were last changed before before, and says how many went. Pending ones stay.
	PruneDeliveries(ctx context.Context, before time.Time) (int64, error)
}
