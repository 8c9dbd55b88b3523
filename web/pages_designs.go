package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/catalog/license"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
)

func (s *Server) homePage(c *gin.Context) {
	ctx := c.Request.Context()
	featured, err := s.catalog.Search(ctx, catalog.Query{Featured: true, Limit: 8})
	if err != nil {
		s.fail(c, err)
		return
	}
	recent, err := s.catalog.Search(ctx, catalog.Query{Limit: 12})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.render(c, http.StatusOK, "home", "fabcommons", gin.H{"Featured": featured.Designs, "Recent": recent.Designs, "Licenses": license.All()})
}

func (s *Server) searchPage(c *gin.Context) {
	q := catalog.Query{Text: c.Query("q"), Tag: c.Query("tag"), License: c.Query("license"), Cursor: c.Query("cursor"), Limit: 24}
	page, err := s.catalog.Search(c.Request.Context(), q)
	if err != nil {
		s.fail(c, err)
		return
	}
	next := ""
	if page.NextCursor != "" {
		v := c.Request.URL.Query()
		v.Set("cursor", page.NextCursor)
		next = "/search?" + v.Encode()
	}
	s.render(c, http.StatusOK, "search", "Search", gin.H{"Q": q, "Designs": page.Designs, "Next": next, "Licenses": license.All()})
}

// flagPost: the design page's "Report" form.
func (s *Server) flagPost(c *gin.Context) {
	slug := c.Param("slug")
	err := s.catalog.Flag(c.Request.Context(), actorOf(c), slug, c.PostForm("reason"))
	if err != nil && !errors.Is(err, storage.ErrConflict) {
		s.fail(c, err)
		return
	}
	if err == nil {
		s.notifyReported(c.Request.Context(), slug, c.PostForm("reason"))
	}
	c.Redirect(http.StatusSeeOther, "/designs/"+url.PathEscape(slug)+"?reported=1")
}

func (s *Server) uploadPage(c *gin.Context) {
	data := gin.H{"Licenses": license.All(), "MaxFileBytes": s.catalog.Limits().FileBytes, "FileTypes": fileTypesJSON}
	title := "Publish a design"
	if slug := c.Param("slug"); slug != "" {
		if _, err := s.catalog.VersionAuthor(c.Request.Context(), actorOf(c), slug); err != nil {
			s.fail(c, err)
			return
		}
		d, v, err := s.catalog.Design(c.Request.Context(), actorOf(c), slug)
		if err != nil {
			s.fail(c, err)
			return
		}
		data["Design"], data["Version"] = d, v
		title = "New version of " + d.Title
	}
	s.render(c, http.StatusOK, "upload", title, data)
}

// designPage shows a design at its latest version, or ?v=N.
func (s *Server) designPage(c *gin.Context) {
	ctx, slug := c.Request.Context(), c.Param("slug")
	d, latest, err := s.catalog.Design(ctx, actorOf(c), slug)
	if err != nil {
		s.fail(c, err)
		return
	}
	v := latest
	if n, err := strconv.Atoi(c.Query("v")); err == nil && n > 0 {
		_, ver, err := s.catalog.Version(ctx, actorOf(c), slug, n)
		if err != nil {
			s.fail(c, err)
			return
		}
		v = &ver
	}
	versions, err := s.catalog.Versions(ctx, actorOf(c), slug)
	if err != nil {
		s.fail(c, err)
		return
	}
	lin, err := s.catalog.Lineage(ctx, slug)
	if err != nil {
		s.fail(c, err)
		return
	}
	var forkErr string
	if _, err := s.catalog.ForkOptions(ctx, slug); err != nil {
		forkErr = err.Error()
	}
	record, remote, err := s.designRecord(ctx, d)
	if err != nil {
		s.fail(c, err)
		return
	}
	var photos []fabrication.MadePhoto
	if s.orders != nil {
		if photos, err = s.orders.DesignPhotos(ctx, d.ID, 24); err != nil {
			s.fail(c, err)
			return
		}
	}
	u, _ := currentUser(c)
	lic, _ := license.Lookup(d.License)
	s.render(c, http.StatusOK, "design", d.Title, gin.H{
		"D": d, "V": v, "Versions": versions, "Lineage": layoutLineage(lin), "License": lic, "Obligations": lic.Obligations(),
		"Owner": u.ID != "" && u.ID == d.OwnerID, "ForkError": forkErr, "Making": s.orders != nil,
		"ViewerLimit": viewerAutoLoadBytes, "Reported": c.Query("reported") != "", "Record": record,
		"RemoteMakes": remote, "Photos": photos,
	})
}

// viewerAutoLoadBytes: larger meshes load in the viewer only when asked.
const viewerAutoLoadBytes = 15 << 20

func (s *Server) forkPage(c *gin.Context) {
	s.renderFork(c, http.StatusOK, "")
}

func (s *Server) renderFork(c *gin.Context, status int, errMsg string) {
	ctx, slug := c.Request.Context(), c.Param("slug")
	d, _, err := s.catalog.Design(ctx, actorOf(c), slug)
	if err != nil {
		s.fail(c, err)
		return
	}
	data := gin.H{"D": d, "Error": errMsg}
	opts, err := s.catalog.ForkOptions(ctx, slug)
	switch {
	case errors.Is(err, license.ErrNoDerivatives), errors.Is(err, license.ErrNoCommonLicense):
		data["Refused"] = err.Error() // the page answers what it was asked: no license, and why
	case err != nil:
		s.fail(c, err)
		return
	}
	data["Options"] = opts
	s.render(c, status, "fork", "Fork "+d.Title, data)
}

func (s *Server) forkPost(c *gin.Context) {
	err := s.readyToFork(c.Request.Context(), c.Param("slug"), 0, c.PostForm("license"))
	var fork catalog.Design
	if err == nil {
		fork, err = s.catalog.Fork(c.Request.Context(), actorOf(c), c.Param("slug"), catalog.ForkRequest{License: c.PostForm("license"), Title: c.PostForm("title")})
	}
	if err != nil {
		status, e := s.classify(c, err)
		if status == 0 {
			return
		}
		s.renderFork(c, status, e.Message)
		return
	}
	s.announce(c.Request.Context(), federation.DesignCreated, fork.Slug)
	c.Redirect(http.StatusSeeOther, "/designs/"+url.PathEscape(fork.Slug))
}

// fileTypesJSON is catalog's table of file types, for the upload page to say what each
// chosen file is before it goes up.
var fileTypesJSON = func() string {
	b, err := json.Marshal(catalog.FileTypes())
	if err != nil {
		panic(err)
	}
	return string(b)
}()
