package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/catalog/license"
	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
)

func actorOf(c *gin.Context) catalog.Actor {
	u, _ := currentUser(c)
	return catalog.Actor{ID: u.ID, Handle: u.Handle, Admin: u.Admin}
}

// baseURL is where people reach the hub, for links in downloads.
func (s *Server) baseURL(c *gin.Context) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

const maxBOMBytes = 5 << 20

// upload reads a design upload as it streams in: first the "meta" field (JSON, into
// meta), then "files" parts, each handed on as it arrives, and an optional "bom" part
// (CSV, TSV or JSON) anywhere. It returns the FileSource the catalog pulls from and a
// pointer to the BOM, filled once the source has been read.
type upload struct {
	reader *multipart.Reader
	bom    []byte
	next   *multipart.Part // a part read ahead while looking for meta
	length int64           // the request's Content-Length, -1 when unknown
}

// boundedPart is a file part with the request's length as a bound on its size
// (catalog.SizeBound).
type boundedPart struct {
	*multipart.Part
	length int64
}

func (p boundedPart) SizeBound() int64 { return p.length }

func newUpload(c *gin.Context, meta any) (*upload, error) {
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return nil, &badRequest{"send multipart/form-data with a meta field and files"}
	}
	u := &upload{reader: mr, length: c.Request.ContentLength}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, &badRequest{"the upload has no meta field"}
		}
		if err != nil {
			return nil, bodyError(err)
		}
		switch part.FormName() {
		case "meta":
			if err := decodeMeta(part, meta); err != nil {
				return nil, err
			}
			return u, nil
		case "bom":
			if err := u.readBOM(part); err != nil {
				return nil, err
			}
		default:
			return nil, &badRequest{fmt.Sprintf("send the meta field before %q", part.FormName())}
		}
	}
}

// maxMetaBytes bounds an upload's meta field: a description, tags, parents and
// paths to remove, never near a megabyte.
const maxMetaBytes = 1 << 20

// decodeMeta reads an upload's meta field into meta (a *catalog.NewDesign or
// *catalog.NewVersion): one JSON object of at most maxMetaBytes with only the fields
// meta has. It ends one of three ways: nil, meta filled; a *badRequest saying why the
// field cannot be read as that; or an error reading the body (bodyError).
func decodeMeta(r io.Reader, meta any) error {
	b, err := io.ReadAll(io.LimitReader(r, maxMetaBytes+1))
	if err != nil {
		return bodyError(err)
	}
	if len(b) > maxMetaBytes {
		return &badRequest{fmt.Sprintf("the meta field is over %d bytes", maxMetaBytes)}
	}
	if err := decodeJSON(bytes.NewReader(b), meta); err != nil {
		return &badRequest{"the meta field is not valid JSON for this call: " + err.Error()}
	}
	return nil
}

func (u *upload) readBOM(part *multipart.Part) error {
	b, err := io.ReadAll(io.LimitReader(part, maxBOMBytes+1))
	if err != nil {
		return bodyError(err)
	}
	if len(b) > maxBOMBytes {
		return storage.Invalid("bom", fmt.Sprintf("the BOM is over %d bytes", maxBOMBytes))
	}
	u.bom = b
	return nil
}

// files is the catalog.FileSource over the remaining parts.
func (u *upload) files(yield func(string, io.Reader) error) error {
	for {
		part, err := u.reader.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return bodyError(err)
		}
		switch part.FormName() {
		case "files":
			if err := yield(rawFileName(part), boundedPart{part, u.length}); err != nil {
				return err
			}
		case "bom":
			if err := u.readBOM(part); err != nil {
				return err
			}
		default:
			return &badRequest{fmt.Sprintf("unexpected field %q: send meta, files and bom", part.FormName())}
		}
	}
}

// rawFileName is the part's filename as sent, with its folders: Part.FileName keeps
// only the last element, but a design's files live in folders (parts/lid.stl). The
// catalog checks the path.
func rawFileName(p *multipart.Part) string {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	return params["filename"]
}

// badRequest is a malformed request (400), as opposed to a well-formed one whose
// content is refused (422).
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) || errors.Is(err, errTooSlow) {
		return err
	}
	return &badRequest{"the upload could not be read: " + err.Error()}
}

func (u *upload) bomBytes() []byte { return u.bom }

// createDesign: POST /api/v1/designs (multipart meta + files + optional bom).
func (s *Server) createDesign(c *gin.Context) {
	var meta catalog.NewDesign
	up, err := newUpload(c, &meta)
	if err != nil {
		s.fail(c, err)
		return
	}
	d, v, err := s.catalog.Create(c.Request.Context(), actorOf(c), meta, up.files, up.bomBytes)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.announce(c.Request.Context(), federation.DesignCreated, d.Slug)
	c.JSON(http.StatusCreated, gin.H{"design": d, "version": v})
}

