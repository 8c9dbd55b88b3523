package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fabcommons/fabcommons/catalog/license"
	"github.com/fabcommons/fabcommons/storage"
)

// RemoteDesign is a design as the hub it was published on describes it (its design
// object): what a hub that follows that hub keeps in its own catalog. Its files'
// bytes stay on their origin until first needed (EnsureFile).
type RemoteDesign struct {
	Origin    Origin
	Slug      string // its slug on its hub (the local slug is made from it)
	Author    string // @handle@host
	Licensor  string
	Title     string
	Summary   string
	Tags      []string
	License   string
	Version   int
	Message   string
	Files     []File // Path, SHA256, Size and Origin (where its bytes are)
	BOM       []BOMLine
	Parents   []RemoteParent
	Published time.Time
}

// RemoteParent is a parent as a design object names it: by its object's id, with the
// snapshot that attribution needs.
type RemoteParent struct {
	URL     string
	Version int
	Title   string
	Owner   string
	License string
	// Local is the slug of this hub's own design when URL names it (a design of
	// another hub forked from one of this hub's), else "".
	Local string
}

// Limits on a remote design, so that one hub cannot fill another's catalog with
// absurd objects. They are the limits of a local upload, or tighter.
const (
	MaxRemoteFiles   = 200
	MaxRemoteBOM     = 500
	MaxRemoteParents = 20
	maxURL           = 2000
)

// ErrOrigin is a remote file that its origin did not serve as its design names it:
// unreachable, over its size, or with other bytes than its SHA-256. Nothing was kept.
// The web layer answers 502.
var ErrOrigin = errors.New("the design's origin did not serve the file")

// Check says whether a remote design can be kept: its text within the lengths of a
// local design's, a license from the registry, at most MaxRemoteFiles files (and the
// hub's file count) each with a clean path, a SHA-256, a size within the file limit and
// an http(s) origin, together within the version limit, a BOM of
// at most MaxRemoteBOM valid lines, and at most MaxRemoteParents parents named by
// http(s) URLs. An error is a *storage.InvalidError naming the field.
func (r RemoteDesign) Check(limits Limits) error {
	if !isHTTP(r.Origin.Object) || !isHTTP(r.Origin.URL) || r.Origin.Hub == "" {
		return storage.Invalid("id", "a design object needs an id and a url that are http(s) URLs")
	}
	nd := NewDesign{Title: r.Title, Summary: r.Summary, Tags: r.Tags, License: r.License, Message: r.Message, Licensor: r.Licensor}
	if err := nd.Check(); err != nil {
		return err
	}
	if err := checkText("attributedTo", r.Author, 300, true); err != nil {
		return err
	}
	if r.Version < 1 || r.Version > 1_000_000 {
		return storage.Invalid("version", fmt.Sprintf("want a version number of 1 or more, got %d", r.Version))
	}
	if maxFiles := min(MaxRemoteFiles, limits.Files); len(r.Files) == 0 || len(r.Files) > maxFiles {
		return storage.Invalid("files", fmt.Sprintf("want 1 to %d files, got %d", maxFiles, len(r.Files)))
	}
	var total int64
	seen := map[string]bool{}
	var meshes []string
	for _, f := range r.Files {
		p, err := CleanPath(f.Path)
		if err != nil || p != f.Path {
			return storage.Invalid("files", fmt.Sprintf("%q is not a clean file path", f.Path))
		}
		if seen[p] {
			return storage.Invalid("files", fmt.Sprintf("%q is named twice", p))
		}
		seen[p] = true
		if !storage.ValidKey(f.SHA256) {
			return storage.Invalid("files", fmt.Sprintf("%q: want its SHA-256 in lower-case hex", p))
		}
		if f.Size <= 0 || f.Size > limits.FileBytes {
			return storage.Invalid("files", fmt.Sprintf("%q: want a size of 1 to %d bytes, got %d", p, limits.FileBytes, f.Size))
		}
		if total += f.Size; total > limits.VersionBytes {
			return storage.Invalid("files", fmt.Sprintf("over %d bytes together, the most of one version here", limits.VersionBytes))
		}
		if !isHTTP(f.Origin) {
			return storage.Invalid("files", fmt.Sprintf("%q: want an http(s) URL to fetch it from", p))
		}
		if KindOf(p) == FileMesh {
			meshes = append(meshes, p)
		}
	}
	if len(r.BOM) > MaxRemoteBOM {
		return storage.Invalid("bom", fmt.Sprintf("at most %d lines from another hub, got %d", MaxRemoteBOM, len(r.BOM)))
	}
	if err := ValidateBOM(r.BOM, meshes); err != nil {
		return err
	}
	if len(r.Parents) > MaxRemoteParents {
		return storage.Invalid("parents", fmt.Sprintf("at most %d parents", MaxRemoteParents))
	}
	for _, p := range r.Parents {
		if !isHTTP(p.URL) {
			return storage.Invalid("parents", "a parent is named by its design object's http(s) URL")
		}
		for _, t := range []string{p.Title, p.Owner, p.License} {
			if err := checkText("parents", t, 300, false); err != nil {
				return err
			}
		}
		if _, err := license.Lookup(p.License); p.License != "" && err != nil {
			return storage.Invalid("parents", fmt.Sprintf("a parent's license %q is not in the registry", p.License))
		}
	}
	return nil
}

