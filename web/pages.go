package web

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/catalog/license"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// pageCSP allows scripts, styles, images and connections from the hub only: no inline
// script, no eval, nothing from a CDN (the pages work on an offline lab network).
const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const ctxPage = "page"

// pages are the server-rendered HTML views; each is parsed with the layout.
type pages map[string]*template.Template

func parsePages() pages {
	funcs := template.FuncMap{
		"bytes": func(n int64) string {
			switch {
			case n >= 1e6:
				return fmt.Sprintf("%.1f MB", float64(n)/1e6)
			case n >= 1e3:
				return fmt.Sprintf("%.1f kB", float64(n)/1e3)
			}
			return fmt.Sprintf("%d B", n)
		},
		"date": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
		"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"mm":   func(v [3]float64) string { return fmt.Sprintf("%.1f × %.1f × %.1f mm", v[0], v[1], v[2]) },
		"vol":  func(v fabrication.Volume) string { return fmt.Sprintf("%g × %g × %g mm", v.X, v.Y, v.Z) },
		"pct":  func(f float64) string { return strconv.Itoa(int(f + 0.5)) },
		"join": strings.Join,
		"license": func(id string) license.License {
			l, _ := license.Lookup(id)
			return l
		},
		"state": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
		"fileURL": func(slug string, n int, p string) string {
			return "/api/v1/designs/" + url.PathEscape(slug) + "/versions/" + strconv.Itoa(n) + "/files/" + escapePath(p)
		},
		"ended": func(state string) bool {
			return slices.Contains([]string{fabrication.JobDone, fabrication.JobFailed, fabrication.JobCanceled, fabrication.JobRejected}, state)
		},
		"hours": func(sec float64) string { return (time.Duration(sec) * time.Second).Round(time.Minute).String() },
	}
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	names, _ := fs.Glob(templateFS, "templates/*.html")
	p := pages{}
	for _, n := range names {
		name := path.Base(n)
		if name == "layout.html" {
			continue
		}
		p[strings.TrimSuffix(name, ".html")] = template.Must(template.Must(layout.Clone()).ParseFS(templateFS, n))
	}
	return p
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// view is what every page template gets: the signed-in user, the CSRF token for its
// forms, and the page's own data.
type view struct {
	Title string
	User  *account.User
	CSRF  string
	P     any
}

// markPage makes errors on this route render as HTML and sets the pages' headers.
func markPage(c *gin.Context) {
	c.Set(ctxPage, true)
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	c.Next()
}

func (s *Server) render(c *gin.Context, status int, page, title string, data any) {
	v := view{Title: title, P: data}
	if u, ok := currentUser(c); ok {
		v.User = &u
	}
	if sess, ok := c.Get(ctxSession); ok {
		v.CSRF = sess.(account.Session).CSRF
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("Cache-Control", "no-store")
	c.Status(status)
	if err := s.pages[page].ExecuteTemplate(c.Writer, "layout.html", v); err != nil {
		s.log.Error("render page", "page", page, "err", err)
	}
}

// refuse answers an error: JSON on the API, an error page on pages.
func (s *Server) refuse(c *gin.Context, status int, e apiError) {
	if c.GetBool(ctxPage) {
		s.render(c, status, "error", http.StatusText(status), e)
		c.Abort()
		return
	}
	c.AbortWithStatusJSON(status, gin.H{"error": e})
}

// signedInPage lets a page through only for a signed-in person, and sends anyone else
// to log in and come back.
func (s *Server) signedInPage(c *gin.Context) {
	if _, ok := currentUser(c); !ok {
		c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request.URL.RequestURI()))
		c.Abort()
		return
	}
	c.Next()
}

// localNext keeps a post-login redirect on this site.
func localNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// serveAssets serves the embedded CSS, JavaScript and vendored three.js.
func serveAssets() gin.HandlerFunc {
	sub, _ := fs.Sub(assetFS, "assets")
	assets := http.StripPrefix("/assets/", http.FileServer(http.FS(sub)))
	return func(c *gin.Context) {
		c.Header("Cache-Control", "public, max-age=3600")
		c.Header("X-Content-Type-Options", "nosniff")
		assets.ServeHTTP(c.Writer, c.Request)
	}
}

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

func (s *Server) loginPage(c *gin.Context) {
	s.render(c, http.StatusOK, "login", "Log in", gin.H{"Next": localNext(c.Query("next"))})
}

