package federation

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

// The paths the hub serves ActivityPub at; web's route table uses them. People and
// labs are known by their pages (/people/{handle}, /labs/{slug}), which answer an
// ActivityPub client with the actor; their inboxes and collections are under
// PathPeople and PathLabs.
const (
	PathWebFinger   = "/.well-known/webfinger"
	PathInstance    = "/ap/actor"  // the instance actor; its inbox, outbox and followers below
	PathSharedInbox = "/ap/inbox"  // every actor's sharedInbox
	PathPeople      = "/ap/people" // + /{handle}/inbox, /outbox, /followers
	PathLabs        = "/ap/labs"   // + /{slug}/inbox, /outbox, /followers
	PathFollows     = "/ap/follows"
	pathPersonPage  = "/people/"
	pathLabPage     = "/labs/"
	userAgent       = "fabcommons-federation/1"
)

// Local is one of this hub's actors.
type Local struct {
	Kind    string // KindInstance, KindPerson or KindLab
	Ref     string // what its key is stored under: "instance", "person:<user id>", "lab:<lab id>"
	Name    string // the handle or slug (the host, for the instance)
	Display string // a name for people to read
	Summary string
}

// Directory finds the people and labs of this hub. Person and Lab are
// storage.ErrNotFound for no such (or a disabled) person or lab.
type Directory interface {
	Person(ctx context.Context, handle string) (Local, error)
	Lab(ctx context.Context, slug string) (Local, error)
}

func (s *Service) instance() Local {
	return Local{Kind: KindInstance, Ref: KindInstance, Name: s.host, Display: s.host, Summary: "The fabcommons hub at " + s.host}
}

// ActorURL is the id of a local actor.
func (s *Service) ActorURL(l Local) string {
	switch l.Kind {
	case KindPerson:
		return s.base + pathPersonPage + l.Name
	case KindLab:
		return s.base + pathLabPage + l.Name
	}
	return s.base + PathInstance
}

// apBase is the URL the actor's inbox, outbox and followers are under.
func (s *Service) apBase(l Local) string {
	switch l.Kind {
	case KindPerson:
		return s.base + PathPeople + "/" + l.Name
	case KindLab:
		return s.base + PathLabs + "/" + l.Name
	}
	return s.base + PathInstance
}

// Instance is the hub's own actor.
func (s *Service) Instance() Local { return s.instance() }

// Person is a person's actor; storage.ErrNotFound when there is no such person.
func (s *Service) Person(ctx context.Context, handle string) (Local, error) {
	return s.dir.Person(ctx, handle)
}

// Lab is a lab's actor; storage.ErrNotFound when there is no such lab.
func (s *Service) Lab(ctx context.Context, slug string) (Local, error) { return s.dir.Lab(ctx, slug) }

// localOf is the local actor whose id is rawURL; storage.ErrNotFound when it names
// none of this hub's actors.
func (s *Service) localOf(ctx context.Context, rawURL string) (Local, error) {
	path, ok := strings.CutPrefix(rawURL, s.base)
	if !ok {
		return Local{}, fmt.Errorf("%s is not an actor of this hub: %w", rawURL, storage.ErrNotFound)
	}
	switch {
	case path == PathInstance:
		return s.instance(), nil
	case strings.HasPrefix(path, pathPersonPage):
		return s.dir.Person(ctx, strings.TrimPrefix(path, pathPersonPage))
	case strings.HasPrefix(path, pathLabPage):
		return s.dir.Lab(ctx, strings.TrimPrefix(path, pathLabPage))
	}
	return Local{}, fmt.Errorf("%s is not an actor of this hub: %w", rawURL, storage.ErrNotFound)
}

// ActorDocument is the ActivityPub document of a local actor: an Application for the
// instance, a Person, an Organization for a lab, each with its inbox, outbox,
// followers and public key (id <actor>#main-key).
func (s *Service) ActorDocument(ctx context.Context, l Local) (map[string]any, error) {
	k, _, err := s.keyOf(ctx, l)
	if err != nil {
		return nil, err
	}
	id, base := s.ActorURL(l), s.apBase(l)
	typ, page := "Application", s.base+"/"
	switch l.Kind {
	case KindPerson:
		typ, page = "Person", id
	case KindLab:
		typ, page = "Organization", id
	}
	return map[string]any{
		"@context":                  []any{contextAS, contextSec},
		"id":                        id,
		"type":                      typ,
		"preferredUsername":         l.Name,
		"name":                      l.Display,
		"summary":                   l.Summary,
		"url":                       page,
		"inbox":                     base + "/inbox",
		"outbox":                    base + "/outbox",
		"followers":                 base + "/followers",
		"manuallyApprovesFollowers": false,
		"discoverable":              l.Kind == KindLab, // labs are for finding; people choose (later)
		"endpoints":                 map[string]any{"sharedInbox": s.base + PathSharedInbox},
		"publicKey":                 map[string]any{"id": id + "#main-key", "owner": id, "publicKeyPem": k.PublicPEM},
	}, nil
}

// FollowersCollection is a local actor's followers: how many, not who (as Mastodon
// shows them to strangers).
func (s *Service) FollowersCollection(ctx context.Context, l Local) (map[string]any, error) {
	fs, err := s.store.Followers(ctx, l.Ref)
	if err != nil {
		return nil, err
	}
	return map[string]any{"@context": contextAS, "id": s.apBase(l) + "/followers", "type": "OrderedCollection",
		"totalItems": len(fs)}, nil
}

