package web

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// serveBlob answers with a stored blob through http.ServeContent (ranges, If-Range,
// conditional requests), the caller having set its ETag and type. ServeContent writes
// its status before it reads the blob, so the status is held back until the first
// byte of the body is ready: a store that fails before that (away: 503; the blob
// missing: 404) gets its own status and the JSON error shape, not a 200 with an empty
// body. A store that fails mid-body can only cut the answer short; the client sees
// fewer bytes than Content-Length said and may ask for the rest with a Range.
func (s *Server) serveBlob(c *gin.Context, key string, size int64, modtime time.Time) {
	rs := &blobSeeker{ctx: c.Request.Context(), open: s.catalog.OpenBlob, key: key, size: size}
	defer rs.Close()
	w := &heldStatus{ResponseWriter: c.Writer}
	http.ServeContent(w, c.Request, "", modtime, rs)
	if w.sent {
		return
	}
	if rs.err != nil {
		h := c.Writer.Header()
		for _, name := range []string{"Content-Length", "Content-Range", "Content-Type", "Content-Disposition", "Accept-Ranges", "Last-Modified", "ETag", "Cache-Control"} {
			h.Del(name)
		}
		s.fail(c, rs.err)
		return
	}
	w.send() // nothing to read: HEAD, 304, an empty blob
}

// heldStatus holds a status back until the first byte of the body (or send).
type heldStatus struct {
	http.ResponseWriter
	status int
	sent   bool
}

func (w *heldStatus) WriteHeader(status int) { w.status = status }

func (w *heldStatus) Write(p []byte) (int, error) {
	w.send()
	return w.ResponseWriter.Write(p)
}

func (w *heldStatus) send() {
	if !w.sent {
		w.sent = true
		w.ResponseWriter.WriteHeader(max(w.status, http.StatusOK))
	}
}

// blobSeeker is an io.ReadSeeker over a stored blob, for http.ServeContent: a seek only
// moves the offset; the next read opens the blob there (one request for a Range).
type blobSeeker struct {
	ctx  context.Context
	open func(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	key  string
	size int64
	off  int64
	rc   io.ReadCloser
	err  error // the first error the store gave, io.EOF aside
}

func (b *blobSeeker) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	if b.rc == nil {
		rc, err := b.open(b.ctx, b.key, b.off, -1)
		if err != nil {
			b.err = cmp.Or(b.err, err)
			return 0, err
		}
		b.rc = rc
	}
	n, err := b.rc.Read(p)
	b.off += int64(n)
	if err != nil && err != io.EOF {
		b.err = cmp.Or(b.err, err)
	}
	return n, err
}

func (b *blobSeeker) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += b.off
	case io.SeekEnd:
		offset += b.size
	}
	if offset < 0 {
		return 0, errors.New("seek before the start")
	}
	if offset != b.off && b.rc != nil {
		b.rc.Close()
		b.rc = nil
	}
	b.off = offset
	return offset, nil
}

func (b *blobSeeker) Close() error {
	if b.rc != nil {
		return b.rc.Close()
	}
	return nil
}