func isHTTP(s string) bool {
	u, err := url.Parse(s)
	return err == nil && len(s) <= maxURL && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil
}

// RemoteSlug is the local slug of a remote design: its own slug, and a short hash of
// its object's id so that two hubs' designs of the same slug do not collide, and the
// same design heard twice (by two replicas at once) takes one slug.
func RemoteSlug(slug, object string) string { return remoteSlug(slug, object, 8) }

// remoteSlug is RemoteSlug with digits hex digits of the hash.
func remoteSlug(slug, object string, digits int) string {
	sum := sha256.Sum256([]byte(object))
	base := Slugify(slug)
	if len(base) > 50 {
		base = strings.TrimRight(base[:50], "-")
	}
	return base + "-" + hex.EncodeToString(sum[:])[:digits]
}

// PutRemote keeps a remote design current: it adds it to the catalog when it is new,
// takes its title, summary, tags and licensor when they changed, adds its version when
// it is newer than the latest it has (versions it did not hear of in between are not
// kept), and shows it again when it was a tombstone. It ends one of these ways: the
// design (added, updated, or unchanged when the version is older than its latest:
// late news changes nothing, not even a tombstone); a
// *storage.InvalidError (Check refused it); another error of the store.
func (s *Service) PutRemote(ctx context.Context, r RemoteDesign) (Design, error) {
	if err := r.Check(s.limits); err != nil {
		return Design{}, err
	}
	tags, _ := CleanTags(r.Tags)
	lic, _ := license.Lookup(r.License)
	now := s.now()
	v := Version{Number: r.Version, Message: r.Message, License: lic.ID, BOM: r.BOM, CreatedBy: r.Author, CreatedAt: now}
	if v.BOM == nil {
		v.BOM = []BOMLine{}
	}
	for _, f := range r.Files {
		v.Files = append(v.Files, File{Path: f.Path, SHA256: f.SHA256, Size: f.Size, Kind: KindOf(f.Path), Origin: f.Origin})
	}
	d, err := s.store.DesignByOrigin(ctx, r.Origin.Object)
	if errors.Is(err, storage.ErrNotFound) {
		o := r.Origin
		d = Design{ID: uuid.NewString(), Slug: RemoteSlug(r.Slug, o.Object), OwnerID: "remote:" + o.Hub, Owner: r.Author,
			Licensor: r.Licensor, Title: r.Title, Summary: r.Summary, Tags: tags, License: lic.ID, Parents: s.remoteParents(ctx, r.Parents),
			LatestVersion: r.Version, CreatedAt: now, UpdatedAt: now, Origin: &o}
		if !r.Published.IsZero() && r.Published.Before(now) {
			d.CreatedAt = r.Published.UTC().Truncate(time.Millisecond)
		}
		v.DesignID = d.ID
		err := s.store.CreateDesign(ctx, d, v)
		if errors.Is(err, storage.ErrConflict) {
			if kept, err := s.store.DesignByOrigin(ctx, o.Object); err == nil {
				return kept, nil // heard twice at once (two hub replicas): the other kept it
			}
			// Its slug is taken by another design (one made here to take it, say): the longer one.
			d.Slug = remoteSlug(r.Slug, o.Object, 16)
			err = s.store.CreateDesign(ctx, d, v)
		}
		if err != nil {
			return Design{}, fmt.Errorf("keep remote design %s: %w", o.Object, err)
		}
		return d, nil
	}
	if err != nil {
		return Design{}, err
	}
	if r.Version < d.LatestVersion {
		return d, nil // news older than what this hub has (delivered late): nothing of it is taken
	}
	if d.Hidden {
		if err := s.store.SetHidden(ctx, d.ID, false, now); err != nil {
			return Design{}, err
		}
		d.Hidden = false
	}
	if d.Title != r.Title || d.Summary != r.Summary || d.Licensor != r.Licensor || !slices.Equal(d.Tags, tags) {
		d.Title, d.Summary, d.Licensor, d.Tags, d.UpdatedAt = r.Title, r.Summary, r.Licensor, tags, now
		if err := s.store.SetText(ctx, d); err != nil {
			return Design{}, fmt.Errorf("remote design %s: %w", d.Slug, err)
		}
	}
	if r.Version == d.LatestVersion {
		return d, nil // the version it has (a resync, a repeated Update, a Create showing it again)
	}
	if r.Version > d.LatestVersion+1 {
		// Versions published while this hub did not hear (not following, or a delivery
		// given up) are not kept: the design object is of the latest alone.
		s.log.Info("catalog: a remote design skipped versions this hub did not hear of", "design", d.Slug, "from", d.LatestVersion, "to", r.Version)
	}
	v.DesignID = d.ID
	d.LatestVersion, d.License, d.UpdatedAt = r.Version, lic.ID, now
	if err := s.store.AddVersion(ctx, v, d); err != nil {
		return Design{}, fmt.Errorf("remote design %s version %d: %w", d.Slug, r.Version, err)
	}
	return d, nil
}

