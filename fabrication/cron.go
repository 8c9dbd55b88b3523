package fabrication

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/fabcommons/fabcommons/storage"
)

// Task is one maintenance job: what it is called, when it runs (a cron spec with
// seconds, e.g. "*/5 * * * * *"), and what it does (returning how many things it did).
type Task struct {
	Name string
	Spec string
	Run  func(ctx context.Context) (int, error)
}

// Maintenance runs tasks on their schedules. Each run first takes the task's named
// lease in the database, so with several hub replicas sharing one database only one
// runs a given task at a time.
type Maintenance struct {
	cron   *cron.Cron
	leases storage.Leases
	holder string
	log    *slog.Logger
	now    func() time.Time
}

// NewMaintenance schedules tasks; Start runs them until Stop.
func NewMaintenance(leases storage.Leases, log *slog.Logger, clock func() time.Time, tasks []Task) (*Maintenance, error) {
	if clock == nil {
		clock = time.Now
	}
	b := make([]byte, 6)
	rand.Read(b)
	m := &Maintenance{cron: cron.New(cron.WithSeconds()), leases: leases, holder: "hub-" + hex.EncodeToString(b), log: log, now: clock}
	for _, t := range tasks {
		if _, err := m.cron.AddFunc(t.Spec, func() { m.RunOnce(context.Background(), t) }); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// RunOnce runs t now if this hub can take its lease; it reports whether it ran.
func (m *Maintenance) RunOnce(ctx context.Context, t Task) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	ok, err := m.leases.AcquireLease(ctx, "cron:"+t.Name, m.holder, m.now(), 5*time.Minute)
	if err != nil {
		m.log.Warn("maintenance lease failed", "task", t.Name, "err", err)
		return false
	}
	if !ok {
		return false // another replica is running it
	}
	defer m.leases.ReleaseLease(context.WithoutCancel(ctx), "cron:"+t.Name, m.holder)
	n, err := t.Run(ctx)
	if err != nil {
		m.log.Warn("maintenance task failed", "task", t.Name, "err", err)
		return true
	}
	if n > 0 {
		m.log.Info("maintenance", "task", t.Name, "count", n)
	}
	return true
}

// Start starts the schedule.
func (m *Maintenance) Start() { m.cron.Start() }

// Stop stops the schedule and waits for running tasks.
func (m *Maintenance) Stop() { <-m.cron.Stop().Done() }
