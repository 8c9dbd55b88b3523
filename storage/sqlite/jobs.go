package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage"
)

// CreateOrder writes the order and its jobs as one atomic op of the group commit: an
// order is all there or not at all, and it shares its commit with the claims and
// reports waiting at the same time (its own transaction took the only write
// connection, and a commit, for each order).
func (f Fabrication) CreateOrder(ctx context.Context, o fabrication.Order, jobs []fabrication.Job) error {
	steps := make([]writeStep, 0, 1+len(jobs))
	steps = append(steps, writeStep{query: `INSERT INTO orders(id, lab_id, requester_id, data) VALUES (?, ?, ?, ?)`, args: []any{o.ID, o.LabID, o.RequesterID, mustJSON(o)}})
	for _, j := range jobs {
		data, events := jobJSON(j)
		steps = append(steps, writeStep{query: `INSERT INTO jobs(id, order_id, lab_id, design_id, requester_id, state, priority, enqueued_at, updated_at,
		machine_id, holding, lease_hash, lease_expires, rev, data, events) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
			args: []any{j.ID, j.OrderID, j.LabID, j.DesignID, j.RequesterID, j.State, j.Priority, unixNano(j.EnqueuedAt),
				unixNano(j.UpdatedAt), j.MachineID, j.Holding, j.LeaseHash, nullNano(j.LeaseExpires), data, events}})
	}
	_, err := f.db.execSteps(ctx, true, steps)
	return mapErr(err)
}

// jobJSON splits a job into its JSON body (without the log) and its event log.
func jobJSON(j fabrication.Job) (string, string) {
	events := j.Events
	if events == nil {
		events = []fabrication.Event{}
	}
	j.Events = nil
	return mustJSON(j), mustJSON(events)
}

func (f Fabrication) Order(ctx context.Context, id string) (fabrication.Order, error) {
	return scanOrder(f.db.queryRow(ctx, `SELECT requester_id, data FROM orders WHERE id = ?`, id))
}

func scanOrder(row scanner) (fabrication.Order, error) {
	var data, requester string
	if err := row.Scan(&requester, &data); err != nil {
		return fabrication.Order{}, mapErr(err)
	}
	var o fabrication.Order
	err := json.Unmarshal([]byte(data), &o)
	o.RequesterID = requester
	return o, err
}

const jobColumns = `requester_id, machine_id, holding, lease_hash, rev, data`

// scanJob reads jobColumns, plus the events column when withEvents.
func (f Fabrication) scanJob(row scanner, withEvents bool) (fabrication.Job, error) {
	var j fabrication.Job
	var requester, machine, lease, data, events string
	var holding bool
	var rev int
	dest := []any{&requester, &machine, &holding, &lease, &rev, &data}
	if withEvents {
		dest = append(dest, &events)
	}
	if err := row.Scan(dest...); err != nil {
		return j, mapErr(err)
	}
	j, err := f.db.jobs.decode(data)
	if err != nil {
		return j, err
	}
	j.RequesterID, j.MachineID, j.Holding, j.LeaseHash, j.Rev = requester, machine, holding, lease, rev
	j.Events = []fabrication.Event{}
	if withEvents {
		if err := json.Unmarshal([]byte(events), &j.Events); err != nil {
			return j, err
		}
	}
	return j, nil
}

func (f Fabrication) Job(ctx context.Context, id string) (fabrication.Job, error) {
	return f.scanJob(f.db.queryRow(ctx, `SELECT `+jobColumns+`, events FROM jobs WHERE id = ?`, id), true)
}

// SaveJob is one UPDATE whose WHERE names the rev the caller read: of two writers that
// read the same rev, exactly one changes a row.
func (f Fabrication) SaveJob(ctx context.Context, j fabrication.Job, prevRev int) error {
	st := saveJobStep(j, prevRev)
	err := expectOne(f.db.exec(ctx, st.query, st.args...))
	if err == storage.ErrNotFound {
		return fmt.Errorf("job %s changed: %w", j.ID, storage.ErrConflict)
	}
	return err
}

func saveJobStep(j fabrication.Job, prevRev int) writeStep {
	data, events := jobJSON(j)
	return writeStep{query: `UPDATE jobs SET state = ?, priority = ?, enqueued_at = ?, updated_at = ?, machine_id = ?,
		holding = ?, lease_hash = ?, lease_expires = ?, rev = rev + 1, data = ?, events = ? WHERE id = ? AND rev = ?`,
		args: []any{j.State, j.Priority, unixNano(j.EnqueuedAt), unixNano(j.UpdatedAt), j.MachineID, j.Holding, j.LeaseHash, nullNano(j.LeaseExpires),
			data, events, j.ID, prevRev}, one: true}
}

// SaveJobAddUsage is SaveJob and AddUsage of the job's machine time as one atomic op
// of the group commit: a job's end and its fair-share time are written together, in
// one trip through the writer instead of two one after the other.
func (f Fabrication) SaveJobAddUsage(ctx context.Context, j fabrication.Job, prevRev int, seconds float64, at time.Time) error {
	_, err := f.db.execSteps(ctx, true, []writeStep{saveJobStep(j, prevRev), addUsageStep(j.LabID, j.RequesterID, seconds, at)})
	if err == storage.ErrNotFound {
		return fmt.Errorf("job %s changed: %w", j.ID, storage.ErrConflict)
	}
	return err
}

// ClaimJob is SaveJob that appends e to the stored log instead of replacing it, as
// fabrication.AppendEvent does: a full log drops its entry after the first.
func (f Fabrication) ClaimJob(ctx context.Context, j fabrication.Job, prevRev int, e fabrication.Event) error {
	data, _ := jobJSON(j)
	ev := mustJSON(e)
	err := expectOne(f.db.exec(ctx, `UPDATE jobs SET state = ?, priority = ?, enqueued_at = ?, updated_at = ?, machine_id = ?,
		holding = ?, lease_hash = ?, lease_expires = ?, rev = rev + 1, data = ?,
		events = CASE WHEN json_array_length(events) >= ? THEN json_insert(json_remove(events, '$[1]'), '$[#]', json(?))
			ELSE json_insert(events, '$[#]', json(?)) END
		WHERE id = ? AND rev = ?`,
		j.State, j.Priority, unixNano(j.EnqueuedAt), unixNano(j.UpdatedAt), j.MachineID, j.Holding, j.LeaseHash, nullNano(j.LeaseExpires),
		data, fabrication.MaxEvents, ev, ev, j.ID, prevRev))
	if err == storage.ErrNotFound {
		return fmt.Errorf("job %s changed: %w", j.ID, storage.ErrConflict)
	}
	return err
}

func (f Fabrication) jobs(ctx context.Context, withEvents bool, query string, args ...any) ([]fabrication.Job, error) {
	cols := jobColumns
	if withEvents {
		cols += ", events"
	}
	rows, err := f.db.query(ctx, `SELECT `+cols+` FROM jobs `+query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []fabrication.Job{}
	for rows.Next() {
		j, err := f.scanJob(rows, withEvents)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

func (f Fabrication) JobsOfOrder(ctx context.Context, orderID string) ([]fabrication.Job, error) {
	return f.jobs(ctx, true, `WHERE order_id = ? ORDER BY rowid`, orderID)
}

func (f Fabrication) Queued(ctx context.Context, labID string, limit int) ([]fabrication.Job, error) {
	return f.jobs(ctx, false, `WHERE lab_id = ? AND state = 'queued' ORDER BY priority DESC, enqueued_at, id LIMIT ?`, labID, limit)
}

func (f Fabrication) DesignJobs(ctx context.Context, designID string, states []string, limit int) ([]fabrication.Job, error) {
	in, args := inList(states)
	return f.jobs(ctx, false, `WHERE design_id = ? AND state IN `+in+` ORDER BY enqueued_at, id LIMIT ?`, append(append([]any{designID}, args...), limit)...)
}

func (f Fabrication) LabJobs(ctx context.Context, labID string, states []string, limit int) ([]fabrication.Job, error) {
	in, args := inList(states)
	return f.jobs(ctx, false, `WHERE lab_id = ? AND state IN `+in+` ORDER BY updated_at DESC LIMIT ?`, append(append([]any{labID}, args...), limit)...)
}

func (f Fabrication) HeldJobs(ctx context.Context, machineID string) ([]fabrication.Job, error) {
	return f.jobs(ctx, false, `WHERE machine_id = ? AND holding = 1`, machineID)
}

func (f Fabrication) ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]fabrication.Job, error) {
	return f.jobs(ctx, false, `WHERE lease_expires IS NOT NULL AND lease_expires < ? AND state IN ('assigned', 'printing', 'canceled') LIMIT ?`, unixNano(now), limit)
}

func (f Fabrication) Usage(ctx context.Context, labID string) (map[string]fabrication.Usage, error) {
	rows, err := f.db.query(ctx, `SELECT requester_id, seconds, updated_at FROM usage WHERE lab_id = ?`, labID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]fabrication.Usage{}
	for rows.Next() {
		u := fabrication.Usage{LabID: labID}
		var at int64
		if err := rows.Scan(&u.RequesterID, &u.Seconds, &at); err != nil {
			return nil, err
		}
		u.UpdatedAt = fromNano(at)
		out[u.RequesterID] = u
	}
	return out, rows.Err()
}

// AddUsage decays the stored figure to `at` and adds to it, in one statement.
func (f Fabrication) AddUsage(ctx context.Context, labID, requesterID string, seconds float64, at time.Time) error {
	st := addUsageStep(labID, requesterID, seconds, at)
	_, err := f.db.exec(ctx, st.query, st.args...)
	return err
}

func addUsageStep(labID, requesterID string, seconds float64, at time.Time) writeStep {
	halfLife := float64(fabrication.UsageHalfLife)
	return writeStep{query: `
		INSERT INTO usage(lab_id, requester_id, seconds, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(lab_id, requester_id) DO UPDATE SET
			seconds = usage.seconds * pow(2, -max(0, excluded.updated_at - usage.updated_at) / ?) + excluded.seconds,
			updated_at = max(usage.updated_at, excluded.updated_at)`,
		args: []any{labID, requesterID, seconds, unixNano(at), halfLife}}
}

func (f Fabrication) DesignJobCounts(ctx context.Context) (map[string][2]int, error) {
	rows, err := f.db.query(ctx, `SELECT design_id, sum(state = 'done'), sum(state = 'failed') FROM jobs GROUP BY design_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][2]int{}
	for rows.Next() {
		var id string
		var done, failed int
		if err := rows.Scan(&id, &done, &failed); err != nil {
			return nil, err
		}
		out[id] = [2]int{done, failed}
	}
	return out, rows.Err()
}

func (f Fabrication) DesignLabCounts(ctx context.Context, designID string) (map[string][2]int, error) {
	rows, err := f.db.query(ctx, `SELECT lab_id, sum(state = 'done'), sum(state = 'failed') FROM jobs
		WHERE design_id = ? AND state IN ('done', 'failed') GROUP BY lab_id`, designID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][2]int{}
	for rows.Next() {
		var lab string
		var done, failed int
		if err := rows.Scan(&lab, &done, &failed); err != nil {
			return nil, err
		}
		out[lab] = [2]int{done, failed}
	}
	return out, rows.Err()
}
