package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
)

// federationRoutes adds ActivityPub (WebFinger, actors, inboxes) and the admin API of
// federation. Without a federation service (no FAB_PUBLIC_URL) the routes are there
// and answer 404 federation_off, so a caller learns why.
func (s *Server) federationRoutes(r *gin.Engine, user *gin.RouterGroup) {
	r.GET(federation.PathWebFinger, s.webfinger)
	r.GET(federation.PathNodeInfo, s.nodeInfo(false))
	r.GET(federation.PathNodeInfo21, s.nodeInfo(true))
	r.GET(federation.PathInstance, s.instanceActor)
	r.POST(federation.PathSharedInbox, s.inbox)
	for _, base := range []string{federation.PathInstance, federation.PathPeople + "/:name", federation.PathLabs + "/:name"} {
		r.POST(base+"/inbox", s.inbox)
		r.GET(base+"/outbox", s.apCollection("outbox"))
		r.GET(base+"/followers", s.apCollection("followers"))
	}
	user.POST("/federation/follows", s.followHub)
	user.GET("/federation/follows", s.listFollows)
	user.DELETE("/federation/follows/:id", s.unfollowHub)
	user.POST("/federation/blocks", s.blockHost)
	user.GET("/federation/blocks", s.listBlocks)
	user.DELETE("/federation/blocks/:host", s.unblockHost)
}

// activityType is the media type to answer an ActivityPub client with, or "" when the
// Accept header wants no ActivityPub (a browser).
func activityType(accept string) string {
	switch {
	case strings.Contains(accept, "application/activity+json"):
		return federation.MediaActivity
	case strings.Contains(accept, "application/ld+json"):
		return federation.MediaLD
	}
	return ""
}

// writeActivity answers with an ActivityPub document in the media type asked for.
func writeActivity(c *gin.Context, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		abort(c, http.StatusInternalServerError, "internal", "the document did not encode")
		return
	}
	typ := activityType(c.GetHeader("Accept"))
	if typ == "" {
		typ = federation.MediaActivity
	}
	c.Header("Vary", "Accept")
	c.Data(status, typ, body)
}

// federationOn is false (and has answered 404) when the hub does not federate.
func (s *Server) federationOn(c *gin.Context) bool {
	if s.fed == nil {
		s.fail(c, federation.ErrOff)
		return false
	}
	return true
}

// webfinger: GET /.well-known/webfinger?resource=acct:name@host -> a JRD.
func (s *Server) webfinger(c *gin.Context) {
	if !s.federationOn(c) {
		return
	}
	jrd, err := s.fed.WebFinger(c.Request.Context(), c.Query("resource"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Access-Control-Allow-Origin", "*")
	body, _ := json.Marshal(jrd)
	c.Data(http.StatusOK, "application/jrd+json", body)
}

// nodeInfo: GET /.well-known/nodeinfo -> the links to the NodeInfo document (doc
// false), GET /nodeinfo/2.1 -> the document (doc true).
func (s *Server) nodeInfo(doc bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !s.federationOn(c) {
			return
		}
		c.Header("Access-Control-Allow-Origin", "*")
		if !doc {
			c.JSON(http.StatusOK, s.fed.NodeInfoLinks())
			return
		}
		body, _ := json.Marshal(s.fed.NodeInfo(true)) // anyone may sign up
		c.Data(http.StatusOK, federation.MediaNodeInfo21, body)
	}
}

// instanceActor: GET /ap/actor -> the hub's own actor (type Application).
func (s *Server) instanceActor(c *gin.Context) {
	if !s.federationOn(c) {
		return
	}
	s.serveActor(c, s.fed.Instance())
}

func (s *Server) serveActor(c *gin.Context, l federation.Local) {
	doc, err := s.fed.ActorDocument(c.Request.Context(), l)
	if err != nil {
		s.fail(c, err)
		return
	}
	writeActivity(c, http.StatusOK, doc)
}

// negotiateActor serves the actor of a person's or a lab's page to a client that asks
// for ActivityPub (the page's URL is the actor's id); a browser goes on to the page.
// param names the route's parameter that holds the handle or slug.
func (s *Server) negotiateActor(kind, param string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.fed == nil || activityType(c.GetHeader("Accept")) == "" {
			c.Header("Vary", "Accept")
			return
		}
		l, err := s.localActor(c.Request.Context(), kind, c.Param(param))
		if err != nil {
			s.fail(c, err)
			return
		}
		s.serveActor(c, l)
		c.Abort()
	}
}

// localActor finds a person or lab by handle or slug; the instance from /ap/actor.
func (s *Server) localActor(ctx context.Context, kind, name string) (federation.Local, error) {
	switch kind {
	case federation.KindPerson:
		return s.fed.Person(ctx, name)
	case federation.KindLab:
		return s.fed.Lab(ctx, name)
	}
	return s.fed.Instance(), nil
}

// kindOfPath is the kind of actor a route under /ap names.
func kindOfPath(fullPath string) string {
	switch {
	case strings.HasPrefix(fullPath, federation.PathPeople+"/"):
		return federation.KindPerson
	case strings.HasPrefix(fullPath, federation.PathLabs+"/"):
		return federation.KindLab
	}
	return federation.KindInstance
}

