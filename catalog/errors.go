package catalog

import (
	"errors"
	"fmt"
)

// InvalidError says which part of a request is wrong and why.
type InvalidError struct {
	Field   string
	Message string
}

func (e *InvalidError) Error() string        { return fmt.Sprintf("%s: %s", e.Field, e.Message) }
func (e *InvalidError) InvalidField() string { return e.Field }

// ErrForbidden is the answer to an action the caller may not take (adding a version
// to someone else's design, forking a design whose license forbids it).
var ErrForbidden = errors.New("forbidden")