// loginPost signs in from the HTML form. There is no session yet, so no CSRF token to
// check; SameSite=Lax on the new cookie keeps other sites from using it.
func (s *Server) loginPost(c *gin.Context) {
	handle, next := c.PostForm("handle"), localNext(c.PostForm("next"))
	u, err := s.accounts.Authenticate(c.Request.Context(), handle, c.PostForm("password"), c.ClientIP())
	if err != nil {
		status, e := s.classify(c, err)
		if status == 0 {
			return
		}
		s.render(c, status, "login", "Log in", gin.H{"Next": next, "Handle": handle, "Error": e.Message})
		return
	}
	s.startSession(c, u, next)
}

func (s *Server) startSession(c *gin.Context, u account.User, next string) {
	if _, err := s.beginSession(c, u); err != nil {
		s.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, next)
}

func (s *Server) signupPage(c *gin.Context) {
	s.render(c, http.StatusOK, "signup", "Sign up", gin.H{})
}

func (s *Server) signupPost(c *gin.Context) {
	handle, email := c.PostForm("handle"), c.PostForm("email")
	form := gin.H{"Handle": handle, "Email": email}
	u, err := s.throttledSignUp(c, handle, email, c.PostForm("password"))
	if err != nil {
		status, e := s.classify(c, err)
		if status == 0 {
			return
		}
		form["Error"], form["Field"] = e.Message, e.Field
		s.render(c, status, "signup", "Sign up", form)
		return
	}
	s.startSession(c, u, "/account")
}

func (s *Server) logoutPost(c *gin.Context) {
	if err := s.endSession(c); err != nil {
		s.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/")
}

func (s *Server) accountPage(c *gin.Context) {
	s.renderAccount(c, http.StatusOK, "", "")
}

func (s *Server) renderAccount(c *gin.Context, status int, secret, errMsg string) {
	u := userOf(c)
	tokens, err := s.accounts.Tokens(c.Request.Context(), u)
	if err != nil {
		s.fail(c, err)
		return
	}
	mine, err := s.catalog.Search(c.Request.Context(), catalog.Query{Owner: u.Handle, Limit: 50})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.render(c, status, "account", "Your account", gin.H{"Tokens": tokens, "Secret": secret, "Error": errMsg, "Designs": mine.Designs})
}

func (s *Server) accountTokenPost(c *gin.Context) {
	u := userOf(c)
	_, secret, err := s.accounts.IssueToken(c.Request.Context(), u, c.PostForm("name"))
	if err != nil {
		status, e := s.classify(c, err)
		s.renderAccount(c, status, "", e.Message)
		return
	}
	s.renderAccount(c, http.StatusCreated, secret, "")
}

func (s *Server) accountTokenRevoke(c *gin.Context) {
	u := userOf(c)
	if err := s.accounts.RevokeToken(c.Request.Context(), u, c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/account")
}

func (s *Server) adminPage(c *gin.Context) {
	u := userOf(c)
	if !u.Admin {
		s.fail(c, fmt.Errorf("the admin page is for site maintainers: %w", storage.ErrForbidden))
		return
	}
	all, err := s.catalog.Search(c.Request.Context(), catalog.Query{Text: c.Query("q"), Limit: 100})
	if err != nil {
		s.fail(c, err)
		return
	}
	flagged, err := s.catalog.Flagged(c.Request.Context(), actorOf(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.render(c, http.StatusOK, "admin", "Curation", gin.H{"Designs": all.Designs, "Q": c.Query("q"), "Flagged": flagged})
}

func (s *Server) adminPost(c *gin.Context) {
	if err := s.curation(c, c.Param("slug"), c.Param("action")); err != nil {
		s.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, localNext(c.PostForm("back")))
}

// flagPost: the design page's "Report" form.
func (s *Server) flagPost(c *gin.Context) {
	slug := c.Param("slug")
	err := s.catalog.Flag(c.Request.Context(), actorOf(c), slug, c.PostForm("reason"))
	if err != nil && !errors.Is(err, storage.ErrConflict) {
		s.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/designs/"+url.PathEscape(slug)+"?reported=1")
}

func (s *Server) uploadPage(c *gin.Context) {
	data := gin.H{"Licenses": license.All(), "MaxFileBytes": s.catalog.Limits().FileBytes}
	title := "Publish a design"
	if slug := c.Param("slug"); slug != "" {
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
	versions, err := s.catalog.Versions(ctx, slug)
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
	var record []fabrication.LabRecord
	if s.orders != nil {
		if record, err = s.orders.DesignRecord(ctx, d.ID); err != nil {
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
	fork, err := s.catalog.Fork(c.Request.Context(), actorOf(c), c.Param("slug"), catalog.ForkRequest{License: c.PostForm("license"), Title: c.PostForm("title")})
	if err != nil {
		status, e := s.classify(c, err)
		if status == 0 {
			return
		}
		s.renderFork(c, status, e.Message)
		return
	}
	c.Redirect(http.StatusSeeOther, "/designs/"+url.PathEscape(fork.Slug))
}