// apCollection: GET /ap/.../outbox or /followers -> an OrderedCollection.
func (s *Server) apCollection(which string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !s.federationOn(c) {
			return
		}
		l, err := s.localActor(c.Request.Context(), kindOfPath(c.FullPath()), c.Param("name"))
		if err != nil {
			s.fail(c, err)
			return
		}
		if which == "outbox" {
			doc, err := s.fed.Outbox(c.Request.Context(), l, c.Query("page"))
			if err != nil {
				s.fail(c, err)
				return
			}
			writeActivity(c, http.StatusOK, doc)
			return
		}
		doc, err := s.fed.FollowersCollection(c.Request.Context(), l)
		if err != nil {
			s.fail(c, err)
			return
		}
		writeActivity(c, http.StatusOK, doc)
	}
}

// inbox: POST /ap/inbox (shared) or an actor's inbox, a signed activity -> 202. An
// unsigned or wrongly signed one is 401, one from a blocked host 403, one over
// federation.MaxActivityBytes 413, too many from one host 429.
func (s *Server) inbox(c *gin.Context) {
	if !s.federationOn(c) {
		return
	}
	if kind := kindOfPath(c.FullPath()); kind != federation.KindInstance {
		// The inbox of someone who is not here is not an inbox.
		if _, err := s.localActor(c.Request.Context(), kind, c.Param("name")); err != nil {
			s.fail(c, err)
			return
		}
	}
	body, err := io.ReadAll(c.Request.Body) // limitBody bounds it to MaxActivityBytes
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.fed.Receive(c.Request.Context(), c.Request, body); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusAccepted)
}

func fedCaller(c *gin.Context) federation.Caller {
	u, _ := currentUser(c)
	return federation.Caller{ID: u.ID, Admin: u.Admin}
}

// adminFederation is false (and has answered) unless the caller is a site admin of a
// hub that federates: 403 first, so that who may call does not depend on the set-up.
func (s *Server) adminFederation(c *gin.Context) bool {
	if !fedCaller(c).Admin {
		s.fail(c, fmt.Errorf("%w: only a site admin manages federation", storage.ErrForbidden))
		return false
	}
	return s.federationOn(c)
}

// followHub: POST /api/v1/federation/follows {target} -> 201 {follow}: the hub's
// instance actor follows a hub (its URL), an actor (its URL) or @handle@host.
func (s *Server) followHub(c *gin.Context) {
	if !s.adminFederation(c) {
		return
	}
	var req struct {
		Target string `json:"target"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	f, err := s.fed.Follow(c.Request.Context(), fedCaller(c), req.Target)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"follow": f})
}

// listFollows: GET /api/v1/federation/follows -> {follows}.
func (s *Server) listFollows(c *gin.Context) {
	if !s.adminFederation(c) {
		return
	}
	fs, err := s.fed.Follows(c.Request.Context(), fedCaller(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	if fs == nil {
		fs = []federation.Follow{}
	}
	c.JSON(http.StatusOK, gin.H{"follows": fs})
}

// unfollowHub: DELETE /api/v1/federation/follows/{id} -> 204; an Undo is sent.
func (s *Server) unfollowHub(c *gin.Context) {
	if !s.adminFederation(c) {
		return
	}
	if err := s.fed.Unfollow(c.Request.Context(), fedCaller(c), c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// blockHost: POST /api/v1/federation/blocks {host} -> 201 {block}.
func (s *Server) blockHost(c *gin.Context) {
	if !s.adminFederation(c) {
		return
	}
	var req struct {
		Host string `json:"host"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	b, err := s.fed.BlockHost(c.Request.Context(), fedCaller(c), req.Host)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"block": b})
}

// unblockHost: DELETE /api/v1/federation/blocks/{host} -> 204.
func (s *Server) unblockHost(c *gin.Context) {
	if !s.adminFederation(c) {
		return
	}
	if err := s.fed.Unblock(c.Request.Context(), fedCaller(c), c.Param("host")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// listBlocks: GET /api/v1/federation/blocks -> {blocks}.
func (s *Server) listBlocks(c *gin.Context) {
	if !s.adminFederation(c) {
		return
	}
	bs, err := s.fed.Blocks(c.Request.Context(), fedCaller(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	if bs == nil {
		bs = []federation.Block{}
	}
	c.JSON(http.StatusOK, gin.H{"blocks": bs})
}

// directory shows the hub's people and labs to federation as actors.
type directory struct {
	accounts account.Store
	labs     *fabrication.Labs // nil: a hub without fabrication has no labs
}

func (d directory) Person(ctx context.Context, handle string) (federation.Local, error) {
	u, err := d.accounts.UserByHandle(ctx, account.NormalizeHandle(handle))
	if err != nil {
		return federation.Local{}, err
	}
	if u.Disabled {
		return federation.Local{}, fmt.Errorf("person %s: %w", handle, storage.ErrNotFound)
	}
	return federation.Local{Kind: federation.KindPerson, Ref: "person:" + u.ID, Name: u.Handle, Display: u.Handle}, nil
}

func (d directory) Lab(ctx context.Context, slug string) (federation.Local, error) {
	if d.labs == nil {
		return federation.Local{}, fmt.Errorf("lab %s: %w", slug, storage.ErrNotFound)
	}
	l, err := d.labs.Lab(ctx, slug)
	if err != nil {
		return federation.Local{}, err
	}
	return federation.Local{Kind: federation.KindLab, Ref: "lab:" + l.ID, Name: l.Slug, Display: l.Name, Summary: l.Location}, nil
}