// addVersion: POST /api/v1/designs/{slug}/versions (multipart meta + changed files +
// optional bom), owner only.
func (s *Server) addVersion(c *gin.Context) {
	if _, err := s.catalog.VersionAuthor(c.Request.Context(), actorOf(c), c.Param("slug")); err != nil {
		s.fail(c, err) // before a byte of the upload is read
		return
	}
	var meta catalog.NewVersion
	up, err := newUpload(c, &meta)
	if err != nil {
		s.fail(c, err)
		return
	}
	v, err := s.catalog.AddVersion(c.Request.Context(), actorOf(c), c.Param("slug"), meta, up.files, up.bomBytes)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.announce(c.Request.Context(), federation.DesignUpdated, c.Param("slug"))
	c.JSON(http.StatusCreated, gin.H{"version": v})
}

// listDesigns: GET /api/v1/designs?q=&tag=&license=&owner=&featured=&cursor=&limit=
func (s *Server) listDesigns(c *gin.Context) {
	limit, _ := strconv.Atoi(c.DefaultQuery("limit", "24"))
	page, err := s.catalog.Search(c.Request.Context(), catalog.Query{
		Text: c.Query("q"), Tag: c.Query("tag"), License: c.Query("license"), Owner: c.Query("owner"),
		Featured: c.Query("featured") == "true", Cursor: c.Query("cursor"), Limit: limit, Origin: c.Query("origin"),
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

// getDesign: GET /api/v1/designs/{slug} -> {design, version}; a hidden design is a
// tombstone with version null.
func (s *Server) getDesign(c *gin.Context) {
	d, v, err := s.catalog.Design(c.Request.Context(), actorOf(c), c.Param("slug"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"design": d, "version": v})
}

func (s *Server) listVersions(c *gin.Context) {
	versions, err := s.catalog.Versions(c.Request.Context(), actorOf(c), c.Param("slug"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"versions": versions})
}

// version resolves {slug} and {n} of a versioned route, answering on error.
func (s *Server) version(c *gin.Context) (catalog.Design, catalog.Version, bool) {
	n, err := strconv.Atoi(c.Param("n"))
	if err != nil || n < 1 {
		abort(c, http.StatusNotFound, "not_found", "versions are numbered from 1")
		return catalog.Design{}, catalog.Version{}, false
	}
	d, v, err := s.catalog.Version(c.Request.Context(), actorOf(c), c.Param("slug"), n)
	if err != nil {
		s.fail(c, err)
		return catalog.Design{}, catalog.Version{}, false
	}
	// A version never changes, but its design can be hidden later: browsers may keep
	// it, shared caches may not (they would go on serving it).
	c.Header("Cache-Control", "private, max-age=86400")
	return d, v, true
}

func (s *Server) getVersion(c *gin.Context) {
	d, v, ok := s.version(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, gin.H{"design": d, "version": v})
}

// forkOptions: GET /api/v1/designs/{slug}/fork-options -> {forkable, allowed, reason}.
func (s *Server) forkOptions(c *gin.Context) {
	options, err := s.catalog.ForkOptions(c.Request.Context(), c.Param("slug"))
	if errors.Is(err, storage.ErrForbidden) {
		c.JSON(http.StatusOK, gin.H{"forkable": false, "allowed": []any{}, "reason": err.Error()})
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"forkable": true, "allowed": options})
}

// fork: POST /api/v1/designs/{slug}/forks {license,title?,slug?,version?} -> 201 {design}.
func (s *Server) fork(c *gin.Context) {
	var req catalog.ForkRequest
	if !s.bindJSON(c, &req) {
		return
	}
	if err := s.readyToFork(c.Request.Context(), c.Param("slug"), req.Version, req.License); err != nil {
		s.fail(c, err)
		return
	}
	d, err := s.catalog.Fork(c.Request.Context(), actorOf(c), c.Param("slug"), req)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.announce(c.Request.Context(), federation.DesignCreated, d.Slug)
	c.JSON(http.StatusCreated, gin.H{"design": d})
}

// readyToFork gets a remote design's version ready to be forked with license: its
// meshes fetched, checked and analysed once (within the analysis budget, as for an
// order), so that the fork, a design of this hub, is drawn, viewed and made as any.
// catalog.Fork fetches the rest of its files. A fork that Fork will refuse (a hidden
// design, a license its parent does not allow, no such version) fetches nothing here.
func (s *Server) readyToFork(ctx context.Context, slug string, version int, lic string) error {
	options, err := s.catalog.ForkOptions(ctx, slug)
	if err != nil || !slices.ContainsFunc(options, func(o license.Option) bool { return o.ID == lic }) {
		return nil // Fork says why
	}
	var d catalog.Design
	var v catalog.Version
	if version == 0 {
		var latest *catalog.Version
		if d, latest, err = s.catalog.Design(ctx, catalog.Actor{}, slug); err != nil || latest == nil {
			return nil
		}
		v = *latest
	} else if d, v, err = s.catalog.Version(ctx, catalog.Actor{}, slug, version); err != nil {
		return nil
	}
	if !d.Remote() {
		return nil
	}
	_, err = s.readyToMake(ctx, d, v)
	return err
}

func (s *Server) lineage(c *gin.Context) {
	l, err := s.catalog.Lineage(c.Request.Context(), c.Param("slug"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, l)
}

// downloadFile: GET /api/v1/designs/{slug}/versions/{n}/files/{path}: the bytes, with
// ETag (the SHA-256) and Range support.
func (s *Server) downloadFile(c *gin.Context) {
	_, v, ok := s.version(c)
	if !ok {
		return
	}
	p := strings.TrimPrefix(c.Param("path"), "/")
	f, found := v.File(p)
	if !found {
		abort(c, http.StatusNotFound, "not_found", fmt.Sprintf("version %d has no file %q", v.Number, p))
		return
	}
	if !s.ensureFiles(c, v, []string{f.Path}) {
		return
	}
	t := catalog.TypeOf(f.Path)
	h := c.Writer.Header()
	h.Set("ETag", `"`+f.SHA256+`"`)
	h.Set("Cache-Control", "private, max-age=31536000, immutable") // versions never change; designs can be hidden
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	// Pictures may be shown in the browser (nosniff keeps them pictures); everything
	// else is an attachment, so an uploaded HTML or SVG file never runs script on the
	// hub's origin.
	h.Set("Content-Type", t.Media)
	if t.Kind != catalog.FileImage {
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(f.Path)}))
	}
	s.serveBlob(c, f.SHA256, f.Size, v.CreatedAt)
}

