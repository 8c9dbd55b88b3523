package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/catalog/picture"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
	"github.com/fabcommons/fabcommons/storage"
)

// photoCSP is the policy a photo is served under: an image, nothing it could run or
// load, even when opened on its own.
const photoCSP = "default-src 'none'; sandbox"

// unsupportedMedia is a body declared as a type the call does not take (415).
type unsupportedMedia struct{ got string }

func (e *unsupportedMedia) Error() string {
	return fmt.Sprintf("a photo is a JPEG, PNG or GIF image, not %q", e.got)
}

// imageType says whether a declared Content-Type is one picture.Clean may take.
// Clean decodes the bytes and refuses what is not an image whatever is declared; this
// only refuses early what says it is something else.
func imageType(declared string, octetOK bool) bool {
	t, _, _ := mime.ParseMediaType(declared)
	switch t {
	case "image/jpeg", "image/png", "image/gif":
		return true
	case "application/octet-stream", "":
		return octetOK // a file input or curl -F that did not say
	}
	return false
}

// cleanPhoto reads an uploaded image (within picture's bounds) and stores its
// re-encoded copy: the Photo to record, without source, author or time.
func (s *Server) cleanPhoto(ctx context.Context, r io.Reader) (fabrication.Photo, error) {
	pic, err := picture.Clean(r, "photo")
	if err != nil {
		if !errors.Is(err, storage.ErrInvalid) && !errors.Is(err, storage.ErrTooLarge) {
			err = bodyError(err) // the body could not be read: cut, too slow, over the route's limit
		}
		return fabrication.Photo{}, err
	}
	info, err := s.catalog.StoreImage(ctx, pic)
	if err != nil {
		return fabrication.Photo{}, err
	}
	return fabrication.Photo{Key: info.Key, Size: info.Size, ContentType: pic.ContentType, Width: pic.Width, Height: pic.Height}, nil
}

// agentPhoto: POST agentapi.PathJobPhoto — the camera's snapshot of a finished print,
// from the machine holding the job's lease. The lease is checked before a byte of the
// image is read.
func (s *Server) agentPhoto(c *gin.Context) {
	ctx, m, id, lease := c.Request.Context(), machineOf(c), c.Param("id"), c.GetHeader(agentapi.HeaderLease)
	if err := s.scheduler.CheckSnapshot(ctx, m, id, lease); err != nil {
		s.fail(c, err)
		return
	}
	if ct := c.GetHeader("Content-Type"); !imageType(ct, false) {
		s.fail(c, &unsupportedMedia{ct})
		return
	}
	p, err := s.cleanPhoto(ctx, c.Request.Body)
	if err != nil {
		s.fail(c, err)
		return
	}
	if _, err := s.scheduler.AttachSnapshot(ctx, m, id, lease, p); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, agentapi.PhotoResponse{Key: p.Key, ContentType: p.ContentType})
}

// addPhoto: POST /api/v1/jobs/{id}/photos, multipart: photo (the image) and replace
// ("true": it takes the place of the job's photos). A lab's owners and operators may,
// once the print has ended; who may is checked before the image is read.
func (s *Server) addPhoto(c *gin.Context) {
	ctx, actor, id := c.Request.Context(), fabActor(c), c.Param("id")
	if err := s.orders.CheckPhoto(ctx, actor, id); err != nil {
		s.fail(c, err)
		return
	}
	mr, err := c.Request.MultipartReader()
	if err != nil {
		s.fail(c, &badRequest{"send multipart/form-data with the image in a field named photo"})
		return
	}
	var p fabrication.Photo
	var have, replace bool
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.fail(c, bodyError(err))
			return
		}
		switch part.FormName() {
		case "replace":
			v, _ := io.ReadAll(io.LimitReader(part, 16))
			replace = strings.TrimSpace(string(v)) == "true"
		case "photo":
			if have {
				s.fail(c, &badRequest{"send one photo at a time"})
				return
			}
			if ct := part.Header.Get("Content-Type"); !imageType(ct, true) {
				s.fail(c, &unsupportedMedia{ct})
				return
			}
			if p, err = s.cleanPhoto(ctx, part); err != nil {
				s.fail(c, err)
				return
			}
			have = true
		default:
			s.fail(c, &badRequest{fmt.Sprintf("unexpected field %q: send photo and, if you like, replace", part.FormName())})
			return
		}
	}
	if !have {
		s.fail(c, &badRequest{"no photo: send the image in a field named photo"})
		return
	}
	j, err := s.orders.AddPhoto(ctx, actor, id, p, replace)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"job": j, "photo": p})
}

// jobPhoto: GET /api/v1/jobs/{id}/photos/{key} — anyone who may see the job. Only the
// hub's re-encoded copy is ever served, under its own type, never sniffed, and under a
// policy that lets it run nothing.
func (s *Server) jobPhoto(c *gin.Context) {
	p, err := s.orders.Photo(c.Request.Context(), fabActor(c), c.Param("id"), c.Param("key"))
	if err != nil {
		s.fail(c, err)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", p.ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", photoCSP)
	h.Set("ETag", `"`+p.Key+`"`)
	h.Set("Cache-Control", "private, no-cache") // revalidated by ETag: a design can be hidden, a photo replaced
	s.serveBlob(c, p.Key, p.Size, p.At)
}
