package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/fabcommons/fabcommons/catalog/license"
	"github.com/fabcommons/fabcommons/storage"
)

// VersionAuthor returns the design if actor may add versions to it (its owner only),
// so a caller can ask before reading an upload.
func (s *Service) VersionAuthor(ctx context.Context, actor Actor, slug string) (Design, error) {
	d, err := s.store.DesignBySlug(ctx, slug)
	if err != nil {
		return Design{}, fmt.Errorf("design %s: %w", slug, err)
	}
	if d.OwnerID != actor.ID {
		return Design{}, fmt.Errorf("only the owner of %s adds versions (fork it to make your own): %w", slug, storage.ErrForbidden)
	}
	return d, nil
}

// NewVersion is what an owner sends with a new version: a message, the files that
// changed (an uploaded path replaces the old one), paths to drop, and optionally a new
// license or BOM (without one, the BOM carries over).
type NewVersion struct {
	Message string   `json:"message"`
	Remove  []string `json:"remove"`
	License string   `json:"license"`
}

// Check says whether a new version's description can be added, as far as it can tell
// without the store: a message of 1 to 2000 characters, a license from the registry
// if one is named, and at most 10000 clean paths to remove. An error is an
// *storage.InvalidError naming the field. Whether the license is allowed, and the
// files to remove exist, is AddVersion's to check.
func (nv NewVersion) Check() error {
	if err := checkText("message", nv.Message, 2000, true); err != nil {
		return err
	}
	if nv.License != "" {
		if _, err := license.Lookup(nv.License); err != nil {
			return storage.Invalid("license", err.Error())
		}
	}
	if len(nv.Remove) > 10000 {
		return storage.Invalid("remove", "at most 10000 files")
	}
	for _, raw := range nv.Remove {
		if _, err := CleanPath(raw); err != nil {
			return err
		}
	}
	return nil
}

// AddVersion adds the next version of the design slug. Only its owner may.
func (s *Service) AddVersion(ctx context.Context, actor Actor, slug string, nv NewVersion, files FileSource, bomSource BOMSource) (Version, error) {
	d, err := s.VersionAuthor(ctx, actor, slug)
	if err != nil {
		return Version{}, err
	}
	if err := nv.Check(); err != nil {
		return Version{}, err
	}
	prev, err := s.store.Version(ctx, d.ID, d.LatestVersion)
	if err != nil {
		return Version{}, fmt.Errorf("design %s version %d: %w", slug, d.LatestVersion, err)
	}
	lic := prev.License
	if nv.License != "" && nv.License != prev.License {
		if len(d.Parents) > 0 {
			if err := s.checkForkLicense(d.Parents, nv.License); err != nil {
				return Version{}, err
			}
		}
		lic = nv.License
	}
	base := prev.Files
	for _, raw := range nv.Remove {
		p, err := CleanPath(raw)
		if err != nil {
			return Version{}, err
		}
		if _, ok := prev.File(p); !ok {
			return Version{}, storage.Invalid("remove", fmt.Sprintf("version %d has no file %q", prev.Number, p))
		}
		base = removeFile(base, p)
	}
	stored, err := s.storeFiles(ctx, base, files)
	if err != nil {
		return Version{}, err
	}
	if err := s.useUploadQuota(ctx, actor, base, stored); err != nil {
		return Version{}, err
	}
	if len(stored) == 0 {
		return Version{}, storage.Invalid("files", "a version needs at least one file")
	}
	now := s.now().UTC()
	v := Version{DesignID: d.ID, Number: d.LatestVersion + 1, Message: nv.Message, License: lic, Files: stored, BOM: prev.BOM, CreatedBy: actor.Handle, CreatedAt: now}
	if bom := bomSource(); len(bom) > 0 {
		if v.BOM, err = ParseBOM(bom, v.MeshFiles()); err != nil {
			return Version{}, err
		}
	} else if err := ValidateBOM(v.BOM, v.MeshFiles()); err != nil {
		return Version{}, storage.Invalid("bom", "the BOM carried over from the last version no longer fits: "+err.Error())
	}
	d.LatestVersion, d.License, d.UpdatedAt = v.Number, lic, now
	if err := s.store.AddVersion(ctx, v, d); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return Version{}, fmt.Errorf("another version of %s was added at the same time; try again: %w", slug, err)
		}
		return Version{}, fmt.Errorf("add version to %s: %w", slug, err)
	}
	return v, nil
}

func removeFile(files []File, p string) []File {
	out := make([]File, 0, len(files))
	for _, f := range files {
		if f.Path != p {
			out = append(out, f)
		}
	}
	return out
}