// JRD is a WebFinger answer (RFC 7033).
type JRD struct {
	Subject string    `json:"subject"`
	Aliases []string  `json:"aliases,omitempty"`
	Links   []JRDLink `json:"links"`
}

// JRDLink is one link of a JRD.
type JRDLink struct {
	Rel  string `json:"rel"`
	Type string `json:"type,omitempty"`
	Href string `json:"href,omitempty"`
}

// WebFinger answers a WebFinger query for resource: acct:<host>@<host> is the instance
// actor; acct:<name>@<host> is the person with that handle, else the lab with that
// slug (people come first: a lab whose slug is someone's handle is found by its URL,
// not by WebFinger); an actor's URL is itself. It is storage.ErrNotFound for anything
// else, and storage.ErrInvalid for a resource that is neither acct: nor a URL.
func (s *Service) WebFinger(ctx context.Context, resource string) (JRD, error) {
	var l Local
	var err error
	if acct, ok := strings.CutPrefix(resource, "acct:"); ok {
		name, host, found := strings.Cut(strings.TrimPrefix(acct, "@"), "@")
		if !found || !strings.EqualFold(host, s.host) {
			return JRD{}, fmt.Errorf("%s is not on this hub: %w", resource, storage.ErrNotFound)
		}
		switch {
		case strings.EqualFold(name, s.host):
			l = s.instance()
		default:
			l, err = s.dir.Person(ctx, name)
			if errors.Is(err, storage.ErrNotFound) {
				l, err = s.dir.Lab(ctx, name)
			}
			if errors.Is(err, storage.ErrNotFound) {
				err = fmt.Errorf("no person or lab %s on this hub: %w", name, storage.ErrNotFound)
			}
		}
	} else if isHTTPURL(resource) {
		l, err = s.localOf(ctx, resource)
	} else {
		return JRD{}, storage.Invalid("resource", "ask for acct:name@host or an actor's URL")
	}
	if err != nil {
		return JRD{}, err
	}
	id := s.ActorURL(l)
	page := id
	if l.Kind == KindInstance {
		page = s.base + "/"
	}
	return JRD{Subject: "acct:" + l.Name + "@" + s.host, Aliases: []string{id}, Links: []JRDLink{
		{Rel: "self", Type: MediaActivity, Href: id},
		{Rel: "http://webfinger.net/rel/profile-page", Type: "text/html", Href: page},
	}}, nil
}

// keyOf is a local actor's key pair, made (and stored) the first time it is needed.
// Each actor has its own: Mastodon takes a signature's key owner to be the actor of
// the activity, so a lab's Accept must be signed with the lab's key. Two hub replicas
// making one at once both store theirs; the second store is refused (ErrConflict) and
// that replica reads the first's.
func (s *Service) keyOf(ctx context.Context, l Local) (Key, *rsa.PrivateKey, error) {
	s.mu.Lock()
	c, ok := s.own[l.Ref]
	s.mu.Unlock()
	if ok {
		return c.key, c.priv, nil
	}
	k, err := s.store.Key(ctx, l.Ref)
	if errors.Is(err, storage.ErrNotFound) {
		// One key made at a time: anyone may ask for any person's actor, and each new
		// key costs a core some 100 ms.
		s.keygen <- struct{}{}
		k, err = s.newKey(l.Ref)
		<-s.keygen
		if err == nil {
			err = s.store.AddKey(ctx, k)
			if errors.Is(err, storage.ErrConflict) {
				k, err = s.store.Key(ctx, l.Ref)
			}
		}
	}
	if err != nil {
		return Key{}, nil, fmt.Errorf("the key of %s: %w", l.Ref, err)
	}
	block, _ := pem.Decode([]byte(k.PrivatePEM))
	if block == nil {
		return Key{}, nil, fmt.Errorf("the key of %s: its private key is not PEM", l.Ref)
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	rsaPriv, ok := priv.(*rsa.PrivateKey)
	if err != nil || !ok {
		return Key{}, nil, fmt.Errorf("the key of %s: its private key is not an RSA key", l.Ref)
	}
	s.mu.Lock()
	s.own[l.Ref] = ownKey{key: k, priv: rsaPriv}
	s.mu.Unlock()
	return k, rsaPriv, nil
}

type ownKey struct {
	key  Key
	priv *rsa.PrivateKey
}

// newKey makes an RSA key pair of KeyBits (2048) bits for owner.
func (s *Service) newKey(owner string) (Key, error) {
	priv, err := rsa.GenerateKey(rand.Reader, s.opts.KeyBits)
	if err != nil {
		return Key{}, err
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return Key{}, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return Key{}, err
	}
	return Key{Owner: owner,
		PublicPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		PrivatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})),
		CreatedAt:  s.opts.Clock().UTC().Truncate(time.Millisecond)}, nil
}

// parseBase checks a public URL and returns it without a trailing slash, and its host.
func parseBase(publicURL string) (base, host string, err error) {
	u, err := url.Parse(strings.TrimRight(publicURL, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", "", fmt.Errorf("the public URL %q must be http(s)://host[:port], with no path", publicURL)
	}
	return u.Scheme + "://" + strings.ToLower(u.Host), strings.ToLower(u.Host), nil
}
