package web

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"
)

const ctxRequestID = "request_id"

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

// requestID takes a well-formed X-Request-ID from the caller (a proxy's) or makes one,
// and echoes it so a person reporting a problem can quote it.
func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if !requestIDRE.MatchString(id) {
		b := make([]byte, 8)
		rand.Read(b)
		id = hex.EncodeToString(b)
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-ID", id)
	c.Next()
}

// accessLog logs one line per request: never the query string, headers or body, which
// can carry secrets.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	s.log.Info("request",
		"request_id", c.GetString(ctxRequestID),
		"method", c.Request.Method,
		"path", c.Request.URL.Path,
		"status", c.Writer.Status(),
		"bytes", c.Writer.Size(),
		"duration_ms", time.Since(start).Milliseconds(),
		"client", c.ClientIP())
}

// recoverPanic turns a panic into a 500 in the API's error shape and logs the stack.
func (s *Server) recoverPanic(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("panic", "request_id", c.GetString(ctxRequestID), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				abort(c, http.StatusInternalServerError, "internal", "something went wrong on our side; the request ID is "+c.GetString(ctxRequestID))
			}
			c.Abort()
		}
	}()
	c.Next()
}

// limitBody caps request bodies. A declared length over the cap is refused before any
// of it is read; an undeclared one fails when the cap is crossed.
func (s *Server) limitBody(c *gin.Context) {
	limit := s.cfg.MaxBodyBytes
	if l, ok := s.bodyLimits[c.FullPath()]; ok {
		limit = l
	}
	if c.Request.ContentLength > limit {
		abort(c, http.StatusRequestEntityTooLarge, "too_large", "the request body is over "+strconv.FormatInt(limit, 10)+" bytes")
		return
	}
	c.Request.Body = &minRateReader{ReadCloser: http.MaxBytesReader(c.Writer, c.Request.Body, limit),
		rate: s.cfg.MinBodyRate, grace: s.cfg.BodyRateGrace, start: time.Now(), rc: http.NewResponseController(c.Writer)}
	c.Next()
}

// errTooSlow ends a body that arrives slower than the hub's minimum rate: a client
// that trickles bytes would otherwise hold a connection (and an upload's temporary
// file) as long as it liked.
var errTooSlow = errors.New("the request body arrives too slowly")

// minRateReader fails once, past a grace period, fewer than rate bytes a second have
// arrived on average.
type minRateReader struct {
	io.ReadCloser
	rate  int64 // bytes per second; 0 turns the check off
	grace time.Duration
	start time.Time
	n     int64
	rc    *http.ResponseController
}

func (r *minRateReader) Read(p []byte) (int, error) {
	if r.rate > 0 {
		// A body that stops arriving would block a read forever: no read waits longer
		// than the grace period. The deadline is lifted after the read, so a handler
		// that waits after reading (a long poll) is not cut off.
		r.rc.SetReadDeadline(time.Now().Add(r.grace))
		defer r.rc.SetReadDeadline(time.Time{})
	}
	n, err := r.ReadCloser.Read(p)
	if r.rate > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		return n, fmt.Errorf("%w: nothing arrived for %s", errTooSlow, r.grace)
	}
	r.n += int64(n)
	if r.rate > 0 && err == nil {
		if el := time.Since(r.start); el > r.grace && float64(r.n) < float64(r.rate)*el.Seconds() {
			return n, fmt.Errorf("%w: %d bytes in %s, want at least %d bytes a second", errTooSlow, r.n, el.Round(time.Millisecond), r.rate)
		}
	}
	return n, err
}

// gate bounds how many requests of one kind run at once. A request that finds every
// place taken is answered 503 with Retry-After at once: expensive work never queues
// without limit, and the rest of the hub keeps answering.
type gate chan struct{}

func (g gate) handler(what string) gin.HandlerFunc {
	return func(c *gin.Context) {
		select {
		case g <- struct{}{}:
			defer func() { <-g }()
			c.Next()
		default:
			c.Header("Retry-After", "5")
			abort(c, http.StatusServiceUnavailable, "busy", "the hub is busy with other "+what+"; try again in a few seconds")
		}
	}
}

// writeDeadline keeps a download from being held by a client that does not read it:
// every write must go out within d.
func writeDeadline(d time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Writer = &deadlineWriter{ResponseWriter: c.Writer, rc: http.NewResponseController(c.Writer), d: d}
		c.Next()
	}
}

type deadlineWriter struct {
	gin.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// clientOf is the key per-client limits count under: the client's address, and for
// IPv6 its /64, since one household or host holds a whole /64 and could otherwise
// take a new address for every request.
func clientOf(c *gin.Context) string {
	ip := net.ParseIP(c.ClientIP())
	if ip == nil {
		return c.ClientIP()
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// analysisBudget bounds the bytes of meshes being analysed at once (uploads and mesh
// checks together): analysing a mesh takes up to about 2.1 times its size in memory
// (a binary triangle soup; see catalog/mesh), so a
// request takes its Content-Length from the budget (all of it when the length is
// unknown or larger) and is answered 503 with Retry-After when the rest is taken.
type analysisBudget struct {
	sem   *semaphore.Weighted
	total int64
}

func (b analysisBudget) handler(c *gin.Context) {
	release, ok := b.reserve(c.Request.ContentLength)
	if !ok {
		c.Header("Retry-After", "10")
		abort(c, http.StatusServiceUnavailable, "busy", "the hub is analysing other meshes; try again in a few seconds")
		return
	}
	defer release()
	c.Next()
}

// reserve takes w bytes from the budget (all of it when w is unknown or larger, at
// least 1 MiB), or is false when the rest is taken. Its release gives them back.
func (b analysisBudget) reserve(w int64) (release func(), ok bool) {
	if w <= 0 || w > b.total {
		w = b.total
	}
	w = max(w, min(1<<20, b.total))
	if !b.sem.TryAcquire(w) {
		return nil, false
	}
	return func() {
		defer b.sem.Release(w)
		if w >= releaseAfter {
			// The tables of a large analysis are garbage now. Collect them and give their
			// pages back to the OS before the budget lets the next analysis in: else the
			// next one's tables are laid out beside them and the hub's footprint grows by
			// a whole analysis.
			debug.FreeOSMemory()
		}
	}, true
}

// releaseAfter is the budget share above which an analysis's memory is given back at
// once.
const releaseAfter = 32 << 20