// remoteParents names a remote design's parents by URL, with the local id of any this
// hub has a copy of; a parent that is this hub's own design is named as a local one.
func (s *Service) remoteParents(ctx context.Context, ps []RemoteParent) []ParentRef {
	out := []ParentRef{}
	for _, p := range ps {
		ref := ParentRef{URL: p.URL, Version: p.Version, Title: p.Title, Owner: p.Owner, License: p.License}
		if p.Local != "" {
			if d, err := s.store.DesignBySlug(ctx, p.Local); err == nil && !d.Remote() {
				// One of this hub's own: named as a local parent is, so its lineage lists the
				// child, and credited as this hub knows it, not as the remote says.
				lic := d.License
				if v, err := s.store.Version(ctx, d.ID, p.Version); err == nil {
					lic = v.License
				}
				ref = ParentRef{DesignID: d.ID, Slug: d.Slug, Version: p.Version, Title: d.Title, Owner: d.Owner, Licensor: d.Licensor, License: lic}
			}
		} else if d, err := s.store.DesignByOrigin(ctx, p.URL); err == nil {
			ref.DesignID, ref.Slug = d.ID, d.Slug
		}
		out = append(out, ref)
	}
	return out
}

// TombstoneRemote hides the remote design of object (its origin deleted or hid it):
// a tombstone here, as there. A design this hub never heard of is not an error.
func (s *Service) TombstoneRemote(ctx context.Context, object string) error {
	d, err := s.store.DesignByOrigin(ctx, object)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil || d.Hidden {
		return err
	}
	return s.store.SetHidden(ctx, d.ID, true, s.now())
}

// DropRemoteHost hides every remote design from host (host:port, or a host name on
// any port), when that host is blocked, and says how many.
func (s *Service) DropRemoteHost(ctx context.Context, host string) (int, error) {
	n := 0
	for {
		// Hidden designs leave the listing, so the first page is always the next one.
		page, err := s.store.Search(ctx, Query{Origin: host, Limit: 100})
		if err != nil {
			return n, err
		}
		for _, d := range page.Designs {
			if err := s.store.SetHidden(ctx, d.ID, true, s.now()); err != nil {
				return n, err
			}
			n++
		}
		if page.NextCursor == "" {
			return n, nil
		}
	}
}

