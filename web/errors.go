package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
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

// errLoginRequired is the answer to a call that needs someone logged in.
var errLoginRequired = errors.New("log in, or send an API token as 'Authorization: Bearer <token>'")

// fail maps an error from a service to its HTTP status and the JSON error shape. Errors
// say what they are by the kinds of package storage (and the protocol errors agents act
// on), or by behaviour (RetryAfter); anything else is a 500 whose details go to the log,
// not the client.
func (s *Server) fail(c *gin.Context, err error) {
	status, e := s.classify(c, err)
	if status == 0 {
		c.Abort()
		return
	}
	s.refuse(c, status, e)
}

// classify maps an error to its status and error body, for the API's JSON and the
// pages' HTML alike. Status 0 means the client went away and nothing is to be said.
func (s *Server) classify(c *gin.Context, err error) (int, apiError) {
	var invalid interface{ InvalidField() string }
	var throttled interface{ RetryAfter() time.Duration }
	var bad *badRequest
	var tooBig *http.MaxBytesError
	var short *fabrication.InsufficientCredit
	var media *unsupportedMedia
	switch {
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		// The client went away (an agent's poll cut short, a closed tab): nothing to answer.
		return 0, apiError{}
	case errors.As(err, &bad):
		return http.StatusBadRequest, apiError{Code: "bad_request", Message: bad.msg}
	case errors.Is(err, errTooSlow):
		return http.StatusRequestTimeout, apiError{Code: "too_slow", Message: err.Error()}
	case errors.As(err, &media):
		return http.StatusUnsupportedMediaType, apiError{Code: "unsupported_media_type", Message: err.Error()}
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, apiError{Code: "too_large", Message: fmt.Sprintf("the request body is over %d bytes", tooBig.Limit)}
	case errors.Is(err, storage.ErrInvalid):
		e := apiError{Code: "invalid", Message: err.Error()}
		if errors.As(err, &invalid) {
			e.Field = invalid.InvalidField()
		}
		return http.StatusUnprocessableEntity, e
	case errors.As(err, &throttled):
		c.Header("Retry-After", strconv.Itoa(int(throttled.RetryAfter().Seconds()+0.999)))
		return http.StatusTooManyRequests, apiError{Code: "rate_limited", Message: err.Error()}
	case errors.Is(err, account.ErrBadCredentials), errors.Is(err, account.ErrUnauthenticated), errors.Is(err, errLoginRequired):
		return http.StatusUnauthorized, apiError{Code: "unauthenticated", Message: err.Error()}
	case errors.Is(err, federation.ErrBadSignature):
		return http.StatusUnauthorized, apiError{Code: "bad_signature", Message: err.Error()}
	case errors.Is(err, catalog.ErrOrigin):
		return http.StatusBadGateway, apiError{Code: "bad_origin", Message: err.Error()}
	case errors.Is(err, federation.ErrOff):
		return http.StatusNotFound, apiError{Code: "federation_off", Message: err.Error()}
	case errors.Is(err, fabrication.ErrStaleLease):
		return http.StatusConflict, apiError{Code: agentapi.CodeStaleLease, Message: err.Error()}
	case errors.Is(err, fabrication.ErrUnsupported):
		return http.StatusUpgradeRequired, apiError{Code: agentapi.CodeUnsupportedProtocol, Message: err.Error()}
	case errors.As(err, &short):
		return http.StatusConflict, apiError{Code: "insufficient_credit", Message: err.Error()}
	case errors.Is(err, storage.ErrForbidden):
		return http.StatusForbidden, apiError{Code: "forbidden", Message: err.Error()}
	case errors.Is(err, storage.ErrNotFound):
		return http.StatusNotFound, apiError{Code: "not_found", Message: err.Error()}
	case errors.Is(err, storage.ErrConflict):
		return http.StatusConflict, apiError{Code: "conflict", Message: err.Error()}
	case errors.Is(err, storage.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, apiError{Code: "too_large", Message: err.Error()}
	case storage.IsFull(err):
		s.log.Error("storage full: a write was refused", "request_id", c.GetString(ctxRequestID), "route", c.FullPath(), "err", err)
		return http.StatusInsufficientStorage, apiError{Code: "insufficient_storage",
			Message: "the hub's storage is full, so nothing of this request was saved; try again once its operators have made room"}
	case errors.Is(err, storage.ErrUnavailable):
		c.Header("Retry-After", "5")
		return http.StatusServiceUnavailable, apiError{Code: "unavailable", Message: err.Error()}
	}
	s.log.Error("request failed", "request_id", c.GetString(ctxRequestID), "route", c.FullPath(), "err", err)
	return http.StatusInternalServerError, apiError{Code: "internal", Message: "something went wrong on our side; the request ID is " + c.GetString(ctxRequestID)}
}

// rateLimited is a web-level rate limit (as opposed to the login throttle).
type rateLimited struct{ wait time.Duration }

func (e *rateLimited) Error() string {
	return fmt.Sprintf("too many requests: try again in %s", e.wait.Round(time.Second))
}
func (e *rateLimited) RetryAfter() time.Duration { return e.wait }
