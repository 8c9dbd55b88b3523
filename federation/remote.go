package federation

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

// maxFetchBytes is the most of a remote document (an actor, a WebFinger answer) read.
const maxFetchBytes = 1 << 20

// RemoteActor is what the hub knows of an actor on another server: where to deliver
// to it and the key it signs with. It reads the actors of Mastodon, Manyfold (whose
// actors come from the federails gem) and other hubs alike.
type RemoteActor struct {
	ID                string `json:"id"`
	Type              string `json:"type"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Name              string `json:"name,omitempty"`
	Inbox             string `json:"inbox"`
	SharedInbox       string `json:"shared_inbox,omitempty"`
	Outbox            string `json:"outbox,omitempty"`
	Followers         string `json:"followers,omitempty"`
	URL               string `json:"url,omitempty"` // its page for people
	KeyID             string `json:"key_id"`
	key               *rsa.PublicKey
}

// ParseActor reads an actor document. keyID, when not "", picks which of its public
// keys to take (and must be one of them). It is storage.ErrInvalid when the document
// has no id, no inbox, or no RSA public key owned by the actor.
func ParseActor(data []byte, keyID string) (RemoteActor, error) {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return RemoteActor{}, storage.Invalid("actor", "not a JSON object")
	}
	str := func(k string) string { s, _ := first(m[k]).(string); return s }
	a := RemoteActor{ID: idOf(m["id"]), Type: typeOf(m["type"]), PreferredUsername: str("preferredUsername"), Name: str("name"),
		Inbox: idOf(m["inbox"]), Outbox: idOf(m["outbox"]), Followers: idOf(m["followers"]), URL: idOf(m["url"])}
	if ep, ok := m["endpoints"].(map[string]any); ok {
		a.SharedInbox = idOf(ep["sharedInbox"])
	}
	if !isHTTPURL(a.ID) || !isHTTPURL(a.Inbox) {
		return RemoteActor{}, storage.Invalid("actor", "an actor needs an id and an inbox that are http(s) URLs")
	}
	if a.SharedInbox != "" && !isHTTPURL(a.SharedInbox) {
		a.SharedInbox = ""
	}
	keys, ok := m["publicKey"].([]any)
	if !ok {
		keys = []any{m["publicKey"]}
	}
	for _, k := range keys {
		k, ok := k.(map[string]any)
		if !ok {
			continue
		}
		id, _ := k["id"].(string)
		owner, _ := k["owner"].(string)
		pemText, _ := k["publicKeyPem"].(string)
		if keyID != "" && id != keyID {
			continue
		}
		if owner != "" && owner != a.ID {
			return RemoteActor{}, storage.Invalid("publicKey", fmt.Sprintf("the key %s is owned by %s, not by the actor %s", id, owner, a.ID))
		}
		pub, err := parsePublicKey(pemText)
		if err != nil {
			return RemoteActor{}, err
		}
		a.KeyID, a.key = id, pub
		return a, nil
	}
	if keyID != "" {
		return RemoteActor{}, storage.Invalid("publicKey", fmt.Sprintf("the actor %s has no key %s", a.ID, keyID))
	}
	return RemoteActor{}, storage.Invalid("publicKey", fmt.Sprintf("the actor %s has no public key", a.ID))
}

// parsePublicKey reads an RSA public key in PEM, as PKIX ("PUBLIC KEY", what Mastodon
// publishes) or PKCS #1 ("RSA PUBLIC KEY").
func parsePublicKey(text string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(text))
	if block == nil {
		return nil, storage.Invalid("publicKeyPem", "not PEM")
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, storage.Invalid("publicKeyPem", "a PEM block of type "+block.Type)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if err != nil || !ok {
		return nil, storage.Invalid("publicKeyPem", "not an RSA public key")
	}
	if rsaPub.N.BitLen() < 2048 {
		return nil, storage.Invalid("publicKeyPem", fmt.Sprintf("an RSA key of %d bits; at least 2048 are needed", rsaPub.N.BitLen()))
	}
	return rsaPub, nil
}

// cachedKey is a signer's actor as fetched at a time.
type cachedKey struct {
	actor RemoteActor
	at    time.Time
}

// signer is the actor whose key keyID names, from the cache when it is younger than
// KeyTTL (cached is then true) unless fresh, else fetched. The actor document must
// come from the key id's host and own the key.
func (s *Service) signer(ctx context.Context, keyID string, fresh bool) (a RemoteActor, cached bool, err error) {
	now := s.opts.Clock()
	s.mu.Lock()
	c, ok := s.keys[keyID]
	s.mu.Unlock()
	if ok && !fresh && now.Sub(c.at) < s.opts.KeyTTL {
		return c.actor, true, nil
	}
	doc, _, _ := strings.Cut(keyID, "#")
	a, err = s.fetchActor(ctx, doc, keyID)
	if err != nil {
		return RemoteActor{}, false, fmt.Errorf("fetch the key %s: %w", keyID, err)
	}
	s.mu.Lock()
	if len(s.keys) >= maxCachedKeys {
		clear(s.keys) // a crude bound: refetching is cheap next to unbounded memory
	}
	s.keys[keyID] = cachedKey{actor: a, at: now}
	s.mu.Unlock()
	return a, false, nil
}

const maxCachedKeys = 10_000

// fetchActor gets and reads the actor document at rawURL; keyID, when not "", must be
// one of its keys. The actor's id must be on the host it was fetched from, which is not
// this hub's: its own actors are not remote, and what else it serves (files people
// uploaded) is no actor, whatever it says.
func (s *Service) fetchActor(ctx context.Context, rawURL, keyID string) (RemoteActor, error) {
	if strings.EqualFold(hostOf(rawURL), s.host) {
		return RemoteActor{}, storage.Invalid("actor", fmt.Sprintf("%s is on this hub, not another", rawURL))
	}
	data, err := s.fetch(ctx, rawURL, MediaActivity+", "+MediaLD)
	if err != nil {
		return RemoteActor{}, err
	}
	a, err := ParseActor(data, keyID)
	if err != nil {
		return RemoteActor{}, err
	}
	if hostOf(a.ID) != hostOf(rawURL) || hostOf(a.Inbox) == "" {
		return RemoteActor{}, storage.Invalid("actor", fmt.Sprintf("the actor fetched from %s says it is %s, on another host", rawURL, a.ID))
	}
	return a, nil
}

// errRemote is a remote server that answered but not with what was asked.
var errRemote = errors.New("the remote server refused")

// fetch GETs rawURL through the guard, signed as the instance actor (for servers that
// want signed fetches, as Mastodon in secure mode does), and returns at most
// maxFetchBytes of a 200 answer.
func (s *Service) fetch(ctx context.Context, rawURL, accept string) ([]byte, error) {
	if err := s.guard.CheckURL(rawURL); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", userAgent)
	if !strings.Contains(rawURL, "/.well-known/") {
		if err := s.signAs(ctx, req, nil, s.instance()); err != nil {
			return nil, err
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("GET %s: %w with %d %s", rawURL, errRemote, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	if strings.HasPrefix(accept, MediaActivity) && !isActivityType(resp.Header.Get("Content-Type")) {
		// As Mastodon (valid_activitypub_content_type? in app/helpers/jsonld_helper.rb):
		// a document served as anything else (a file someone uploaded) is not an actor.
		return nil, fmt.Errorf("GET %s: %w: it answered %q, not ActivityPub", rawURL, errRemote, resp.Header.Get("Content-Type"))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFetchBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	if len(data) > maxFetchBytes {
		return nil, fmt.Errorf("GET %s: %w: the answer is over %d bytes", rawURL, errRemote, maxFetchBytes)
	}
	return data, nil
}

// isActivityType reports whether a Content-Type is ActivityPub's: application/activity+json,
// or application/ld+json (with any profile).
func isActivityType(contentType string) bool {
	t, _, err := mime.ParseMediaType(contentType)
	return err == nil && (t == MediaActivity || t == "application/ld+json")
}

// Resolve finds the actor a follow target names: "@handle@host" (or "handle@host") by
// WebFinger; a hub's URL ("https://host" with no path) by WebFinger of its instance
// actor, acct:host@host; any other URL as an actor's id. Hosts are reached over https,
// except hosts FAB_FEDERATION_ALLOW_HOSTS allows, which are tried over http when
// https fails (test hubs and hubs on a LAN).
func (s *Service) Resolve(ctx context.Context, target string) (RemoteActor, error) {
	target = strings.TrimSpace(target)
	if !strings.Contains(target, "://") {
		handle, host, ok := strings.Cut(strings.TrimPrefix(target, "@"), "@")
		if !ok || handle == "" || host == "" || strings.ContainsAny(host, "/?#@") {
			return RemoteActor{}, storage.Invalid("target", "name a hub's URL, an actor's URL or @handle@host")
		}
		return s.webfinger(ctx, "https://"+host, "acct:"+handle+"@"+host)
	}
	u, err := url.Parse(target)
	if err != nil || !isHTTPURL(target) {
		return RemoteActor{}, storage.Invalid("target", "name a hub's URL, an actor's URL or @handle@host")
	}
	if u.Path == "" || u.Path == "/" {
		return s.webfinger(ctx, u.Scheme+"://"+u.Host, "acct:"+u.Host+"@"+u.Host)
	}
	return s.fetchActor(ctx, target, "")
}

// webfinger asks base's WebFinger for resource and fetches the actor it links.
func (s *Service) webfinger(ctx context.Context, base, resource string) (RemoteActor, error) {
	q := base + PathWebFinger + "?resource=" + url.QueryEscape(resource)
	data, err := s.fetch(ctx, q, "application/jrd+json, application/json")
	if err != nil && strings.HasPrefix(base, "https://") && s.guard.Allowed(hostName(base)) {
		base = "http://" + strings.TrimPrefix(base, "https://")
		q = base + PathWebFinger + "?resource=" + url.QueryEscape(resource)
		data, err = s.fetch(ctx, q, "application/jrd+json, application/json")
	}
	if err != nil {
		return RemoteActor{}, fmt.Errorf("webfinger %s: %w", resource, err)
	}
	var jrd JRD
	if err := json.Unmarshal(data, &jrd); err != nil {
		return RemoteActor{}, storage.Invalid("target", fmt.Sprintf("the WebFinger answer for %s is not JSON", resource))
	}
	for _, l := range jrd.Links {
		if l.Rel == "self" && (l.Type == MediaActivity || strings.HasPrefix(l.Type, "application/ld+json")) && isHTTPURL(l.Href) {
			return s.fetchActor(ctx, l.Href, "")
		}
	}
	return RemoteActor{}, storage.Invalid("target", fmt.Sprintf("the WebFinger answer for %s links no ActivityPub actor", resource))
}

// hostName is the host name of a URL, without its port.
func hostName(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
