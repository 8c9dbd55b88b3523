package federation

import (
	"context"
	"time"
)

// RemoteMake is one of this hub's designs made at a lab of another hub, as that hub
// told it (a Create of a fab:Make): the design's fabrication record across hubs.
type RemoteMake struct {
	ID       string    `json:"id"`        // the job's URL on the hub that made it: the Make's id
	DesignID string    `json:"design_id"` // the local design made
	Version  int       `json:"version"`
	Host     string    `json:"hub"`      // the hub that made it (host[:port])
	Lab      string    `json:"lab"`      // the lab's actor id (its page)
	LabName  string    `json:"lab_name"` // as its actor names it
	File     string    `json:"file"`     // the mesh made
	EndedAt  time.Time `json:"ended_at"`
	// CreatedAt is when this hub heard of it.
	CreatedAt time.Time `json:"created_at"`
}

// MakeStore keeps the makes of this hub's designs that other hubs told of.
type MakeStore interface {
	// AddRemoteMake records a make; storage.ErrConflict when one of the same id is
	// recorded (a delivery repeated).
	AddRemoteMake(ctx context.Context, m RemoteMake) error
	// RemoteMakes are a design's makes, the latest ended first, at most limit.
	RemoteMakes(ctx context.Context, designID string, limit int) ([]RemoteMake, error)
	// CountRemoteMakes counts the makes recorded from host.
	CountRemoteMakes(ctx context.Context, host string) (int, error)
	// RemoteMakeCounts counts the makes of each design (by id) that have any.
	RemoteMakeCounts(ctx context.Context) (map[string]int, error)
}
