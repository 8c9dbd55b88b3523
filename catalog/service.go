package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/fabcommons/fabcommons/catalog/license"
	"github.com/fabcommons/fabcommons/catalog/mesh"
	"github.com/fabcommons/fabcommons/catalog/picture"
	"github.com/fabcommons/fabcommons/storage"
)

// Actor is who is acting: the web layer maps its user to this.
type Actor struct {
	ID     string
	Handle string
	Admin  bool
}

// Limits bound what one upload may hold, and what one person may publish a day.
type Limits struct {
	FileBytes         int64 // one file (256 MiB)
	Files             int   // files in one version (200)
	VersionBytes      int64 // all the files of one upload together (2 GiB)
	DesignsPerDay     int   // new designs and forks a person may publish a day (100)
	UploadBytesPerDay int64 // bytes a person may upload a day (10 GiB)
}

// DefaultLimits are the limits when none are configured.
var DefaultLimits = Limits{FileBytes: 256 << 20, Files: 200, VersionBytes: 2 << 30, DesignsPerDay: 100, UploadBytesPerDay: 10 << 30}

// Service is the catalog's use cases.
type Service struct {
	store  Store
	blobs  Blobs
	quotas storage.Quotas // nil: no daily quotas
	log    *slog.Logger
	limits Limits
	now    func() time.Time
	fetch  Fetcher // reads remote files from their hubs; nil on a hub that does not federate
}

// NewService builds the catalog service. A zero limit takes its default; clock may be
// nil for time.Now.
func NewService(store Store, blobs Blobs, quotas storage.Quotas, log *slog.Logger, limits Limits, clock func() time.Time) *Service {
	if limits.FileBytes == 0 {
		limits.FileBytes = DefaultLimits.FileBytes
	}
	if limits.Files == 0 {
		limits.Files = DefaultLimits.Files
	}
	if limits.VersionBytes == 0 {
		limits.VersionBytes = DefaultLimits.VersionBytes
	}
	if limits.DesignsPerDay == 0 {
		limits.DesignsPerDay = DefaultLimits.DesignsPerDay
	}
	if limits.UploadBytesPerDay == 0 {
		limits.UploadBytesPerDay = DefaultLimits.UploadBytesPerDay
	}
	if clock == nil {
		clock = time.Now
	}
	return &Service{store: store, blobs: blobs, quotas: quotas, log: log, limits: limits, now: storage.Milliseconds(clock)}
}

// UseFetcher has the catalog fetch remote files through f (the federation's guarded
// client) where it needs their bytes itself: when a design of another hub is forked.
func (s *Service) UseFetcher(f Fetcher) { s.fetch = f }

// Limits returns the upload limits in force.
func (s *Service) Limits() Limits { return s.limits }

// FileSource hands each uploaded file to yield, streaming, in upload order, and stops
// at yield's first error, which it returns.
type FileSource func(yield func(path string, r io.Reader) error) error

// SizeBound is what a FileSource's reader may offer when the file's size is bounded
// before it is read (by the request's Content-Length): the most bytes it can hold, or
// -1 for no bound. An upload is analysed as it streams only with tables sized within
// that bound, so a header claiming a large file cannot make them larger than the
// bytes the request was budgeted for.
type SizeBound interface{ SizeBound() int64 }

// BOMSource returns the uploaded BOM (nil for none). It is called after the files have
// been read, as a BOM may arrive after them in a stream.
type BOMSource func() []byte

// NewDesign is what a person fills in to publish a design.
type NewDesign struct {
	Title   string       `json:"title"`
	Summary string       `json:"summary"`
	Tags    []string     `json:"tags"`
	License string       `json:"license"`
	Slug    string       `json:"slug"`    // optional; made from the title when empty
	Message string       `json:"message"` // optional; for version 1
	Parents []ParentSpec `json:"parents"` // a remix names the versions it builds on
	// Licensor, when the rights holder is not the one publishing (see Design.Licensor).
	Licensor string `json:"licensor"`
}

// ParentSpec names a parent design version; Version 0 means its latest.
type ParentSpec struct {
	Slug    string `json:"slug"`
	Version int    `json:"version"`
}

func checkText(field, v string, max int, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return storage.Invalid(field, "is required")
	case utf8.RuneCountInString(v) > max:
		return storage.Invalid(field, fmt.Sprintf("at most %d characters", max))
	case !utf8.ValidString(v):
		return storage.Invalid(field, "not UTF-8 text")
	}
	return nil
}

