package web

import (
	"embed"
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
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/catalog/license"
	"github.com/fabcommons/fabcommons/fabrication"
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
		"pictureURL": func(slug string, n int, p, size string) string {
			return "/api/v1/designs/" + url.PathEscape(slug) + "/versions/" + strconv.Itoa(n) + "/pictures/" + escapePath(p) + "?size=" + size
		},
		"fileType": catalog.TypeOf,
		// caption turns a picture's file name into words for its alt text:
		// "photos/assembled_clock-front.jpg" -> "assembled clock front".
		"caption": func(p string) string {
			name := strings.TrimSuffix(path.Base(p), path.Ext(p))
			return strings.Join(strings.FieldsFunc(name, func(r rune) bool { return r == '_' || r == '-' || r == '.' || r == ' ' }), " ")
		},
		"ended": func(state string) bool {
			return slices.Contains([]string{fabrication.JobDone, fabrication.JobFailed, fabrication.JobCanceled, fabrication.JobRejected}, state)
		},
		"hours": func(sec float64) string { return (time.Duration(sec) * time.Second).Round(time.Minute).String() },
		// acctHref is the page of a ledger account: a person's or a lab's.
		"acctHref": func(account string) string {
			kind, name, _ := strings.Cut(account, ":")
			if kind == "lab" {
				return "/labs/" + url.PathEscape(name)
			}
			return "/people/" + url.PathEscape(name)
		},
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
	// Browsers drop tabs and newlines from a URL and read a backslash as a slash, so
	// "/\t/evil.example" and "/\\evil.example" would leave the site: refuse any of them.
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\") ||
		strings.IndexFunc(next, unicode.IsControl) >= 0 {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" {
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
