package fabrication

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fabcommons/fabcommons/storage"
)

// Orders places orders and carries out what people do to their jobs: approve, reject,
// cancel, resolve, harvest.
type Orders struct {
	*jobBook
	roles
	store   ordersStore
	designs Designs
}

// ordersStore is what Orders reads and writes.
type ordersStore interface {
	jobsStore
	LabBySlug(ctx context.Context, slug string) (Lab, error)
	LabByID(ctx context.Context, id string) (Lab, error)
	Machines(ctx context.Context, labID string) ([]Machine, error)
	CreateOrder(ctx context.Context, o Order, jobs []Job) error
	Order(ctx context.Context, id string) (Order, error)
	JobsOfOrder(ctx context.Context, orderID string) ([]Job, error)
	DesignLabCounts(ctx context.Context, designID string) (map[string][2]int, error)
	DesignJobs(ctx context.Context, designID string, states []string, limit int) ([]Job, error)
}

// operatorAct applies an operator's (or the requester's) event to a job: who may act
// is checked against the job's lab first, then check (when not nil) looks at the
// request, then the transition.
func (or *Orders) operatorAct(ctx context.Context, actor Actor, id string, h Happening, allowRequester bool, check func() error) (Job, error) {
	j, err := or.store.Job(ctx, id)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: %w", id, err)
	}
	if !allowRequester || j.RequesterID != actor.ID {
		if err := or.operatorOf(ctx, actor, j); err != nil {
			if allowRequester {
				return Job{}, fmt.Errorf("only the requester or an operator cancels a job: %w", storage.ErrForbidden)
			}
			return Job{}, err
		}
	}
	if check != nil {
		if err := check(); err != nil {
			return Job{}, err
		}
	}
	h.Actor = actor.Handle
	j, _, err = or.change(ctx, id, func(j Job, now time.Time) (Job, Effects, error) {
		return Transition(j, h, Rules{MaxFailures: or.opts.MaxAttempts, LeaseTTL: or.opts.LeaseTTL}, now)
	})
	return j, err
}

// OrderRequest is what a person asks a lab to make.
type OrderRequest struct {
	Design   string   `json:"design"`
	Version  int      `json:"version"` // 0: the latest
	Lab      string   `json:"lab"`
	Material string   `json:"material"`
	Colour   string   `json:"colour"`
	Process  string   `json:"process"` // fdm by default
	Quantity int      `json:"quantity"`
	Files    []string `json:"files"`    // mesh paths; or
	BOMRefs  []string `json:"bom_refs"` // printed BOM lines (a kit); neither: the whole BOM's printed lines, or every mesh
	Priority int      `json:"priority"`
	Tags     []string `json:"tags"` // machine tags the jobs require
}

// prepared is an order request checked against its lab and design: what it would make.
type prepared struct {
	lab      Lab
	p        Printable
	parts    []orderPart
	copies   int
	operator bool
}

// prepare checks an order request: the lab takes it from the actor, its fields are
// good, and the design version has what it names.
func (or *Orders) prepare(ctx context.Context, actor Actor, req *OrderRequest) (prepared, error) {
	var pr prepared
	lab, err := labBySlug(ctx, or.store, req.Lab)
	if errors.Is(err, storage.ErrNotFound) {
		return pr, storage.Invalid("lab", fmt.Sprintf("no lab %q", req.Lab))
	}
	if err != nil {
		return pr, err
	}
	role, err := or.role(ctx, actor, lab.ID)
	if err != nil {
		return pr, err
	}
	if lab.Policy.Submit == "members" && role == "" {
		return pr, fmt.Errorf("lab %s takes jobs from its members only: %w", lab.Slug, storage.ErrForbidden)
	}
	operator := role == RoleOwner || role == RoleOperator
	if err := checkOrder(req, operator); err != nil {
		return pr, err
	}
	p, err := or.designs.Printable(ctx, req.Design, req.Version)
	if errors.Is(err, storage.ErrNotFound) {
		return pr, storage.Invalid("design", fmt.Sprintf("no design %q with version %d", req.Design, req.Version))
	}
	if err != nil {
		return pr, err
	}
	parts, copies, err := orderParts(p, *req, or.opts.MaxOrderJobs)
	if err != nil {
		return pr, err
	}
	return prepared{lab: lab, p: p, parts: parts, copies: copies, operator: operator}, nil
}

