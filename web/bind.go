package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/gin-gonic/gin"
)

// bindJSON decodes the request body into v. On a bad body it answers (400 malformed
// JSON or an unknown field; a body over the limit or too slow as every body is, by
// classify) and returns false.
func (s *Server) bindJSON(c *gin.Context, v any) bool {
	// Only a JSON content type: a browser sends that cross-site only after a CORS
	// preflight this hub never grants, so no other site can post these bodies (a
	// text/plain form can be made to look like JSON).
	if mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type")); mt != "application/json" {
		abort(c, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as JSON, with Content-Type: application/json")
		return false
	}
	err := decodeJSON(c.Request.Body, v)
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, errTooSlow), errors.As(err, &tooBig):
		s.fail(c, err)
	case errors.Is(err, io.EOF):
		abort(c, http.StatusBadRequest, "malformed_json", "the request body is empty; send a JSON object")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		abort(c, http.StatusBadRequest, "malformed_json", "the request body is not valid JSON: "+err.Error())
	case errors.As(err, &typ):
		abort(c, http.StatusBadRequest, "malformed_json", fmt.Sprintf("field %q: want a JSON %s", typ.Field, typ.Type))
	default:
		abort(c, http.StatusBadRequest, "malformed_json", err.Error())
	}
	return false
}

// decodeJSON reads one JSON value from body into v, refusing fields v does not have
// and anything after the value.
func decodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	// Only white space may follow. (Decoder.More alone says no more before a stray
	// closing bracket or brace, and such a body was taken.)
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more than one JSON value in the body")
	}
	return nil
}
