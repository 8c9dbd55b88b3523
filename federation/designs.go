package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/storage"
)

// Designs is the catalog as federation uses it: where remote designs are kept, and
// this hub's own public designs, which outboxes list.
type Designs interface {
	MadeDesigns // makes.go
	PutRemote(ctx context.Context, r catalog.RemoteDesign) (catalog.Design, error)
	TombstoneRemote(ctx context.Context, object string) error
	DropRemoteHost(ctx context.Context, host string) (int, error)
	// Design is a design of the catalog by its slug, with its latest version (nil when
	// hidden), as anyone sees it.
	Design(ctx context.Context, a catalog.Actor, slug string) (catalog.Design, *catalog.Version, error)
	// Search is a page of the catalog's visible designs.
	Search(ctx context.Context, q catalog.Query) (catalog.Page, error)
	// Published is a page of this hub's own public, visible designs with their latest
	// versions, newest first (of one person when owner is not ""), and the cursor of
	// the next page ("" after the last).
	Published(ctx context.Context, owner, cursor string, limit int) ([]PublishedDesign, string, error)
}

// PublishedDesign is a local design with its latest version.
type PublishedDesign struct {
	Design  catalog.Design
	Version catalog.Version
}

// The kinds of news about a design that go out.
const (
	DesignCreated = "Create" // published, or shown again after it was hidden
	DesignUpdated = "Update" // a new version
	DesignDeleted = "Delete" // hidden: a Tombstone
)

// Limits on a resync (pulling a followed actor's outbox once its follow is accepted).
const (
	resyncPages = 20
	resyncItems = 1000
	outboxPage  = 20
)

// PublishDesign sends news of a local design to the followers of the hub's instance
// actor and of its author, and to the hub of each parent on another hub (so that the
// origin hears of a fork of its design), from the author (whose key signs it), in the
// background: a Create or Update with its object, or a Delete with a Tombstone. A
// remote design, a hidden one (but for its Delete), or one whose author is gone sends
// nothing.
func (s *Service) PublishDesign(ctx context.Context, kind string, d catalog.Design, v catalog.Version) {
	if d.Remote() || (d.Hidden && kind != DesignDeleted) {
		return
	}
	author, err := s.dir.Person(ctx, d.Owner)
	switch {
	case err != nil && kind == DesignDeleted:
		// Hidden because its author was disabled, say: the hub itself says so, so that
		// the tombstone reaches every hub that keeps it.
		author = s.instance()
	case err != nil:
		s.log.Info("federation: a design's author is not an actor; nothing sent", "design", d.Slug, "err", err)
		return
	}
	activity := s.designActivity(kind, author, d, v)
	inboxes, hubs := map[string]bool{}, map[string]bool{} // hubs: where it went already
	for _, ref := range []string{s.instance().Ref, author.Ref} {
		fs, err := s.store.Followers(ctx, ref)
		if err != nil {
			s.log.Error("federation: followers not read; a design's news is not sent", "design", d.Slug, "err", err)
			return
		}
		for _, f := range fs {
			if !inboxes[f.Inbox] {
				inboxes[f.Inbox], hubs[f.Host] = true, true
				if err := s.enqueue(ctx, author, f.Inbox, activity); err != nil {
					s.log.Error("federation: a design's news is not sent", "design", d.Slug, "inbox", f.Inbox, "err", err)
				}
			}
		}
	}
	for _, p := range d.Parents {
		u, err := url.Parse(p.URL)
		if p.URL == "" || err != nil || u.Host == s.host || hubs[u.Host] {
			continue
		}
		hubs[u.Host] = true
		if err := s.enqueueToHub(ctx, author, u.Scheme+"://"+u.Host, activity); err != nil {
			s.log.Error("federation: a fork's news is not sent to its parent's hub", "parent", p.URL, "err", err)
		}
	}
}

