package federation

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/storage"
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

// TypeMake is the type of a make's object: fabcommons' own (in the fab: vocabulary of
// the design object's context), which other servers ignore.
const TypeMake = "fab:Make"

// The bounds of a make's text. How many makes the hub keeps from one remote host is
// Options.MakesPerHost: more are ignored (logged), so that one hub cannot fill
// another's database.
const (
	maxMakeText = 300
	maxMakeURL  = 2000
)

// pathJobPage is where a job's page is, as web serves it: a make's id.
const pathJobPage = "/jobs/"

// MadeDesigns finds the designs that makes at other hubs name.
type MadeDesigns interface {
	// LocalDesign is a visible design published on this hub, by its slug;
	// storage.ErrNotFound for no such design, a hidden one or a remote one.
	LocalDesign(ctx context.Context, slug string) (catalog.Design, error)
}

// Made is a job of a remote design that a lab of this hub made: what SendMake tells
// the design's origin.
type Made struct {
	JobID   string
	Lab     string         // the lab's slug
	Design  catalog.Origin // the remote design's origin: its hub and object
	Version int
	File    string
	EndedAt time.Time
}

// SendMake tells the origin of a remote design that a lab of this hub made it: a
// Create of a fab:Make, from the lab's actor (signed with its key), to the inbox of
// the origin hub's instance actor (its shared inbox when it has one), found by
// WebFinger when it is sent. The Create goes by the background delivery, which
// retries an origin that cannot be reached. It is an error when the lab is not an
// actor here, or the make could not be queued: nothing is sent then.
func (s *Service) SendMake(ctx context.Context, m Made) error {
	lab, err := s.dir.Lab(ctx, m.Lab)
	if err != nil {
		return fmt.Errorf("the lab %s: %w", m.Lab, err)
	}
	u, err := url.Parse(m.Design.Object)
	if err != nil || !isHTTPURL(m.Design.Object) {
		return storage.Invalid("design", fmt.Sprintf("the remote design's object %q is not an http(s) URL", m.Design.Object))
	}
	hub := u.Scheme + "://" + u.Host
	if err := s.enqueueToHub(ctx, lab, hub, s.makeActivity(lab, hub+PathInstance, m)); err != nil {
		return err
	}
	s.log.Info("federation: a make is sent to its design's hub", "job", m.JobID, "design", m.Design.Object, "hub", hub)
	return nil
}

// makeActivity is the Create of the fab:Make of m, from lab, addressed to the origin
// hub's actor and the public.
func (s *Service) makeActivity(lab Local, to string, m Made) map[string]any {
	job, actor := s.base+pathJobPage+url.PathEscape(m.JobID), s.ActorURL(lab)
	return map[string]any{"@context": designContext, "id": job + "#made", "type": "Create", "actor": actor,
		"published": s.opts.Clock().UTC().Format(time.RFC3339), "to": []string{to}, "cc": []string{publicAddress},
		"object": map[string]any{"id": job, "type": TypeMake, "url": job, "attributedTo": actor, "target": m.Design.Object,
			"fab:version": m.Version, "fab:file": m.File, "endTime": m.EndedAt.UTC().Format(time.RFC3339)}}
}

// onMake keeps a make of one of this hub's designs at another hub's lab. The make (the
// job's id) must be on the signer's host and attributed to the signer (a lab tells of
// its own makes), else storage.ErrForbidden; its target must be a design of this hub
// (else storage.ErrForbidden) that is here and visible (else it is ignored), of a
// version it has (else storage.ErrInvalid). A make heard before is ignored, as are
// makes over Options.MakesPerHost from one host.
func (s *Service) onMake(ctx context.Context, a Activity, signer RemoteActor, body []byte) error {
	if a.Type != "Create" {
		return nil // a make is told once; it is not updated or taken back
	}
	var m struct {
		Object struct {
			ID           any         `json:"id"`
			AttributedTo any         `json:"attributedTo"`
			Target       any         `json:"target"`
			Version      json.Number `json:"fab:version"`
			File         string      `json:"fab:file"`
			EndTime      string      `json:"endTime"`
		} `json:"object"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return storage.Invalid("object", "a make's object is not of its shape")
	}
	o := m.Object
	id, lab, target := idOf(o.ID), idOf(o.AttributedTo), idOf(o.Target)
	host := hostOf(signer.ID)
	if hostOf(id) != host || lab != signer.ID {
		return fmt.Errorf("%w: %s may tell only of its own makes, on its own host", storage.ErrForbidden, signer.ID)
	}
	if len(id) > maxMakeURL {
		return storage.Invalid("id", fmt.Sprintf("a make's id is at most %d characters", maxMakeURL))
	}
	slug, ok := strings.CutPrefix(target, s.base+pathDesignPage)
	if !ok || slug == "" || strings.ContainsAny(slug, "/?#") {
		return fmt.Errorf("%w: %s is not a design of this hub", storage.ErrForbidden, target)
	}
	d, err := s.designs.LocalDesign(ctx, slug)
	if errors.Is(err, storage.ErrNotFound) {
		s.log.Info("federation: a make of a design not here (or hidden) is ignored", "make", id, "design", target)
		return nil
	}
	if err != nil {
		return err
	}
	version, err := o.Version.Int64()
	if err != nil || version < 1 || version > int64(d.LatestVersion) {
		return storage.Invalid("fab:version", fmt.Sprintf("want a version of %s, 1 to %d", d.Slug, d.LatestVersion))
	}
	if err := checkMakeText("fab:file", o.File); err != nil {
		return err
	}
	now := s.opts.Clock().UTC().Truncate(time.Millisecond)
	ended, err := time.Parse(time.RFC3339, o.EndTime)
	if err != nil || ended.After(now) {
		ended = now
	}
	name := cmp.Or(signer.Name, signer.PreferredUsername, handleOf(signer.ID))
	if utf8.RuneCountInString(name) > maxMakeText || !utf8.ValidString(name) {
		name = handleOf(signer.ID)
	}
	n, err := s.store.CountRemoteMakes(ctx, host)
	if err != nil {
		return err
	}
	if n >= s.opts.MakesPerHost {
		s.log.Warn("federation: a make is ignored: its host has told of too many", "make", id, "host", host, "makes", n)
		return nil
	}
	err = s.store.AddRemoteMake(ctx, RemoteMake{ID: id, DesignID: d.ID, Version: int(version), Host: host, Lab: lab, LabName: name,
		File: o.File, EndedAt: ended.UTC().Truncate(time.Millisecond), CreatedAt: now})
	if errors.Is(err, storage.ErrConflict) {
		return nil // heard before: a delivery retried
	}
	if err == nil {
		s.log.Info("federation: a design of this hub was made elsewhere", "design", d.Slug, "make", id, "lab", lab)
	}
	return err
}

func checkMakeText(field, v string) error {
	if utf8.RuneCountInString(v) > maxMakeText || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
		return storage.Invalid(field, fmt.Sprintf("at most %d characters of text", maxMakeText))
	}
	return nil
}

// RemoteMakes are a design's makes at other hubs' labs, the latest first, at most limit.
func (s *Service) RemoteMakes(ctx context.Context, designID string, limit int) ([]RemoteMake, error) {
	return s.store.RemoteMakes(ctx, designID, limit)
}
