package web

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
)

// fedDesigns shows the catalog to federation: remote designs kept, and this hub's own
// public designs listed in outboxes.
type fedDesigns struct{ *catalog.Service }

var _ federation.Designs = fedDesigns{}

func (f fedDesigns) Published(ctx context.Context, owner, cursor string, limit int) ([]federation.PublishedDesign, string, error) {
	page, err := f.Search(ctx, catalog.Query{Owner: owner, Cursor: cursor, Limit: limit})
	if err != nil {
		return nil, "", err
	}
	out := []federation.PublishedDesign{}
	for _, d := range page.Designs {
		if d.Remote() {
			continue // another hub's to announce
		}
		_, v, err := f.Version(ctx, catalog.Actor{}, d.Slug, d.LatestVersion)
		if err != nil {
			return nil, "", err
		}
		out = append(out, federation.PublishedDesign{Design: d, Version: v})
	}
	return out, page.NextCursor, nil
}

// announce sends news of a local design to the hub's followers (federation's
// background delivery): Create when published or shown again, Update for a new
// version, Delete when hidden. A hub that does not federate sends nothing.
func (s *Server) announce(ctx context.Context, kind, slug string) {
	if s.fed == nil {
		return
	}
	d, v, err := s.catalog.Design(ctx, catalog.Actor{Admin: true}, slug)
	if err != nil || v == nil {
		s.log.Warn("federation: a design's news is not sent", "design", slug, "err", err)
		return
	}
	s.fed.PublishDesign(ctx, kind, d, *v)
}

// negotiateDesign serves a design's object to a client that asks for ActivityPub at
// the design's page (its object's id); a browser goes on to the page. A remote design,
// a hidden one and a missing one are 404 (a remote design's object is on its hub).
func (s *Server) negotiateDesign(c *gin.Context) {
	if s.fed == nil || activityType(c.GetHeader("Accept")) == "" {
		c.Header("Vary", "Accept")
		return
	}
	defer c.Abort()
	d, v, err := s.catalog.Design(c.Request.Context(), catalog.Actor{}, c.Param("slug"))
	if err == nil && (v == nil || d.Remote()) {
		err = fmt.Errorf("design %s has no object on this hub: %w", d.Slug, storage.ErrNotFound)
	}
	if err != nil {
		// JSON, as the client asked for, not the page's HTML.
		if status, e := s.classify(c, err); status != 0 {
			c.AbortWithStatusJSON(status, gin.H{"error": e})
		}
		return
	}
	writeActivity(c, http.StatusOK, s.fed.DesignObject(d, *v))
}

// ensureFiles fetches the named files of a remote design's version from their origin,
// if they are not here yet (every file when paths is nil). It is false (and has
// answered: 502 when the origin failed or served other bytes) when they could not be.
func (s *Server) ensureFiles(c *gin.Context, v catalog.Version, paths []string) bool {
	var fetch catalog.Fetcher
	if s.fed != nil {
		fetch = s.fed
	}
	if err := s.catalog.EnsureFiles(c.Request.Context(), v, paths, fetch); err != nil {
		s.fail(c, err)
		return false
	}
	return true
}
