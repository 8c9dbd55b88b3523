package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/web/account"
)

// apiError is the one error shape of the API: {"error":{"code","message"}}, plus the
// offending field where there is one.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// abort answers with an error and stops the handler chain.
func abort(c *gin.Context, status int, code, message string) {
	c.AbortWithStatusJSON(status, gin.H{"error": apiError{Code: code, Message: message}})
}

// Errors that web itself raises.
var (
	errLoginRequired = errors.New("log in, or send an API token as 'Authorization: Bearer <token>'")
	errForbidden     = errors.New("you may not do this")
)

// fail maps an error from a service to its HTTP status and the JSON error shape. Domain
// errors say what they are by behaviour (InvalidField, RetryAfter) or by sentinel;
// anything else is a 500 whose details go to the log, not the client.
func (s *Server) fail(c *gin.Context, err error) {
	var invalid interface{ InvalidField() string }
	var throttled interface{ RetryAfter() time.Duration }
	var bad *badRequest
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		// The client went away (an agent's poll cut short, a closed tab): nothing to answer.
		c.Abort()
	case errors.As(err, &bad):
		abort(c, http.StatusBadRequest, "bad_request", bad.msg)
	case errors.As(err, &tooBig):
		abort(c, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the request body is over %d bytes", tooBig.Limit))
	case errors.As(err, &invalid):
		c.AbortWithStatusJSON(http.StatusUnprocessableEntity, gin.H{"error": apiError{
			Code: "invalid", Message: err.Error(), Field: invalid.InvalidField()}})
	case errors.As(err, &throttled):
		c.Header("Retry-After", strconv.Itoa(int(throttled.RetryAfter().Seconds()+0.999)))
		abort(c, http.StatusTooManyRequests, "rate_limited", err.Error())
	case errors.Is(err, account.ErrBadCredentials), errors.Is(err, account.ErrUnauthenticated), errors.Is(err, errLoginRequired):
		abort(c, http.StatusUnauthorized, "unauthenticated", err.Error())
	case errors.Is(err, fabrication.ErrStaleLease):
		abort(c, http.StatusConflict, "stale_lease", err.Error())
	case errors.Is(err, fabrication.ErrUnsupported):
		abort(c, http.StatusBadRequest, "unsupported_protocol", err.Error())
	case errors.Is(err, errForbidden), errors.Is(err, catalog.ErrForbidden), errors.Is(err, fabrication.ErrForbidden):
		abort(c, http.StatusForbidden, "forbidden", err.Error())
	case errors.Is(err, storage.ErrNotFound):
		abort(c, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, storage.ErrConflict):
		abort(c, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, storage.ErrTooLarge):
		abort(c, http.StatusRequestEntityTooLarge, "too_large", err.Error())
	default:
		s.log.Error("request failed", "request_id", c.GetString(ctxRequestID), "route", c.FullPath(), "err", err)
		abort(c, http.StatusInternalServerError, "internal", "something went wrong on our side; the request ID is "+c.GetString(ctxRequestID))
	}
}

// rateLimited is a web-level rate limit (as opposed to the login throttle).
type rateLimited struct{ wait time.Duration }

func (e *rateLimited) Error() string {
	return fmt.Sprintf("too many requests: try again in %s", e.wait.Round(time.Second))
}
func (e *rateLimited) RetryAfter() time.Duration { return e.wait }