// Fetcher reads a remote file from its origin: through the guard against private
// addresses, within a timeout, at most limit bytes (more is an error).
type Fetcher interface {
	Fetch(ctx context.Context, url string, limit int64) (io.ReadCloser, error)
}

// EnsureFile makes sure f's bytes are in blob storage: a local file's always are; a
// remote one's are fetched from its origin the first time they are needed, and stored
// only when they are f.Size bytes that hash to f.SHA256. A remote file whose bytes are
// here already (another design has the same file) is served only once its origin has
// shown it has them too (f.Fetched, which EnsureFiles records): a hub that names a
// file by a hash it learnt cannot read a hidden design's bytes through this one. It
// ends one of these ways: nil (the blob is there); ErrOrigin (the origin failed, or
// served other bytes: nothing is kept); another error of the blob store.
func (s *Service) EnsureFile(ctx context.Context, f File, fetch Fetcher) error {
	if f.Origin == "" {
		return nil
	}
	here := false
	if r, err := s.blobs.Get(ctx, f.SHA256, 0, 1); err == nil {
		r.Close()
		here = true
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if here && f.Fetched {
		return nil
	}
	if fetch == nil {
		return fmt.Errorf("%w: %s is on another hub and this hub does not federate", ErrOrigin, f.Path)
	}
	body, err := fetch.Fetch(ctx, f.Origin, f.Size)
	if err != nil {
		return fmt.Errorf("%w: %s from %s: %v", ErrOrigin, f.Path, f.Origin, err)
	}
	defer body.Close()
	if here {
		return s.verifyOrigin(f, body)
	}
	info, err := s.blobs.Put(ctx, body, f.Size, f.SHA256)
	switch {
	case errors.Is(err, storage.ErrDigestMismatch), errors.Is(err, storage.ErrTooLarge):
		return fmt.Errorf("%w: %s from %s is not the file its design names (SHA-256 %s, %d bytes)", ErrOrigin, f.Path, f.Origin, f.SHA256, f.Size)
	case err != nil:
		return fmt.Errorf("store %s from %s: %w", f.Path, f.Origin, err)
	case info.Size != f.Size:
		return fmt.Errorf("%w: %s from %s has %d bytes, not %d", ErrOrigin, f.Path, f.Origin, info.Size, f.Size)
	}
	s.log.Info("catalog: fetched a remote file", "path", f.Path, "origin", f.Origin, "bytes", info.Size)
	return nil
}

// verifyOrigin reads body, the origin's copy of f, whose bytes are here already: nil
// when they are f.Size bytes that hash to f.SHA256.
func (s *Service) verifyOrigin(f File, body io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(body, f.Size+1))
	if err != nil {
		return fmt.Errorf("%w: %s from %s: %v", ErrOrigin, f.Path, f.Origin, err)
	}
	if n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		return fmt.Errorf("%w: %s from %s is not the file its design names (SHA-256 %s, %d bytes)", ErrOrigin, f.Path, f.Origin, f.SHA256, f.Size)
	}
	return nil
}

// EnsureFiles is EnsureFile for each of v's files named in paths (every file when
// paths is nil), and records on the stored version those its origin served (Fetched),
// so that they are served from here from then on.
func (s *Service) EnsureFiles(ctx context.Context, v Version, paths []string, fetch Fetcher) error {
	var fetched []string
	defer func() {
		if len(fetched) == 0 {
			return
		}
		if err := s.store.SetFetched(context.WithoutCancel(ctx), v.DesignID, v.Number, fetched); err != nil {
			s.log.Warn("catalog: remote files fetched but not marked so; their origin is asked again next time", "version", v.Number, "err", err)
		}
	}()
	for _, f := range v.Files {
		if paths != nil && !contains(paths, f.Path) {
			continue
		}
		if err := s.EnsureFile(ctx, f, fetch); err != nil {
			return err
		}
		if f.Origin != "" && !f.Fetched {
			fetched = append(fetched, f.Path)
		}
	}
	return nil
}