// holdMinutes is the machine time the lab would hold for one copy of a part.
func holdMinutes(f PrintableFile, p Policy) int64 {
	v := math.Abs(f.Volume)
	if v == 0 { // not a closed mesh: a fifth of its box, a guess at a part with infill
		v = f.BBox.X * f.BBox.Y * f.BBox.Z / 5
	}
	return HoldMinutes(v, p)
}

// Quote is what an order would cost in machine time, before it is placed.
type Quote struct {
	Lab       string `json:"lab"`
	Credits   string `json:"credits"` // the lab's policy: "off" costs nothing
	Jobs      int    `json:"jobs"`
	Minutes   int64  `json:"minutes"`   // the machine time it is likely to take (held when credits are required)
	Available int64  `json:"available"` // what the person may still spend: available above their floor
	Fits      bool   `json:"fits"`
}

// Quote says what an order would likely cost and what the person has, without placing it.
func (or *Orders) Quote(ctx context.Context, actor Actor, req OrderRequest) (Quote, error) {
	pr, err := or.prepare(ctx, actor, &req)
	if err != nil {
		return Quote{}, err
	}
	q := Quote{Lab: pr.lab.Slug, Credits: pr.lab.Policy.Credits, Jobs: pr.copies}
	for _, pt := range pr.parts {
		q.Minutes += holdMinutes(pt.file, pr.lab.Policy) * int64(pt.copies)
	}
	a, err := or.ledger.state(ctx, UserAccount(actor.Handle), 0)
	if err != nil {
		return Quote{}, err
	}
	q.Available = a.room()
	q.Fits = q.Credits != CreditsRequired || q.Minutes <= q.Available
	return q, nil
}

// PlaceOrder turns a request into an order and one job per physical copy. At a lab
// that requires credits, each job's likely machine time is held on the requester's
// account first, and an order that does not fit above their floor is refused.
func (or *Orders) PlaceOrder(ctx context.Context, actor Actor, req OrderRequest) (Order, []Job, error) {
	pr, err := or.prepare(ctx, actor, &req)
	if err != nil {
		return Order{}, nil, err
	}
	lab, p := pr.lab, pr.p
	if err := or.useQuota(ctx, actor, "jobs", pr.copies, or.opts.JobsPerDay, 24*time.Hour, "jobs a day"); err != nil {
		return Order{}, nil, err
	}
	now := or.clock()
	o := Order{ID: uuid.NewString(), RequesterID: actor.ID, Requester: actor.Handle, LabID: lab.ID, LabSlug: lab.Slug,
		DesignID: p.DesignID, DesignSlug: p.Slug, DesignTitle: p.Title, Version: p.Version, Material: req.Material,
		Colour: req.Colour, Process: req.Process, Quantity: req.Quantity, Priority: req.Priority,
		Files: nonNil(req.Files), BOMRefs: nonNil(req.BOMRefs), CreatedAt: now}
	state := JobQueued
	if lab.Policy.ApprovalRequired && !pr.operator {
		state = JobPendingApproval
	}
	jobs := orderJobs(o, p, req, pr.parts, state, actor, now)
	charged := lab.Policy.Credits == CreditsRequired
	if charged {
		minutes := map[string]int64{}
		for _, pt := range pr.parts {
			if minutes[pt.file.Path] = holdMinutes(pt.file, lab.Policy); minutes[pt.file.Path] > MaxHold {
				return Order{}, nil, storage.Invalid("files", fmt.Sprintf("%s would take over %d machine-minutes", pt.file.Path, MaxHold))
			}
		}
		lines := make([]HoldLine, len(jobs))
		for i := range jobs {
			jobs[i].HoldMinutes, jobs[i].Charged = minutes[jobs[i].File], true
			lines[i] = HoldLine{Job: jobs[i].ID, Minutes: jobs[i].HoldMinutes}
		}
		if err := or.ledger.Hold(ctx, UserAccount(actor.Handle), lines); err != nil {
			return Order{}, nil, err
		}
	}
	if err := or.store.CreateOrder(ctx, o, jobs); err != nil {
		if charged { // the jobs do not exist: let their holds go (else SettleEnded does)
			for _, j := range jobs {
				or.ledger.Close(ctx, Settlement{Job: j.ID, Requester: UserAccount(actor.Handle), Lab: LabAccount(lab.Slug)})
			}
		}
		return Order{}, nil, fmt.Errorf("place order: %w", err)
	}
	for _, j := range jobs {
		or.publishJob(j)
	}
	if state == JobQueued {
		or.feed.WorkAvailable(lab.ID, len(jobs))
	}
	or.log.Info("order placed", "order", o.ID, "lab", lab.Slug, "design", p.Slug, "jobs", len(jobs))
	return o, jobs, nil
}