// Check says whether a new design's description can be published, as far as it can
// tell without the store: a title of 1 to 200 characters, a summary of up to 5000 and a
// message of up to 2000, at most 20 tags of the form CleanTags allows, a license from
// the registry, at most 20 parents each named by a slug and a version of 0 (the
// latest) or more, and a valid slug if one is asked for. An error is an
// *storage.InvalidError naming the field. Whether the parents exist, and allow the
// license, is Create's to check.
func (nd NewDesign) Check() error {
	if err := checkText("title", nd.Title, 200, true); err != nil {
		return err
	}
	if err := checkText("summary", nd.Summary, 5000, false); err != nil {
		return err
	}
	if err := checkText("message", nd.Message, 2000, false); err != nil {
		return err
	}
	if err := checkText("licensor", nd.Licensor, 200, false); err != nil {
		return err
	}
	if strings.ContainsFunc(nd.Licensor, unicode.IsControl) {
		return storage.Invalid("licensor", "one line, without control characters")
	}
	if _, err := CleanTags(nd.Tags); err != nil {
		return err
	}
	if _, err := license.Lookup(nd.License); err != nil {
		return storage.Invalid("license", err.Error())
	}
	if len(nd.Parents) > 20 {
		return storage.Invalid("parents", "at most 20 parents")
	}
	for _, p := range nd.Parents {
		if !ValidSlug(p.Slug) || p.Version < 0 {
			return storage.Invalid("parents", fmt.Sprintf("want a design's slug and a version of 0 (its latest) or more, not %q version %d", p.Slug, p.Version))
		}
	}
	if nd.Slug != "" && !ValidSlug(nd.Slug) {
		return storage.Invalid("slug", "use lowercase letters, digits and hyphens, up to 80 characters")
	}
	return nil
}

// Create publishes a new design from its files (and optional BOM). Files stream into
// blob storage as they arrive; nothing about the design is recorded until every file
// is stored and checked, so a failure leaves at most unreferenced blobs, which the
// maintenance cron collects.
func (s *Service) Create(ctx context.Context, actor Actor, nd NewDesign, files FileSource, bomSource BOMSource) (_ Design, _ Version, err error) {
	if err := nd.Check(); err != nil {
		return Design{}, Version{}, err
	}
	tags, err := CleanTags(nd.Tags)
	if err != nil {
		return Design{}, Version{}, err
	}
	parents, err := s.resolveParents(ctx, nd.Parents)
	if err != nil {
		return Design{}, Version{}, err
	}
	if len(parents) > 0 {
		if err := s.checkForkLicense(parents, nd.License); err != nil {
			return Design{}, Version{}, err
		}
	}
	if err := s.useDesignQuota(ctx, actor, 1); err != nil {
		return Design{}, Version{}, err
	}
	defer func() {
		if err != nil { // not published after all
			s.useDesignQuota(ctx, actor, -1)
		}
	}()
	stored, err := s.storeFiles(ctx, nil, files)
	if err != nil {
		return Design{}, Version{}, err
	}
	if len(stored) == 0 {
		return Design{}, Version{}, storage.Invalid("files", "upload at least one file")
	}
	if err := s.useUploadQuota(ctx, actor, nil, stored); err != nil {
		return Design{}, Version{}, err
	}
	now := s.now().UTC()
	v := Version{Number: 1, Message: nd.Message, License: nd.License, Files: stored, BOM: []BOMLine{}, CreatedBy: actor.Handle, CreatedAt: now}
	if v.Message == "" {
		v.Message = "First version"
	}
	if bom := bomSource(); len(bom) > 0 {
		if v.BOM, err = ParseBOM(bom, v.MeshFiles()); err != nil {
			return Design{}, Version{}, err
		}
	}
	d := Design{
		ID: uuid.NewString(), OwnerID: actor.ID, Owner: actor.Handle, Licensor: strings.TrimSpace(nd.Licensor), Title: strings.TrimSpace(nd.Title),
		Summary: strings.TrimSpace(nd.Summary), Tags: tags, License: nd.License, Parents: parents,
		LatestVersion: 1, CreatedAt: now, UpdatedAt: now,
	}
	v.DesignID = d.ID
	if err := s.insertWithSlug(ctx, &d, v, nd.Slug); err != nil {
		return Design{}, Version{}, err
	}
	s.log.Info("design published", "design", d.Slug, "owner", actor.Handle, "files", len(v.Files))
	return d, v, nil
}

// pageSlugs are the pages under /designs/ that a design with that slug would hide.
var pageSlugs = map[string]bool{"new": true, "import": true}

