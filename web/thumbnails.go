package web

import (
	"bytes"
	"image"
	"image/png"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/catalog/mesh"
)

// Thumbnails: the cards on the home and search pages show each design's first mesh,
// drawn on the hub (catalog/mesh.Thumbnail) the first time it is asked for and kept
// by the file's hash. Drawing streams the mesh, so a 100 MB file costs about half a
// second once; at most two are drawn at a time.
const thumbW, thumbH = 240, 180

type thumbnails struct {
	mu     sync.Mutex
	byHash map[string][]byte
	draw   chan struct{} // drawing slots
}

var emptyThumb = func() []byte {
	var b bytes.Buffer
	png.Encode(&b, image.NewNRGBA(image.Rect(0, 0, 1, 1)))
	return b.Bytes()
}()

func (s *Server) thumbnail(c *gin.Context) {
	d, v, err := s.catalog.Design(c.Request.Context(), actorOf(c), c.Param("slug"))
	if err != nil {
		s.fail(c, err)
		return
	}
	var f *catalog.File
	if v != nil {
		for i := range v.Files {
			if v.Files[i].Mesh != nil {
				f = &v.Files[i]
				break
			}
		}
	}
	c.Header("Cache-Control", "private, no-cache") // revalidated by ETag: a design can be hidden
	if f == nil {
		c.Data(http.StatusOK, "image/png", emptyThumb)
		return
	}
	etag := `"thumb1-` + f.SHA256 + `"`
	c.Header("ETag", etag)
	if c.GetHeader("If-None-Match") == etag {
		c.Status(http.StatusNotModified)
		return
	}
	png, err := s.thumbs.get(c, s, d, *f)
	if err != nil {
		s.log.Warn("thumbnail not drawn", "design", d.Slug, "file", f.Path, "err", err)
		png = emptyThumb
	}
	c.Data(http.StatusOK, "image/png", png)
}

func (t *thumbnails) get(c *gin.Context, s *Server, d catalog.Design, f catalog.File) ([]byte, error) {
	t.mu.Lock()
	if b, ok := t.byHash[f.SHA256]; ok {
		t.mu.Unlock()
		return b, nil
	}
	t.mu.Unlock()
	select {
	case t.draw <- struct{}{}:
		defer func() { <-t.draw }()
	case <-c.Request.Context().Done():
		return nil, c.Request.Context().Err()
	}
	rs := &blobSeeker{ctx: c.Request.Context(), open: s.catalog.OpenBlob, key: f.SHA256, size: f.Size}
	defer rs.Close()
	img, err := mesh.Thumbnail(rs, f.Mesh.BBox, thumbW, thumbH)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.byHash == nil || len(t.byHash) >= 2048 {
		t.byHash = map[string][]byte{}
	}
	t.byHash[f.SHA256] = b.Bytes()
	t.mu.Unlock()
	return b.Bytes(), nil
}
