package federation

import (
	"errors"
	"testing"

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
