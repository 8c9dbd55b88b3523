package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
	"github.com/fabcommons/fabcommons/storage"
)

// FuzzUploadMeta: an upload's meta field (of a new design, or of a new version when
// version is true) is read and checked as the upload handlers do, or refused: a meta
// field that cannot be read is a bad request saying so, a description that breaks a
// rule is an invalid-request error naming its field. What is accepted is one JSON
// object within the size limit and the text limits, and it reads back the same once
// written again.
func FuzzUploadMeta(f *testing.F) {
	f.Add([]byte(`{"title":"Spool holder","summary":"Holds a 1 kg spool","tags":["spool","fdm"],"license":"CERN-OHL-S-2.0"}`), false)
	f.Add([]byte(`{"message":"Thicker walls","remove":["parts/old.stl"],"license":"CC-BY-SA-4.0"}`), true)
	f.Fuzz(func(t *testing.T, data []byte, version bool) {
		var meta interface{ Check() error }
		if version {
			meta = &catalog.NewVersion{}
		} else {
			meta = &catalog.NewDesign{}
		}
		if err := decodeMeta(bytes.NewReader(data), meta); err != nil {
			var bad *badRequest
			if !errors.As(err, &bad) || !strings.Contains(bad.msg, "meta field") {
				t.Fatalf("a meta field that cannot be read: got %T %v, want a bad request about the meta field", err, err)
			}
			return
		}
		if len(data) > maxMetaBytes || !json.Valid(data) {
			t.Fatalf("accepted %d bytes that are not one JSON value within %d bytes: %.200q", len(data), maxMetaBytes, data)
		}
		if err := meta.Check(); err != nil {
			var inv *storage.InvalidError
			if !errors.Is(err, storage.ErrInvalid) || !errors.As(err, &inv) || inv.Field == "" {
				t.Fatalf("a refused description: got %T %v, want an invalid-request error naming its field", err, err)
			}
			return
		}
		switch m := meta.(type) {
		case *catalog.NewDesign:
			if n := utf8.RuneCountInString(m.Title); n == 0 || n > 200 || utf8.RuneCountInString(m.Summary) > 5000 || len(m.Parents) > 20 {
				t.Fatalf("accepted a description past its limits: %+v", m)
			}
			if m.Slug != "" && !catalog.ValidSlug(m.Slug) {
				t.Fatalf("accepted the slug %q", m.Slug)
			}
		case *catalog.NewVersion:
			if n := utf8.RuneCountInString(m.Message); n == 0 || n > 2000 {
				t.Fatalf("accepted a message of %d characters", n)
			}
		}
		again := reflect.New(reflect.TypeOf(meta).Elem()).Interface().(interface{ Check() error })
		b, err := json.Marshal(meta)
		if err != nil {
			t.Fatalf("encode %+v: %v", meta, err)
		}
		if err := decodeMeta(bytes.NewReader(b), again); err != nil || !reflect.DeepEqual(meta, again) {
			t.Fatalf("accepted %+v, written as %s, reads back as %+v, %v", meta, b, again, err)
		}
		if err := again.Check(); err != nil {
			t.Fatalf("accepted %+v, but read back it is refused: %v", meta, err)
		}
	})
}

// FuzzAgentRequest: a poll (or a report, when event is true) as the hub reads and
// checks it from an agent, or refuses it: a body that is not the message is an error
// saying why; a message that breaks the contract is a FieldError naming its field.
// What is accepted is one JSON value, within the contract's limits, and it reads back
// the same once written again.
func FuzzAgentRequest(f *testing.F) {
	f.Add([]byte(`{"protocol":2,"state":"idle","jobs":[],"wait_s":30}`), false)
	f.Add([]byte(`{"protocol":2,"state":"busy","jobs":[{"id":"7f3c","lease":"l-1","state":"printing","progress":42.5,"message":"layer 40 of 100"}]}`), false)
	f.Add([]byte(`{"lease":"l-1","kind":"progress","progress":40,"message":"layer 40","estimate":{"seconds":1800,"filament_mm":2300}}`), true)
	f.Add([]byte(`{"lease":"l-1","kind":"failed","progress":12,"message":"clogged nozzle","retryable":true}`), true)
	f.Fuzz(func(t *testing.T, data []byte, event bool) {
		var msg interface{ Check() error }
		if event {
			msg = &agentapi.EventRequest{}
		} else {
			msg = &agentapi.PollRequest{}
		}
		if err := decodeJSON(bytes.NewReader(data), msg); err != nil {
			if err.Error() == "" {
				t.Fatal("refused with an empty error")
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted %.200q, which is not one JSON value", data)
		}
		if err := msg.Check(); err != nil {
			var fe *agentapi.FieldError
			if !errors.As(err, &fe) || fe.Field == "" || fe.Message == "" {
				t.Fatalf("a refused message: got %T %v, want a FieldError naming its field", err, err)
			}
			return
		}
		switch m := msg.(type) {
		case *agentapi.PollRequest:
			if len(m.Jobs) > agentapi.MaxHeldJobs || m.WaitSeconds < 0 {
				t.Fatalf("accepted a poll past its limits: %d jobs, wait %d", len(m.Jobs), m.WaitSeconds)
			}
			for _, h := range m.Jobs {
				if h.ID == "" || h.Progress < 0 || h.Progress > 100 || (h.State != agentapi.HeldGone && utf8.RuneCountInString(h.Message) > agentapi.MaxMessage) {
					t.Fatalf("accepted a held job past its limits: %+v", h)
				}
			}
		case *agentapi.EventRequest:
			if m.Progress < 0 || m.Progress > 100 || utf8.RuneCountInString(m.Message) > agentapi.MaxMessage {
				t.Fatalf("accepted a report past its limits: %+v", m)
			}
			// The hub turns a usable estimate into a duration: it must not overflow.
			if e := m.Estimate; e.Usable() && time.Duration(e.Seconds*float64(time.Second)) < 0 {
				t.Fatalf("a usable estimate of %g s overflows a duration", e.Seconds)
			}
		}
		b, err := json.Marshal(msg)
		if err != nil {
			t.Fatalf("encode %+v: %v", msg, err)
		}
		again := reflect.New(reflect.TypeOf(msg).Elem()).Interface().(interface{ Check() error })
		if err := decodeJSON(bytes.NewReader(b), again); err != nil || !reflect.DeepEqual(msg, again) {
			t.Fatalf("accepted %+v, written as %s, reads back as %+v, %v", msg, b, again, err)
		}
		if err := again.Check(); err != nil {
			t.Fatalf("accepted %+v, but read back it is refused: %v", msg, err)
		}
	})
}
