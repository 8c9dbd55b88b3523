package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/fabcommons/fabcommons/catalog/license"
	"github.com/fabcommons/fabcommons/storage"
)

func (s *Service) resolveParents(ctx context.Context, specs []ParentSpec) ([]ParentRef, error) {
	if len(specs) > 20 {
		return nil, storage.Invalid("parents", "at most 20 parents")
	}
	refs := []ParentRef{}
	seen := map[string]bool{}
	for _, spec := range specs {
		d, err := s.store.DesignBySlug(ctx, spec.Slug)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, storage.Invalid("parents", fmt.Sprintf("no design %q", spec.Slug))
		}
		if err != nil {
			return nil, err
		}
		if d.Hidden {
			return nil, fmt.Errorf("design %q is hidden and cannot be forked: %w", spec.Slug, storage.ErrForbidden)
		}
		n := spec.Version
		if n == 0 {
			n = d.LatestVersion
		}
		v, err := s.store.Version(ctx, d.ID, n)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, storage.Invalid("parents", fmt.Sprintf("design %q has no version %d", spec.Slug, n))
		}
		if err != nil {
			return nil, err
		}
		if seen[d.ID] {
			return nil, storage.Invalid("parents", fmt.Sprintf("%q is named twice", spec.Slug))
		}
		seen[d.ID] = true
		ref := ParentRef{DesignID: d.ID, Slug: d.Slug, Version: n, Title: d.Title, Owner: d.Owner, Licensor: d.Licensor, License: v.License}
		if d.Remote() {
			ref.URL = d.Origin.Object // a design of another hub: named there by its object's id
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

// checkForkLicense maps the license rules to errors: a parent that forbids derivatives
// is storage.ErrForbidden (403); a license outside what the parents allow, or parents that
// allow nothing in common, is an InvalidError (422) that lists what is allowed.
func (s *Service) checkForkLicense(parents []ParentRef, child string) error {
	ids := make([]string, len(parents))
	for i, p := range parents {
		ids[i] = p.License
	}
	err := license.CheckFork(ids, child)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, license.ErrNoDerivatives):
		return storage.Forbidden(err)
	default:
		return storage.Invalid("license", err.Error())
	}
}

// ForkOptions says which licenses a fork of slug may take, or why it may not be forked.
func (s *Service) ForkOptions(ctx context.Context, slug string) ([]license.Option, error) {
	d, err := s.store.DesignBySlug(ctx, slug)
	if err != nil {
		return nil, fmt.Errorf("design %s: %w", slug, err)
	}
	if d.Hidden {
		return nil, fmt.Errorf("design %q is hidden and cannot be forked: %w", slug, storage.ErrForbidden)
	}
	options, err := license.ForkOptions([]string{d.License})
	if errors.Is(err, license.ErrNoDerivatives) {
		return nil, storage.Forbidden(err)
	}
	return options, err
}

// ForkRequest is what a person asks for when forking.
type ForkRequest struct {
	License string `json:"license"`
	Title   string `json:"title"`
	Slug    string `json:"slug"`
	Version int    `json:"version"` // 0: the latest
}

// Fork makes a new design owned by actor from a version of slug. It stores no new
// blobs: the fork's first version points at its parent's files.
func (s *Service) Fork(ctx context.Context, actor Actor, slug string, fr ForkRequest) (Design, error) {
	if _, err := s.store.DesignBySlug(ctx, slug); err != nil {
		return Design{}, fmt.Errorf("design %s: %w", slug, err) // 404 here, where a remix's unknown parent is a 422
	}
	parents, err := s.resolveParents(ctx, []ParentSpec{{Slug: slug, Version: fr.Version}})
	if err != nil {
		return Design{}, err
	}
	if fr.License == "" {
		return Design{}, storage.Invalid("license", "choose the fork's license (GET fork-options lists the allowed ones)")
	}
	if err := s.checkForkLicense(parents, fr.License); err != nil {
		return Design{}, err
	}
	parent, err := s.store.DesignByID(ctx, parents[0].DesignID)
	if err != nil {
		return Design{}, err
	}
	pv, err := s.store.Version(ctx, parent.ID, parents[0].Version)
	if err != nil {
		return Design{}, err
	}
	title := fr.Title
	if title == "" {
		title = parent.Title + " (fork)"
	}
	if err := checkText("title", title, 200, true); err != nil {
		return Design{}, err
	}
	if err := s.useDesignQuota(ctx, actor, 1); err != nil {
		return Design{}, err
	}
	undo := func() { s.useDesignQuota(ctx, actor, -1) } // not forked after all
	where, files := parent.Slug, pv.Files
	if parent.Remote() {
		// A fork is this hub's own design: its files are fetched from the parent's hub and
		// checked now, so that it stands when its parent's hub is gone; they are this
		// hub's own blobs from then on. Bringing them here counts as an upload of theirs.
		var size int64
		for _, f := range pv.Files {
			size += f.Size
		}
		if err := s.useUploadBytes(ctx, actor, size); err != nil {
			undo()
			return Design{}, err
		}
		undo = func() {
			s.useDesignQuota(ctx, actor, -1)
			s.useUploadBytes(ctx, actor, -size)
		}
		if err := s.EnsureFiles(ctx, pv, nil, s.fetch); err != nil {
			undo()
			return Design{}, err
		}
		where, files = parent.Origin.URL, slices.Clone(pv.Files)
		for i := range files {
			files[i].Origin, files[i].Fetched = "", false
		}
	}
	now := s.now().UTC()
	d := Design{
		ID: uuid.NewString(), OwnerID: actor.ID, Owner: actor.Handle, Title: title, Summary: parent.Summary,
		Tags: parent.Tags, License: fr.License, Parents: parents, LatestVersion: 1, CreatedAt: now, UpdatedAt: now,
	}
	v := Version{
		DesignID: d.ID, Number: 1, License: fr.License, Files: files, BOM: pv.BOM, CreatedBy: actor.Handle, CreatedAt: now,
		Message: fmt.Sprintf("Forked from %s v%d by %s (%s)", where, pv.Number, parent.Owner, pv.License),
	}
	if err := s.insertWithSlug(ctx, &d, v, fr.Slug); err != nil {
		undo()
		return Design{}, err
	}
	s.log.Info("design forked", "design", d.Slug, "parent", parent.Slug, "owner", actor.Handle)
	return d, nil
}
