package fabrication

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

// Photo is a picture of a make: the snapshot an agent took from the printer's camera
// when the print finished, or one a person took at harvest. Its blob is the hub's
// re-encoded copy (catalog/picture), keyed by its SHA-256, so what is served is never
// what was uploaded.
type Photo struct {
	Key         string    `json:"key"` // the blob: SHA-256 of the re-encoded image
	Size        int64     `json:"size"`
	ContentType string    `json:"content_type"` // image/png or image/jpeg
	Width       int       `json:"width"`
	Height      int       `json:"height"`
	Source      string    `json:"source"` // PhotoCamera or PhotoOperator
	By          string    `json:"by"`     // "machine:<name>" or a handle
	At          time.Time `json:"at"`
}

// Sources of photos.
const (
	PhotoCamera   = "camera"
	PhotoOperator = "operator"
)

// MaxPhotos bounds the photos one job keeps.
const MaxPhotos = 6

// PutPhoto is the rule for adding p to a job's photos, pure so both callers and the
// table test share it. The camera has one photo per job: a new snapshot (an agent's
// retry, or a second attempt at the job) replaces the camera's earlier one. A person's
// photo is added, or, with replace, takes the place of every photo the job had. The
// same blob is never listed twice. A job already holding MaxPhotos takes no more: it
// is storage.ErrConflict (replace them instead).
func PutPhoto(photos []Photo, p Photo, replace bool) ([]Photo, error) {
	if replace {
		return []Photo{p}, nil
	}
	out := slices.DeleteFunc(slices.Clone(photos), func(q Photo) bool {
		return q.Key == p.Key || (p.Source == PhotoCamera && q.Source == PhotoCamera)
	})
	if len(out) >= MaxPhotos {
		return photos, fmt.Errorf("a job keeps at most %d photos; replace them instead: %w", MaxPhotos, storage.ErrConflict)
	}
	return append(out, p), nil
}

// checkPhoto refuses metadata the web layer should never send: the blob must be a
// re-encoded image.
func checkPhoto(p Photo) error {
	if !storage.ValidKey(p.Key) || p.Size <= 0 || (p.ContentType != "image/png" && p.ContentType != "image/jpeg") {
		return storage.Invalid("photo", "not a stored, re-encoded image")
	}
	return nil
}

// CheckSnapshot says, before the image is read and stored, whether AttachSnapshot
// would take a photo of job id from machine m with lease: nil, or its refusal.
func (s *Scheduler) CheckSnapshot(ctx context.Context, m Machine, id, lease string) error {
	j, err := s.store.Job(ctx, id)
	if err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	return snapshotAllowed(s, m, j, lease)
}

func snapshotAllowed(s *Scheduler, m Machine, j Job, lease string) error {
	if err := s.checkLease(m, j, lease); err != nil {
		return err
	}
	if j.State != JobPrinting {
		return fmt.Errorf("job %s is %s, not printing: %w", j.ID, j.State, ErrStaleLease)
	}
	return nil
}

// AttachSnapshot records the photo the agent of machine m took of a job it holds
// with lease, as the job's camera photo, before it reports the print finished. It
// ends one of three ways: the job with the photo; ErrStaleLease (not this machine's
// job, or no longer printing: the agent forgets the photo); storage.ErrForbidden (a
// job of another lab).
func (s *Scheduler) AttachSnapshot(ctx context.Context, m Machine, id, lease string, p Photo) (Job, error) {
	if err := checkPhoto(p); err != nil {
		return Job{}, err
	}
	p.Source, p.By = PhotoCamera, s.agentActor(m)
	j, _, err := s.change(ctx, id, func(j Job, now time.Time) (Job, Effects, error) {
		if err := snapshotAllowed(s, m, j, lease); err != nil {
			return j, Effects{}, err
		}
		p.At = now
		photos, err := PutPhoto(j.Photos, p, false)
		if err != nil {
			return j, Effects{}, err
		}
		j.Photos = photos
		logEvent(&j, Event{Kind: "note", Actor: p.By, Message: "photo from the printer's camera"}, now)
		return j, Effects{}, nil
	})
	return j, err
}

// photoStates are the states of a job whose print has ended and may be photographed.
var photoStates = []string{JobAwaitingHarvest, JobDone, JobFailed, JobUnknown}

// CheckPhoto says, before the image is read and stored, whether AddPhoto would take a
// photo of job id from actor: nil, or its refusal.
func (or *Orders) CheckPhoto(ctx context.Context, actor Actor, id string) error {
	j, err := or.store.Job(ctx, id)
	if err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	if err := or.operatorOf(ctx, actor, j); err != nil {
		return err
	}
	return photoState(j)
}