// designActivity is the Create, Update or Delete of a design, from author.
func (s *Service) designActivity(kind string, author Local, d catalog.Design, v catalog.Version) map[string]any {
	id := s.DesignID(d.Slug)
	var object any
	if kind == DesignDeleted {
		object = map[string]any{"id": id, "type": "Tombstone", "formerType": "Document", "deleted": s.opts.Clock().UTC().Format(time.RFC3339)}
	} else {
		o := s.DesignObject(d, v)
		delete(o, "@context")
		object = o
	}
	return map[string]any{"@context": designContext, "id": id + "#" + kind + "/" + strconv.Itoa(v.Number) + "/" + randomHex(6),
		"type": kind, "actor": s.ActorURL(author), "published": s.opts.Clock().UTC().Format(time.RFC3339),
		"to": []string{publicAddress}, "cc": []string{s.apBase(author) + "/followers", s.base + PathInstance + "/followers"},
		"object": object}
}

// onDesign keeps (Create, Update) or tombstones (Delete) a remote design. It is
// taken only from a host this hub follows (an accepted follow), or when it is a fork
// of one of this hub's own designs (it names one as a parent: the origin hears of its
// forks), and only when the object is on the signer's host and, for Create and
// Update, attributed to the activity's actor: no one publishes for another hub, or
// another author. A Delete tombstones a design kept from the signer's host, however it
// came. Other objects (notes, Manyfold's posts) are ignored.
func (s *Service) onDesign(ctx context.Context, a Activity, signer RemoteActor, body []byte) error {
	var object json.RawMessage
	if a.Type != "Delete" {
		var m struct {
			Object json.RawMessage `json:"object"`
		}
		if err := json.Unmarshal(body, &m); err != nil || len(m.Object) == 0 || m.Object[0] != '{' {
			return nil // an object by id alone: not a design this hub is told of
		}
		var probe map[string]any
		if json.Unmarshal(m.Object, &probe) != nil || !isDesignObject(probe) {
			return nil // a note, a Manyfold post: not a design
		}
		object = m.Object
	}
	host := hostOf(signer.ID)
	if hostOf(a.Object.ID) != host {
		if a.Type == "Delete" {
			return nil // not of that host, so not of a design this hub keeps from it
		}
		return fmt.Errorf("%w: %s may not speak of %s, an object of another host", storage.ErrForbidden, signer.ID, a.Object.ID)
	}
	if a.Type == "Delete" {
		return s.designs.TombstoneRemote(ctx, a.Object.ID) // one it does not keep is no error
	}
	r, author, err := ParseDesignObject(object)
	if err != nil {
		return err
	}
	followed, err := s.follows(ctx, host)
	if err != nil {
		return err
	}
	if !followed {
		if !s.forksOurs(ctx, r) {
			s.log.Debug("federation: news of a host not followed is ignored", "type", a.Type, "actor", a.Actor)
			return nil
		}
		if full, err := s.forksFull(ctx, host, r.Origin.Object); err != nil || full {
			return err
		}
	}
	return s.keepDesign(ctx, host, a.Actor, r, author)
}

// maxForksUnfollowed is how many designs a host this hub does not follow may have
// kept here (as forks of this hub's designs): enough for any real family of forks, and
// a bound on what a host can put in the catalog unasked.
const maxForksUnfollowed = 100

// forksFull reports whether host has maxForksUnfollowed designs kept here already
// (tombstones too: a Delete does not make room), and object is not one of them (an
// Update of one kept is always taken).
func (s *Service) forksFull(ctx context.Context, host, object string) (bool, error) {
	page, err := s.designs.Search(ctx, catalog.Query{Origin: host, Limit: maxForksUnfollowed, Hidden: true})
	if err != nil {
		return false, err
	}
	for _, d := range page.Designs {
		if d.Origin != nil && d.Origin.Object == object {
			return false, nil
		}
	}
	if len(page.Designs) >= maxForksUnfollowed {
		s.log.Warn("federation: a host not followed has as many designs kept here as it may; its fork is ignored", "host", host, "object", object)
		return true, nil
	}
	return false, nil
}

