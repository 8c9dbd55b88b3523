package federation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/fabcommons/fabcommons/storage"
)

// MaxActivityBytes is the largest inbound activity read: anything longer is refused
// before it is parsed (Mastodon's own limit for an inbox is 1 MiB; an activity is a few
// KiB).
const MaxActivityBytes = 256 << 10

// The media types of ActivityPub. A GET that accepts either is answered with JSON-LD.
const (
	MediaActivity = "application/activity+json"
	MediaLD       = `application/ld+json; profile="https://www.w3.org/ns/activitystreams"`
	contextAS     = "https://www.w3.org/ns/activitystreams"
	contextSec    = "https://w3id.org/security/v1"
	publicAddress = "https://www.w3.org/ns/activitystreams#Public"
)

// Activity is the part of an inbound activity the hub acts on. ActivityPub lets most
// properties be a URL, an embedded object or a list of either; Parse reduces each to
// what is needed.
type Activity struct {
	ID     string
	Type   string
	Actor  string // the id of the actor
	Object Object
}

// Object is an activity's object: its id, and when it was embedded, its type, its actor
// and its own object's id (an Accept's object is a Follow, whose object is us).
type Object struct {
	ID     string
	Type   string
	Actor  string
	Object string
}

// ParseActivity reads an activity. It is storage.ErrInvalid when the body is not one
// JSON object, is over MaxActivityBytes, or lacks a type, or an actor that is an
// http(s) URL.
func ParseActivity(data []byte) (Activity, error) {
	if len(data) > MaxActivityBytes {
		return Activity{}, storage.Invalid("activity", fmt.Sprintf("over %d bytes", MaxActivityBytes))
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return Activity{}, storage.Invalid("activity", "not a JSON object")
	}
	if dec.More() {
		return Activity{}, storage.Invalid("activity", "more than one JSON value")
	}
	a := Activity{ID: idOf(m["id"]), Type: typeOf(m["type"]), Actor: idOf(m["actor"])}
	if a.Type == "" {
		return Activity{}, storage.Invalid("type", "an activity needs a type")
	}
	if !isHTTPURL(a.Actor) {
		return Activity{}, storage.Invalid("actor", "an activity needs an actor that is an http(s) URL")
	}
	a.Object.ID = idOf(m["object"])
	if o, ok := first(m["object"]).(map[string]any); ok {
		a.Object.Type = typeOf(o["type"])
		a.Object.Actor = idOf(o["actor"])
		a.Object.Object = idOf(o["object"])
	}
	return a, nil
}

// first is v, or the first element when v is a list.
func first(v any) any {
	if l, ok := v.([]any); ok {
		if len(l) == 0 {
			return nil
		}
		return l[0]
	}
	return v
}

// idOf is the id a property names: itself when it is a string, its "id" when it is an
// object, the first element's when it is a list.
func idOf(v any) string {
	switch v := first(v).(type) {
	case string:
		return v
	case map[string]any:
		if id, ok := v["id"].(string); ok {
			return id
		}
	}
	return ""
}

// typeOf is an object's type: the string, or the first of a list of types.
func typeOf(v any) string {
	s, _ := first(v).(string)
	return s
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil
}

// hostOf is the host (with its port, if any) of an http(s) URL, lower-cased; "" for
// anything else.
func hostOf(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	return strings.ToLower(u.Host)
}

// blockedBy reports whether a block of host b covers host h: the same host, or, when b
// names no port, the same host name on any port.
func blockedBy(h, b string) bool {
	if h == b {
		return true
	}
	if strings.Contains(b, ":") && !strings.HasPrefix(b, "[") {
		return false // b has a port
	}
	name, _, ok := strings.Cut(h, ":")
	if strings.HasPrefix(h, "[") { // [v6]:port
		if i := strings.LastIndex(h, "]"); i > 0 {
			name, ok = h[:i+1], true
		}
	}
	return ok && name == b
}