func photoState(j Job) error {
	if !slices.Contains(photoStates, j.State) {
		return fmt.Errorf("job %s is %s: photos are of prints that have ended (%s): %w", j.ID, j.State, strings.Join(photoStates, ", "), storage.ErrConflict)
	}
	return nil
}

// AddPhoto puts a person's photo of the make on a job: an owner or operator of the
// job's lab may, once the print has ended (at harvest, or after). With replace, the
// photo takes the place of every earlier one, the camera's included.
func (or *Orders) AddPhoto(ctx context.Context, actor Actor, id string, p Photo, replace bool) (Job, error) {
	if err := checkPhoto(p); err != nil {
		return Job{}, err
	}
	cur, err := or.store.Job(ctx, id)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: %w", id, err)
	}
	if err := or.operatorOf(ctx, actor, cur); err != nil {
		return Job{}, err
	}
	p.Source, p.By = PhotoOperator, actor.Handle
	j, _, err := or.change(ctx, id, func(j Job, now time.Time) (Job, Effects, error) {
		if err := photoState(j); err != nil {
			return j, Effects{}, err
		}
		p.At = now
		photos, err := PutPhoto(j.Photos, p, replace)
		if err != nil {
			return j, Effects{}, err
		}
		j.Photos = photos
		msg := "added a photo"
		if replace {
			msg = "replaced the photos"
		}
		logEvent(&j, Event{Kind: "note", Actor: p.By, Message: msg}, now)
		return j, Effects{}, nil
	})
	return j, err
}

// Photo finds photo key of job id for serving: anyone who may see the job may see its
// photos, but not those of a design the maintainers hid (storage.ErrNotFound, as for
// a photo the job does not have), which only site admins see, as they see the design.
func (or *Orders) Photo(ctx context.Context, actor Actor, id, key string) (Photo, error) {
	j, err := or.store.Job(ctx, id)
	if err != nil {
		return Photo{}, fmt.Errorf("job %s: %w", id, err)
	}
	i := slices.IndexFunc(j.Photos, func(p Photo) bool { return p.Key == key })
	if i < 0 {
		return Photo{}, fmt.Errorf("job %s has no photo %s: %w", id, key, storage.ErrNotFound)
	}
	if hidden, err := or.designs.Hidden(ctx, j.DesignID); err != nil {
		return Photo{}, err
	} else if hidden && !actor.Admin {
		return Photo{}, fmt.Errorf("the design of job %s was hidden by the maintainers: %w", id, storage.ErrNotFound)
	}
	return j.Photos[i], nil
}

// MadePhoto is a photo in a design's fabrication record: where, on what and when the
// make it shows was made.
type MadePhoto struct {
	Photo
	JobID   string    `json:"job_id"`
	Lab     string    `json:"lab"` // the lab's name
	LabSlug string    `json:"lab_slug"`
	Machine string    `json:"machine"`
	Made    time.Time `json:"made"`
}

// DesignPhotos is the gallery of a design's fabrication record: photos of its makes
// (done, or waiting to be taken off the bed), newest first, at most limit. It looks
// at the design's first 2,000 such jobs.
func (or *Orders) DesignPhotos(ctx context.Context, designID string, limit int) ([]MadePhoto, error) {
	jobs, err := or.store.DesignJobs(ctx, designID, []string{JobDone, JobAwaitingHarvest}, 2000)
	if err != nil {
		return nil, err
	}
	labs, machines := map[string]Lab{}, map[string]string{}
	out := []MadePhoto{}
	for _, j := range jobs {
		if len(j.Photos) == 0 {
			continue
		}
		lab, ok := labs[j.LabID]
		if !ok {
			if lab, err = or.store.LabByID(ctx, j.LabID); err != nil {
				return nil, err
			}
			labs[j.LabID] = lab
			ms, err := or.store.Machines(ctx, j.LabID)
			if err != nil {
				return nil, err
			}
			for _, m := range ms {
				machines[m.ID] = m.Name
			}
		}
		made := j.UpdatedAt
		if j.FinishedAt != nil {
			made = *j.FinishedAt
		}
		for _, p := range j.Photos {
			out = append(out, MadePhoto{Photo: p, JobID: j.ID, Lab: lab.Name, LabSlug: lab.Slug, Machine: machines[j.MachineID], Made: made})
		}
	}
	slices.SortStableFunc(out, func(a, b MadePhoto) int { return b.Made.Compare(a.Made) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