// forksOurs reports whether a remote design names one of this hub's own visible
// designs as a parent.
func (s *Service) forksOurs(ctx context.Context, r catalog.RemoteDesign) bool {
	for _, p := range r.Parents {
		if slug := s.localSlug(p.URL); slug != "" {
			if d, v, err := s.designs.Design(ctx, catalog.Actor{}, slug); err == nil && v != nil && !d.Remote() {
				return true // a visible design of this hub's own
			}
		}
	}
	return false
}

// localSlug is the slug of the design of this hub that a design object's id names
// (its page), else "".
func (s *Service) localSlug(id string) string {
	slug, ok := strings.CutPrefix(id, s.base+pathDesignPage)
	if !ok || slug == "" || strings.ContainsAny(slug, "/?#%") {
		return ""
	}
	return slug
}

// takeDesign keeps a design object read from host's outbox, after the checks of
// onDesign.
func (s *Service) takeDesign(ctx context.Context, host string, data []byte) error {
	r, author, err := ParseDesignObject(data)
	if err != nil {
		return err
	}
	return s.keepDesign(ctx, host, "", r, author)
}

// keepDesign keeps a design heard from host (in an activity of actor, or in host's
// outbox when actor is ""), attributed to author.
func (s *Service) keepDesign(ctx context.Context, host, actor string, r catalog.RemoteDesign, author string) error {
	if hostOf(r.Origin.Object) != host || hostOf(author) != host || hostOf(r.Origin.URL) != host {
		return fmt.Errorf("%w: a design of %s must have its id, url and author on %s", storage.ErrForbidden, r.Origin.Object, host)
	}
	if actor != "" && author != actor {
		return fmt.Errorf("%w: %s may not publish a design attributed to %s", storage.ErrForbidden, actor, author)
	}
	for _, f := range r.Files {
		if hostOf(f.Origin) != host {
			return fmt.Errorf("%w: %s's file %q is not on its hub %s", storage.ErrForbidden, r.Origin.Object, f.Path, host)
		}
	}
	for i := range r.Parents {
		r.Parents[i].Local = s.localSlug(r.Parents[i].URL)
	}
	d, err := s.designs.PutRemote(ctx, r)
	if errors.Is(err, storage.ErrConflict) {
		s.log.Info("federation: a remote design was kept by another request at once", "object", r.Origin.Object)
		return nil // heard twice at once (by two hub replicas): the other one kept it
	}
	if err == nil {
		s.log.Info("federation: a remote design kept", "object", r.Origin.Object, "slug", d.Slug, "version", r.Version)
	}
	return err
}

// follows reports whether this hub has an accepted follow of an actor on host.
func (s *Service) follows(ctx context.Context, host string) (bool, error) {
	fs, err := s.store.Follows(ctx)
	if err != nil {
		return false, err
	}
	for _, f := range fs {
		if f.Host == host && f.State == Accepted {
			return true, nil
		}
	}
	return false, nil
}

// Outbox is a local actor's outbox: a paged OrderedCollection of the Create of each
// of its public designs (every local public design, for the instance actor; none for
// a lab), newest first. page "" is the collection, page "true" its first page, and
// any other page a cursor.
func (s *Service) Outbox(ctx context.Context, l Local, page string) (map[string]any, error) {
	id := s.apBase(l) + "/outbox"
	if page == "" {
		return map[string]any{"@context": contextAS, "id": id, "type": "OrderedCollection", "first": id + "?page=true"}, nil
	}
	doc := map[string]any{"@context": designContext, "id": id + "?page=" + url.QueryEscape(page), "type": "OrderedCollectionPage",
		"partOf": id, "orderedItems": []any{}}
	if l.Kind == KindLab {
		return doc, nil
	}
	owner, cursor := "", page
	if l.Kind == KindPerson {
		owner = l.Name
	}
	if page == "true" {
		cursor = ""
	}
	ds, next, err := s.designs.Published(ctx, owner, cursor, outboxPage)
	if err != nil {
		return nil, err
	}
	items := []any{}
	for _, p := range ds {
		author, err := s.dir.Person(ctx, p.Design.Owner)
		if err != nil {
			continue // a disabled author's designs are not announced
		}
		a := s.designActivity(DesignCreated, author, p.Design, p.Version)
		delete(a, "@context")
		items = append(items, a)
	}
	doc["orderedItems"] = items
	if next != "" {
		doc["next"] = id + "?page=" + url.QueryEscape(next)
	}
	return doc, nil
}

