package federation

import (
	"errors"
	"strings"
	"testing"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/storage"
)

// FuzzActivity: whatever arrives at an inbox (after its signature verified, so from
// anyone with a key) is read into an Activity or refused as storage.ErrInvalid, never
// a panic; what is read has a type and an http(s) actor. The same bytes read as an
// actor document are an actor with an http(s) id and inbox and an RSA key, or refused.
func FuzzActivity(f *testing.F) {
	f.Add([]byte(`{"@context":"https://www.w3.org/ns/activitystreams","id":"https://m.example/f/1","type":"Follow","actor":"https://m.example/users/a","object":"https://hub.example/ap/actor"}`))
	f.Add([]byte(`{"type":["Accept"],"actor":{"id":"https://b.example/ap/actor"},"object":{"id":"https://a.example/ap/follows/x","type":"Follow","actor":"https://a.example/ap/actor","object":"https://b.example/ap/actor"}}`))
	f.Add([]byte(`{"type":"Undo","actor":["https://m.example/u/a"],"object":[{"type":"Follow","object":["https://hub.example/labs/x"]}]}`))
	f.Add([]byte(`{"id":"https://m.example/u/a","type":"Person","inbox":"https://m.example/u/a/inbox","publicKey":[{"id":"https://m.example/u/a#main-key","owner":"https://m.example/u/a","publicKeyPem":"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"type":1,"actor":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseActivity(data)
		if err != nil {
			if !errors.Is(err, storage.ErrInvalid) {
				t.Fatalf("ParseActivity: got %v, want ErrInvalid or an activity", err)
			}
		} else if a.Type == "" || !isHTTPURL(a.Actor) {
			t.Fatalf("ParseActivity read %+v: want a type and an http(s) actor", a)
		}
		actor, err := ParseActor(data, "")
		if err != nil {
			if !errors.Is(err, storage.ErrInvalid) {
				t.Fatalf("ParseActor: got %v, want ErrInvalid or an actor", err)
			}
			return
		}
		if !isHTTPURL(actor.ID) || !isHTTPURL(actor.Inbox) || actor.key == nil || actor.key.N.BitLen() < 2048 {
			t.Fatalf("ParseActor read %+v: want an http(s) id and inbox and an RSA key of 2048 bits or more", actor)
		}
	})
}

// FuzzDesignObject: a design object from anyone a hub follows is read into a remote
// design or refused as storage.ErrInvalid, never a panic; what is read has its id,
// page and author on http(s) URLs, an origin hub that is the id's host, and no more
// files, BOM lines or parents than the limits; catalog's Check then says yes or no in
// words, never panics.
func FuzzDesignObject(f *testing.F) {
	f.Add([]byte(`{"id":"https://a.example/designs/clip","type":"Document","fab:version":2,"attributedTo":"https://a.example/people/ada","name":"Clip","spdx:licenseId":"MIT",` +
		`"attachment":[{"type":"Document","name":"clip.stl","url":"https://a.example/f/clip.stl","fab:sha256":"` + strings.Repeat("a", 64) + `","fab:size":684}],` +
		`"fab:bom":[{"ref":"C1","kind":"printed","name":"Clip","qty":2,"file":"clip.stl"}],"fab:parents":[{"id":"https://b.example/designs/x","fab:version":1}],"tag":[{"type":"Hashtag","name":"#clip"}]}`))
	f.Add([]byte(`{"id":"https://a.example/d","type":["Document"],"fab:version":1e99,"attributedTo":{"id":"https://a.example/people/x"},"attachment":[1,"x"],"fab:bom":{"ref":1}}`))
	f.Add([]byte(`{"type":"Note","content":"hello"}`))
	f.Add([]byte(`{"type":"Document","fab:version":"1"}`))
	f.Add([]byte(`{"id":"https://e.example/designs/x","type":"Document","fab:version":1,"attributedTo":"https://e.example/people/m%0A%0A%23%20x","name":"X","spdx:licenseId":"MIT"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, author, err := ParseDesignObject(data)
		if err != nil {
			if !errors.Is(err, storage.ErrInvalid) {
				t.Fatalf("ParseDesignObject: got %v, want ErrInvalid or a design", err)
			}
			return
		}
		if !isHTTPURL(r.Origin.Object) || !isHTTPURL(r.Origin.URL) || !isHTTPURL(author) || r.Origin.Hub != hostOf(r.Origin.Object) {
			t.Fatalf("ParseDesignObject read %+v by %s: want http(s) id, url and author, and the id's host as its hub", r.Origin, author)
		}
		if len(r.Files) > catalog.MaxRemoteFiles || len(r.BOM) > catalog.MaxRemoteBOM || len(r.Parents) > catalog.MaxRemoteParents {
			t.Fatalf("ParseDesignObject read %d files, %d BOM lines, %d parents: over the limits", len(r.Files), len(r.BOM), len(r.Parents))
		}
		if strings.ContainsFunc(r.Author, func(c rune) bool { return c < ' ' || c == 0x7f }) {
			t.Fatalf("ParseDesignObject read the author %q: a handle with control characters would write lines into ATTRIBUTION.md", r.Author)
		}
		if err := r.Check(catalog.DefaultLimits); err != nil && !errors.Is(err, storage.ErrInvalid) {
			t.Fatalf("Check: got %v, want ErrInvalid or nil", err)
		}
	})
}