// checkOrder checks an order's own fields and fills in their defaults.
func checkOrder(req *OrderRequest, operator bool) error {
	if req.Quantity == 0 {
		req.Quantity = 1
	}
	if req.Quantity < 1 || req.Quantity > 100 {
		return storage.Invalid("quantity", "want 1 to 100")
	}
	if req.Priority < -10 || req.Priority > 100 || (req.Priority > 0 && !operator) {
		return storage.Invalid("priority", "want -10 to 0 (operators may go up to 100)")
	}
	if req.Process == "" {
		req.Process = ProcessFDM
	}
	switch req.Process {
	case ProcessFDM, ProcessSLA, ProcessLaser, ProcessCNC:
	default:
		return storage.Invalid("process", "want fdm, sla, laser or cnc")
	}
	for f, v := range map[string]string{"material": req.Material, "colour": req.Colour} {
		if err := checkText(f, v, 40, false); err != nil {
			return err
		}
	}
	// Every list has a bound: each job carries the tags, so an unbounded list would be
	// multiplied by the jobs an order makes.
	for _, l := range []struct {
		field string
		list  []string
		max   int
	}{{"tags", req.Tags, maxMachineTags}, {"files", req.Files, 200}, {"bom_refs", req.BOMRefs, 500}} {
		if len(l.list) > l.max {
			return storage.Invalid(l.field, fmt.Sprintf("at most %d", l.max))
		}
		for _, v := range l.list {
			if err := checkText(l.field, v, 255, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// orderPart is one file of an order and how many copies of it to make.
type orderPart struct {
	file     PrintableFile
	copies   int
	material string
}

// orderParts says what an order makes: the files it names, the BOM lines it names,
// the whole BOM (a kit), or every mesh; at most maxJobs copies in all,
// and how many copies that is.
func orderParts(p Printable, req OrderRequest, maxJobs int) (parts []orderPart, copies int, err error) {
	meshes := map[string]PrintableFile{}
	for _, f := range p.Files {
		meshes[f.Path] = f
	}
	switch {
	case len(req.Files) > 0 && len(req.BOMRefs) > 0:
		return nil, 0, storage.Invalid("files", "name files or bom_refs, not both")
	case len(req.Files) > 0:
		for _, path := range req.Files {
			f, ok := meshes[path]
			if !ok {
				return nil, 0, storage.Invalid("files", fmt.Sprintf("version %d has no mesh %q", p.Version, path))
			}
			parts = append(parts, orderPart{file: f, copies: req.Quantity})
		}
	case len(req.BOMRefs) > 0 || len(p.BOM) > 0:
		refs := req.BOMRefs
		if len(refs) == 0 {
			for _, l := range p.BOM {
				refs = append(refs, l.Ref)
			}
		}
		for _, ref := range refs {
			i := slices.IndexFunc(p.BOM, func(l PrintableLine) bool { return l.Ref == ref })
			if i < 0 {
				return nil, 0, storage.Invalid("bom_refs", fmt.Sprintf("version %d's BOM has no printed line %q", p.Version, ref))
			}
			l := p.BOM[i]
			parts = append(parts, orderPart{file: meshes[l.File], copies: l.Qty * req.Quantity, material: l.Material})
		}
	default:
		for _, f := range p.Files {
			parts = append(parts, orderPart{file: f, copies: req.Quantity})
		}
	}
	if len(parts) == 0 {
		return nil, 0, storage.Invalid("design", "this version has no meshes to make")
	}
	for _, pt := range parts {
		copies += pt.copies
	}
	if copies > maxJobs {
		return nil, 0, storage.Invalid("quantity", fmt.Sprintf("this order would make %d jobs; at most %d", copies, maxJobs))
	}
	return parts, copies, nil
}

// orderJobs makes the order's jobs: one per physical copy of each part.
func orderJobs(o Order, p Printable, req OrderRequest, parts []orderPart, state string, actor Actor, now time.Time) []Job {
	tags := nonNil(req.Tags)
	var jobs []Job
	for _, pt := range parts {
		material := cmp.Or(req.Material, pt.material)
		for c := 1; c <= pt.copies; c++ {
			j := Job{ID: uuid.NewString(), OrderID: o.ID, LabID: o.LabID, RequesterID: actor.ID, Requester: actor.Handle,
				DesignID: p.DesignID, DesignSlug: p.Slug, Version: p.Version, File: pt.file.Path, SHA256: pt.file.SHA256,
				Size: pt.file.Size, BBox: pt.file.BBox, Process: req.Process, Material: material, Colour: req.Colour, Tags: tags,
				Priority: req.Priority, Copy: c, State: state, EnqueuedAt: now, CreatedAt: now, UpdatedAt: now, Events: []Event{}}
			logEvent(&j, Event{Kind: state, To: state, Actor: actor.Handle, Message: fmt.Sprintf("ordered: %s v%d, %s, copy %d", p.Slug, p.Version, pt.file.Path, c)}, now)
			jobs = append(jobs, j)
		}
	}
	return jobs
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// JobView is a job with the reason it is stuck, if it is.
type JobView struct {
	Job
	Blocked string `json:"blocked,omitempty"`
}

// OrderView is an order with its jobs.
type OrderView struct {
	Order Order     `json:"order"`
	Jobs  []JobView `json:"jobs"`
}

// Order shows an order and its jobs to anyone.
func (or *Orders) Order(ctx context.Context, id string) (OrderView, error) {
	o, err := or.store.Order(ctx, id)
	if err != nil {
		return OrderView{}, fmt.Errorf("order %s: %w", id, err)
	}
	jobs, err := or.store.JobsOfOrder(ctx, id)
	if err != nil {
		return OrderView{}, err
	}
	views, err := or.explain(ctx, o.LabID, jobs)
	return OrderView{Order: o, Jobs: views}, err
}

// Job shows one job to anyone.
func (or *Orders) Job(ctx context.Context, id string) (JobView, error) {
	j, err := or.store.Job(ctx, id)
	if err != nil {
		return JobView{}, fmt.Errorf("job %s: %w", id, err)
	}
	views, err := or.explain(ctx, j.LabID, []Job{j})
	if err != nil {
		return JobView{}, err
	}
	return views[0], nil
}

func (or *Orders) explain(ctx context.Context, labID string, jobs []Job) ([]JobView, error) {
	lab, err := or.store.LabByID(ctx, labID)
	if err != nil {
		return nil, err
	}
	machines, err := or.store.Machines(ctx, labID)
	if err != nil {
		return nil, err
	}
	views := make([]JobView, len(jobs))
	for i, j := range jobs {
		views[i] = JobView{Job: j}
		if j.State == JobQueued || j.State == JobPendingApproval {
			views[i].Blocked = WhyUnfit(j, lab, usable(machines))
		}
	}
	return views, nil
}

// operatorOf checks that actor runs the job's lab.
func (or *Orders) operatorOf(ctx context.Context, actor Actor, j Job) error {
	lab, err := or.store.LabByID(ctx, j.LabID)
	if err != nil {
		return err
	}
	return or.requireRole(ctx, actor, lab, RoleOwner, RoleOperator)
}

// Approve lets a pending job into the queue.
func (or *Orders) Approve(ctx context.Context, actor Actor, id string) (Job, error) {
	return or.operatorAct(ctx, actor, id, Happening{Kind: OnApprove}, false, nil)
}

// Reject turns a pending or queued job down, with a reason.
func (or *Orders) Reject(ctx context.Context, actor Actor, id, reason string) (Job, error) {
	return or.operatorAct(ctx, actor, id, Happening{Kind: OnReject, Message: reason}, false, func() error {
		if strings.TrimSpace(reason) == "" {
			return storage.Invalid("reason", "say why, so the requester can do something about it")
		}
		return checkText("reason", reason, 500, true)
	})
}

// Cancel stops a job; its requester or a lab operator may. A job on a machine stays
// on it until its agent hears cancel: true and lets go.
func (or *Orders) Cancel(ctx context.Context, actor Actor, id string) (Job, error) {
	return or.operatorAct(ctx, actor, id, Happening{Kind: OnCancel}, true, nil)
}

// RejectDesign turns down every job of a design that has not reached a machine (a site
// admin hid the design: it is not to be made). It returns how many it rejected.
func (or *Orders) RejectDesign(ctx context.Context, actor Actor, designID, reason string) (int, error) {
	if !actor.Admin {
		return 0, fmt.Errorf("only site admins act on every job of a design: %w", storage.ErrForbidden)
	}
	n := 0
	for {
		jobs, err := or.store.DesignJobs(ctx, designID, []string{JobPendingApproval, JobQueued}, 100)
		if err != nil || len(jobs) == 0 {
			return n, err
		}
		for _, j := range jobs {
			_, _, err := or.change(ctx, j.ID, func(j Job, now time.Time) (Job, Effects, error) {
				return Transition(j, Happening{Kind: OnReject, Actor: actor.Handle, Message: reason}, or.rules(Lab{}), now)
			})
			var illegal *IllegalError
			if errors.As(err, &illegal) {
				continue // claimed meanwhile: its file is refused at download
			}
			if err != nil {
				return n, err
			}
			n++
		}
	}
}

// Resolutions an operator can give a job in the unknown state (or any stuck one).
const (
	ResolveRequeue = "requeue"
	ResolveDone    = "done"
	ResolveFailed  = "failed"
)

// Resolve settles a job whose outcome the hub does not know: the operator has looked
// at the machine and says what happened.
func (or *Orders) Resolve(ctx context.Context, actor Actor, id, outcome string) (Job, error) {
	return or.operatorAct(ctx, actor, id, Happening{Kind: OnResolve, Outcome: outcome}, false, nil)
}

// Harvest confirms that a finished part was taken off the bed; the machine is free.
func (or *Orders) Harvest(ctx context.Context, actor Actor, id string) (Job, error) {
	return or.operatorAct(ctx, actor, id, Happening{Kind: OnHarvest}, false, nil)
}

// LabRecord is how often a design was made at one lab, and how it went.
type LabRecord struct {
	Lab     Lab   `json:"lab"`
	Done    int   `json:"done"`
	Failed  int   `json:"failed"`
	Minutes int64 `json:"minutes"` // machine-minutes its makes took, by the hub's record (as settled)
}

// DesignRecord is a design's fabrication record: the labs that made it, most makes
// first. Everyone may see it.
func (or *Orders) DesignRecord(ctx context.Context, designID string) ([]LabRecord, error) {
	counts, err := or.store.DesignLabCounts(ctx, designID)
	if err != nil {
		return nil, err
	}
	// Machine-minutes of the first 5,000 makes: a longer record is summed in part.
	done, err := or.store.DesignJobs(ctx, designID, []string{JobDone, JobAwaitingHarvest}, 5000)
	if err != nil {
		return nil, err
	}
	minutes := map[string]int64{}
	for _, j := range done {
		minutes[j.LabID] += minutesOf(j.madeTime())
	}
	out := []LabRecord{}
	for labID, c := range counts {
		lab, err := or.store.LabByID(ctx, labID)
		if err != nil {
			return nil, err
		}
		out = append(out, LabRecord{Lab: lab, Done: c[0], Failed: c[1], Minutes: minutes[labID]})
	}
	slices.SortFunc(out, func(a, b LabRecord) int {
		if a.Done != b.Done {
			return b.Done - a.Done
		}
		return strings.Compare(a.Lab.Slug, b.Lab.Slug)
	})
	return out, nil
}