// insertWithSlug stores d under the requested slug (refusing it if taken) or, without
// one, under a slug made from the title with -2, -3, ... appended until one is free.
func (s *Service) insertWithSlug(ctx context.Context, d *Design, v Version, requested string) error {
	if requested != "" {
		if !ValidSlug(requested) {
			return storage.Invalid("slug", "use lowercase letters, digits and hyphens, up to 80 characters")
		}
		if pageSlugs[requested] {
			return storage.Invalid("slug", fmt.Sprintf("%q is the name of a page of the hub; choose another", requested))
		}
		d.Slug = requested
		if err := s.store.CreateDesign(ctx, *d, v); err != nil {
			if errors.Is(err, storage.ErrConflict) {
				return fmt.Errorf("slug %q is taken: %w", requested, storage.ErrConflict)
			}
			return fmt.Errorf("create design %s: %w", requested, err)
		}
		return nil
	}
	base := Slugify(d.Title)
	first := 1
	if pageSlugs[base] {
		first = 2
	}
	for i := first; i <= 100; i++ {
		d.Slug = base
		if i > 1 {
			d.Slug = fmt.Sprintf("%s-%d", base, i)
		}
		err := s.store.CreateDesign(ctx, *d, v)
		if err == nil {
			return nil
		}
		if !errors.Is(err, storage.ErrConflict) {
			return fmt.Errorf("create design %s: %w", d.Slug, err)
		}
	}
	d.Slug = base + "-" + d.ID[:8]
	if err := s.store.CreateDesign(ctx, *d, v); err != nil {
		return fmt.Errorf("create design %s: %w", d.Slug, err)
	}
	return nil
}