// resync pulls the outbox of a followed actor once its follow is accepted: at most
// resyncPages pages and resyncItems items, each page on the actor's host, each design
// kept as if its Create had arrived (from that host, attributed to an actor there).
func (s *Service) resync(ctx context.Context, f Follow) {
	ctx, cancel := context.WithTimeout(ctx, 20*s.opts.Timeout)
	defer cancel()
	actor, err := s.fetchActor(ctx, f.Actor, "")
	if err != nil || actor.Outbox == "" {
		s.log.Info("federation: no outbox to resync from", "actor", f.Actor, "err", err)
		return
	}
	host, kept, items := f.Host, 0, 0
	next := actor.Outbox
	for pages := 0; next != "" && pages <= resyncPages && items < resyncItems; pages++ {
		if hostOf(next) != host {
			s.log.Warn("federation: an outbox page on another host is not read", "actor", f.Actor, "page", next)
			return
		}
		data, err := s.fetch(ctx, next, MediaActivity+", "+MediaLD)
		if err != nil {
			s.log.Info("federation: resync stopped", "actor", f.Actor, "err", err)
			return
		}
		var doc struct {
			First        json.RawMessage   `json:"first"`
			Next         json.RawMessage   `json:"next"`
			OrderedItems []json.RawMessage `json:"orderedItems"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			s.log.Info("federation: an outbox page is not JSON", "page", next)
			return
		}
		for _, raw := range doc.OrderedItems {
			if items++; items > resyncItems {
				break
			}
			var item struct {
				Type   any             `json:"type"`
				Object json.RawMessage `json:"object"`
			}
			if json.Unmarshal(raw, &item) != nil || typeOf(item.Type) != "Create" || len(item.Object) == 0 || item.Object[0] != '{' {
				continue
			}
			var probe map[string]any
			if json.Unmarshal(item.Object, &probe) != nil || !isDesignObject(probe) {
				continue
			}
			if err := s.takeDesign(ctx, host, item.Object); err != nil {
				s.log.Info("federation: a design in an outbox is not kept", "actor", f.Actor, "err", err)
				continue
			}
			kept++
		}
		next = linkOf(doc.Next)
		if len(doc.OrderedItems) == 0 && next == "" {
			next = linkOf(doc.First)
		}
	}
	s.log.Info("federation: resynced from an outbox", "actor", f.Actor, "designs", kept)
}

// linkOf is a collection's link: a URL, or an embedded page's id.
func linkOf(raw json.RawMessage) string {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return ""
	}
	return idOf(v)
}

// Fetch GETs a remote file through the guard (no private addresses unless allowed,
// no redirects) within FileTimeout; the caller reads at most limit bytes of it and
// closes it. It implements catalog.Fetcher.
func (s *Service) Fetch(ctx context.Context, rawURL string, limit int64) (io.ReadCloser, error) {
	if err := s.refuseBlocked(ctx, hostOf(rawURL)); err != nil {
		return nil, err
	}
	if err := s.guard.CheckURL(rawURL); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.FileTimeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := s.files.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s: %w with %d %s", rawURL, errRemote, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	if resp.ContentLength > limit {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s: %w: %d bytes, over %d", rawURL, errRemote, resp.ContentLength, limit)
	}
	return cancelOnClose{ReadCloser: resp.Body, cancel: cancel}, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
