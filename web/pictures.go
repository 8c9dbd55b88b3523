package web

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/catalog/picture"
)

// Pictures: the gallery on a design page shows the version's images, never as they
// were uploaded but decoded and encoded afresh (catalog/picture), scaled to one of two
// sizes and kept by hash and size. Re-encoding a 50-megapixel photo takes about a
// second and 200 MB, so at most two are made at a time (the "thumbnails" gate bounds
// how many wait).
var pictureSides = map[string]int{"small": 480, "large": 1600}

// picture: GET /api/v1/designs/{slug}/versions/{n}/pictures/{path}?size=small|large.
func (s *Server) picture(c *gin.Context) {
	_, v, ok := s.version(c)
	if !ok {
		return
	}
	size := c.DefaultQuery("size", "large")
	side, known := pictureSides[size]
	if !known {
		abort(c, http.StatusBadRequest, "invalid", "size is small or large")
		return
	}
	p := strings.TrimPrefix(c.Param("path"), "/")
	f, found := v.File(p)
	if !found || f.Picture == nil {
		abort(c, http.StatusNotFound, "not_found", fmt.Sprintf("version %d has no picture %q", v.Number, p))
		return
	}
	etag := `"pic1-` + size + "-" + f.SHA256 + `"`
	c.Header("ETag", etag)
	if c.GetHeader("If-None-Match") == etag {
		c.Status(http.StatusNotModified)
		return
	}
	pic, err := s.pics.get(c.Request.Context(), f.SHA256+"/"+size, func() (picture.Picture, error) {
		rs := &blobSeeker{ctx: c.Request.Context(), open: s.catalog.OpenBlob, key: f.SHA256, size: f.Size}
		defer rs.Close()
		return picture.Fit(rs, "picture", side)
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	c.Data(http.StatusOK, pic.ContentType, pic.Data)
}
