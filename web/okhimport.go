package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/catalog/license"
	"github.com/fabcommons/fabcommons/catalog/okh"
)

// importDesign: POST /api/v1/designs/import, multipart: archive (a zip holding an
// okh.toml and the files it names) and, optionally, license (used when the manifest's
// is missing or unknown) -> 201 {design, version, report}; a refusal once the manifest
// is read carries the report beside the error. The zip is spooled to a
// temporary file, as its table of contents is at its end; the route's body limit is an
// upload's.
func (s *Server) importDesign(c *gin.Context) {
	mr, err := c.Request.MultipartReader()
	if err != nil {
		s.fail(c, &badRequest{"send multipart/form-data with the zip in a field named archive"})
		return
	}
	var opt okh.Options
	var tmp *os.File
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var size int64
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.fail(c, bodyError(err))
			return
		}
		switch part.FormName() {
		case "archive":
			if tmp != nil {
				s.fail(c, &badRequest{"send one archive"})
				return
			}
			if tmp, err = os.CreateTemp(s.cfg.TempDir, "okh-import-*.zip"); err != nil {
				s.fail(c, fmt.Errorf("spool an import: %w", err))
				return
			}
			if size, err = spool(tmp, part); err != nil {
				s.fail(c, err)
				return
			}
		case "license":
			b, err := io.ReadAll(io.LimitReader(part, 201))
			if err != nil {
				s.fail(c, bodyError(err))
				return
			}
			if len(b) > 200 {
				s.fail(c, &badRequest{"the license field is an SPDX id, not over 200 bytes"})
				return
			}
			opt.License = strings.TrimSpace(string(b))
		default:
			s.fail(c, &badRequest{fmt.Sprintf("unexpected field %q: send archive and, optionally, license", part.FormName())})
			return
		}
	}
	if tmp == nil {
		s.fail(c, &badRequest{"the request has no archive field: send the zip as archive"})
		return
	}
	d, v, rep, err := okh.Import(c.Request.Context(), s.catalog, actorOf(c), tmp, size, opt)
	if err != nil && rep.Used != nil {
		// The manifest was read: what it held goes with the refusal, so that one answer
		// shows everything to mend.
		if status, e := s.classify(c, err); status != 0 {
			c.AbortWithStatusJSON(status, gin.H{"error": e, "report": rep})
		}
		c.Abort()
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"design": d, "version": v, "report": rep})
}

// spool copies r into f, telling a failure to read the request (bodyError) from one
// to write the file (the hub's own).
func spool(f *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, rerr := r.Read(buf)
		if k > 0 {
			if _, err := f.Write(buf[:k]); err != nil {
				return n, fmt.Errorf("spool an import: %w", err)
			}
			n += int64(k)
		}
		if errors.Is(rerr, io.EOF) {
			return n, nil
		}
		if rerr != nil {
			return n, bodyError(rerr)
		}
	}
}

// importPage: GET /designs/import, the form that posts to importDesign.
func (s *Server) importPage(c *gin.Context) {
	s.render(c, http.StatusOK, "import", "Import an OKH package", gin.H{"Licenses": license.All(), "MaxBytes": s.catalog.Limits().VersionBytes})
}