// storeFiles streams files into blob storage, analysing meshes, on top of the files
// of the version being extended (nil for a new design): an uploaded path replaces the
// same path there. Identical content is stored once, by its hash.
func (s *Service) storeFiles(ctx context.Context, base []File, files FileSource) ([]File, error) {
	out := append([]File(nil), base...)
	index := map[string]int{}
	for i, f := range out {
		index[f.Path] = i
	}
	uploaded := map[string]bool{}
	var total int64
	err := files(func(raw string, r io.Reader) error {
		p, err := CleanPath(raw)
		if err != nil {
			return err
		}
		if uploaded[p] {
			return storage.Invalid("files", fmt.Sprintf("%q is uploaded twice", p))
		}
		uploaded[p] = true
		if len(uploaded) > s.limits.Files {
			return storage.Invalid("files", fmt.Sprintf("at most %d files in one upload", s.limits.Files))
		}
		limit := min(s.limits.FileBytes, s.limits.VersionBytes-total)
		kind := KindOf(p)
		// An STL is analysed as it is stored, in the same pass (mesh.Stream), rather
		// than read back afterwards; the stream gives up on what it cannot read as it
		// comes, and then the stored file is analysed as before. Only a file whose
		// size is bounded beforehand (SizeBound) is streamed, so that tables sized
		// from its header stay within what its request was budgeted for.
		var stream *mesh.Stream
		if b, ok := r.(SizeBound); ok && b.SizeBound() >= 0 && kind == FileMesh && !mesh.Is3MF(p) {
			stream = mesh.NewStream(min(limit, b.SizeBound()))
			defer stream.Close()
			r = io.TeeReader(r, stream)
		}
		info, err := s.blobs.Put(ctx, r, limit, "")
		if errors.Is(err, storage.ErrTooLarge) {
			return fmt.Errorf("%q is over %d bytes (or the upload over %d): %w", p, s.limits.FileBytes, s.limits.VersionBytes, storage.ErrTooLarge)
		}
		if err != nil {
			return fmt.Errorf("store %q: %w", p, err)
		}
		if info.Size == 0 {
			return storage.Invalid("files", fmt.Sprintf("%q is empty", p))
		}
		total += info.Size
		f := File{Path: p, SHA256: info.Key, Size: info.Size, Kind: kind}
		if f.Kind == FileMesh {
			rep, err := mesh.Report{}, mesh.ErrNotStreamed
			if stream != nil {
				rep, err = stream.Finish(info.Size)
			}
			if errors.Is(err, mesh.ErrNotStreamed) {
				rep, err = s.analyze(ctx, p, info)
			}
			if errors.Is(err, mesh.ErrNotSTL) {
				return storage.Invalid("files", fmt.Sprintf("%q is not an STL file: %v", p, err))
			}
			if errors.Is(err, mesh.Err3MF) {
				return storage.Invalid("files", fmt.Sprintf("%q cannot be read as 3MF: %v", p, err))
			}
			if err != nil {
				return fmt.Errorf("analyse %q: %w", p, err)
			}
			f.Mesh = &rep
		}
		if f.Kind == FileImage {
			r := &blobReaderAt{ctx: ctx, blobs: s.blobs, key: info.Key, size: info.Size}
			w, h, err := picture.Measure(io.NewSectionReader(r, 0, info.Size), info.Size, "files")
			r.Close()
			if inv := (*storage.InvalidError)(nil); errors.As(err, &inv) {
				return storage.Invalid("files", fmt.Sprintf("%q: %s", p, inv.Message))
			}
			if err != nil {
				return fmt.Errorf("measure %q: %w", p, err)
			}
			f.Picture = &PictureSize{Width: w, Height: h}
		}
		if i, ok := index[p]; ok {
			out[i] = f
		} else {
			index[p] = len(out)
			out = append(out, f)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) > s.limits.Files {
		return nil, storage.Invalid("files", fmt.Sprintf("a version holds at most %d files", s.limits.Files))
	}
	return out, nil
}

// analyze reads a stored mesh back from blob storage, as STL or 3MF by its name.
func (s *Service) analyze(ctx context.Context, name string, info storage.BlobInfo) (mesh.Report, error) {
	r := &blobReaderAt{ctx: ctx, blobs: s.blobs, key: info.Key, size: info.Size}
	defer r.Close()
	return mesh.AnalyzeFile(name, r, info.Size)
}

// Design returns a design and its latest version. A hidden design comes back as a
// tombstone: its title, owner and license, without files, unless the actor is an admin.
func (s *Service) Design(ctx context.Context, actor Actor, slug string) (Design, *Version, error) {
	d, err := s.store.DesignBySlug(ctx, slug)
	if err != nil {
		return Design{}, nil, fmt.Errorf("design %s: %w", slug, err)
	}
	if d.Hidden && !actor.Admin {
		return d, nil, nil
	}
	v, err := s.store.Version(ctx, d.ID, d.LatestVersion)
	if err != nil {
		return Design{}, nil, fmt.Errorf("design %s version %d: %w", slug, d.LatestVersion, err)
	}
	return d, &v, nil
}

// Version returns one version of a design (not of a hidden one, but to admins).
func (s *Service) Version(ctx context.Context, actor Actor, slug string, n int) (Design, Version, error) {
	d, err := s.store.DesignBySlug(ctx, slug)
	if err != nil {
		return Design{}, Version{}, fmt.Errorf("design %s: %w", slug, err)
	}
	if d.Hidden && !actor.Admin {
		return Design{}, Version{}, fmt.Errorf("design %s is hidden: %w", slug, storage.ErrNotFound)
	}
	v, err := s.store.Version(ctx, d.ID, n)
	if err != nil {
		return Design{}, Version{}, fmt.Errorf("design %s version %d: %w", slug, n, err)
	}
	return d, v, nil
}

// Versions lists a design's versions, newest first.
func (s *Service) Versions(ctx context.Context, actor Actor, slug string) ([]Version, error) {
	d, err := s.store.DesignBySlug(ctx, slug)
	if err != nil {
		return nil, fmt.Errorf("design %s: %w", slug, err)
	}
	if d.Hidden && !actor.Admin {
		return []Version{}, nil // a tombstone has no versions to show
	}
	return s.store.Versions(ctx, d.ID)
}

// Search lists visible designs.
func (s *Service) Search(ctx context.Context, q Query) (Page, error) {
	if q.Limit <= 0 || q.Limit > 100 {
		q.Limit = 24
	}
	if len(q.Text) > 200 {
		return Page{}, storage.Invalid("q", "at most 200 characters")
	}
	return s.store.Search(ctx, q)
}

// OpenBlob opens length bytes of a stored file at offset (length < 0: to the end).
func (s *Service) OpenBlob(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	return s.blobs.Get(ctx, key, offset, length)
}

// useQuota counts amount against actor's daily quota of kind.
func (s *Service) useQuota(ctx context.Context, actor Actor, kind string, amount, limit int64, what string) error {
	if actor.Admin {
		return nil
	}
	return storage.UseQuota(ctx, s.quotas, kind+"/"+actor.ID, amount, limit, s.now(), 24*time.Hour, what+" a day")
}

// useDesignQuota counts n new designs (or forks) against actor's daily quota; -1
// gives one back that was not published after all.
func (s *Service) useDesignQuota(ctx context.Context, actor Actor, n int64) error {
	return s.useQuota(ctx, actor, "designs", n, int64(s.limits.DesignsPerDay), "new designs")
}

// useUploadQuota counts the bytes of the files an upload brought (not those carried
// over from the version before). Refused, the blobs just stored are orphans the
// maintenance cron collects.
func (s *Service) useUploadQuota(ctx context.Context, actor Actor, base, stored []File) error {
	kept := map[string]bool{}
	for _, f := range base {
		kept[f.Path+"\x00"+f.SHA256] = true
	}
	var n int64
	for _, f := range stored {
		if !kept[f.Path+"\x00"+f.SHA256] {
			n += f.Size
		}
	}
	return s.useUploadBytes(ctx, actor, n)
}

// useUploadBytes counts n bytes brought to this hub against actor's daily upload quota;
// a negative n gives them back.
func (s *Service) useUploadBytes(ctx context.Context, actor Actor, n int64) error {
	return s.useQuota(ctx, actor, "upload-bytes", n, s.limits.UploadBytesPerDay, "bytes of uploads")
}