// archive: GET .../versions/{n}/archive.zip: files, bom.csv, ATTRIBUTION.md and okh.toml.
func (s *Server) archive(c *gin.Context) {
	d, v, ok := s.version(c)
	if !ok {
		return
	}
	if !s.ensureFiles(c, v, nil) {
		return
	}
	name := fmt.Sprintf("%s-v%d.zip", d.Slug, v.Number)
	c.Header("Content-Type", "application/zip")
	c.Header("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	// The status waits for the zip's first bytes (the zip writer buffers its first
	// entry's header), so a blob store that is away before then gets a 503, not a 200.
	w := &heldStatus{ResponseWriter: c.Writer}
	if err := s.catalog.WriteArchive(c.Request.Context(), w, s.baseURL(c), d, v); err != nil {
		if !w.sent {
			c.Writer.Header().Del("Content-Type")
			c.Writer.Header().Del("Content-Disposition")
			s.fail(c, err)
			return
		}
		// The status is sent: all we can do is cut the zip short and say why in the log.
		s.log.Error("archive failed mid-stream", "design", d.Slug, "version", v.Number, "err", err)
	}
	w.send()
}

func (s *Server) okh(c *gin.Context) {
	d, v, ok := s.version(c)
	if !ok {
		return
	}
	b, err := catalog.OKH(s.baseURL(c), d, v)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Data(http.StatusOK, "application/toml; charset=utf-8", b)
}

func (s *Server) bomCSV(c *gin.Context) {
	d, v, ok := s.version(c)
	if !ok {
		return
	}
	var buf bytes.Buffer
	if err := catalog.WriteBOMCSV(&buf, v.BOM); err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fmt.Sprintf("%s-v%d-bom.csv", d.Slug, v.Number)}))
	c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}

// curate: POST /api/v1/designs/{slug}/{hide,unhide,feature,unfeature,dismiss-flags},
// admins only.
func (s *Server) curate(action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := s.curation(c, c.Param("slug"), action); err != nil {
			s.fail(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

// curation carries out a maintainer's action on a design, for the API and /admin alike:
// hide, unhide, feature, unfeature or dismiss (its reports).
func (s *Server) curation(c *gin.Context, slug, action string) error {
	ctx, actor := c.Request.Context(), actorOf(c)
	switch action {
	case "hide", "unhide":
		d, err := s.catalog.SetHidden(ctx, actor, slug, action == "hide")
		if err != nil {
			return err
		}
		if action == "hide" {
			s.announce(ctx, federation.DesignDeleted, slug)
		} else {
			s.announce(ctx, federation.DesignCreated, slug)
		}
		if action == "unhide" || s.orders == nil {
			return nil
		}
		// A hidden design is not made: the jobs not yet on a machine are turned down.
		_, err = s.orders.RejectDesign(ctx, fabActor(c), d.ID, "the design was hidden by the site's maintainers")
		return err
	case "feature", "unfeature":
		return s.catalog.SetFeatured(ctx, actor, slug, action == "feature")
	case "dismiss":
		return s.catalog.DismissFlags(ctx, actor, slug)
	}
	return fmt.Errorf("no curation action %q: %w", action, storage.ErrNotFound)
}

// flagDesign: POST /api/v1/designs/{slug}/flag {reason} -> 204; a repeat 409.
func (s *Server) flagDesign(c *gin.Context) {
	var req struct {
		Reason string `json:"reason"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	if err := s.catalog.Flag(c.Request.Context(), actorOf(c), c.Param("slug"), req.Reason); err != nil {
		s.fail(c, err)
		return
	}
	s.notifyReported(c.Request.Context(), c.Param("slug"), req.Reason)
	c.Status(http.StatusNoContent)
}

// listFlags: GET /api/v1/flags -> {designs: [{design, flags}]}, for maintainers.
func (s *Server) listFlags(c *gin.Context) {
	flagged, err := s.catalog.Flagged(c.Request.Context(), actorOf(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"designs": flagged})
}
