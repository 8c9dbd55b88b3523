package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/account"
)

const (
	sessionCookie = "fab_session"
	// secureCookie is its name over https: the __Host- prefix makes browsers refuse it
	// from a sibling subdomain or without Secure and Path=/, so nobody on another
	// host of the domain can plant a session.
	secureCookie = "__Host-fab_session"
	csrfHeader   = "X-CSRF-Token"
	ctxUser      = "user"
	ctxSession   = "session"
)

// authenticate resolves who is calling: a personal token in the Authorization header,
// or a browser session cookie. A bad token is refused (401); a stale cookie is ignored
// (the caller is anonymous). A cookie-authenticated unsafe request must carry the
// session's CSRF token in X-CSRF-Token, or it is refused (403): a cookie alone is what
// a forged cross-site request would have.
func (s *Server) authenticate(c *gin.Context) {
	ctx := c.Request.Context()
	if h := c.GetHeader("Authorization"); h != "" {
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			abort(c, http.StatusUnauthorized, "unauthenticated", "the Authorization header must be 'Bearer <token>'")
			return
		}
		u, err := s.accounts.TokenUser(ctx, strings.TrimSpace(secret))
		if err != nil {
			s.fail(c, err)
			return
		}
		c.Set(ctxUser, u)
		c.Next()
		return
	}
	cookie, err := c.Cookie(s.cookieName(c))
	if err != nil || cookie == "" {
		c.Next()
		return
	}
	u, sess, err := s.accounts.SessionUser(ctx, cookie)
	if errors.Is(err, account.ErrUnauthenticated) {
		s.clearSessionCookie(c)
		c.Next()
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	if !safeMethod(c.Request.Method) && s.crossSite(c) {
		// A second line of defence behind the CSRF token.
		s.refuse(c, http.StatusForbidden, apiError{Code: "cross_site", Message: "a request that changes something came from another site with this hub's session cookie"})
		return
	}
	if !safeMethod(c.Request.Method) && !account.CSRFMatches(sess, csrfTokenOf(c)) {
		s.refuse(c, http.StatusForbidden, apiError{Code: "csrf", Message: "this request came with a session cookie but without its CSRF token (X-CSRF-Token, or the form's csrf_token)"})
		return
	}
	c.Set(ctxUser, u)
	c.Set(ctxSession, sess)
	c.Next()
}

// csrfTokenOf reads the CSRF token from the X-CSRF-Token header (scripts) or, for a
// plain HTML form post, its csrf_token field. Multipart bodies are never parsed here:
// uploads stream, and their scripts send the header.
func csrfTokenOf(c *gin.Context) string {
	if t := c.GetHeader(csrfHeader); t != "" {
		return t
	}
	if ct, _, _ := strings.Cut(c.ContentType(), ";"); ct == "application/x-www-form-urlencoded" {
		return c.PostForm("csrf_token")
	}
	return ""
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// currentUser returns the authenticated caller, if any.
func currentUser(c *gin.Context) (account.User, bool) {
	u, ok := c.Get(ctxUser)
	if !ok {
		return account.User{}, false
	}
	return u.(account.User), true
}

// signedIn lets a call through only for a signed-in person; anyone else gets 401.
func (s *Server) signedIn(c *gin.Context) {
	if _, ok := currentUser(c); !ok {
		s.fail(c, errLoginRequired)
		return
	}
	c.Next()
}

// userOf is the caller of a route behind signedIn or signedInPage.
func userOf(c *gin.Context) account.User {
	u, _ := currentUser(c)
	return u
}

func (s *Server) setSessionCookie(c *gin.Context, secret string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: s.cookieName(c), Value: secret, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.secure(c),
	})
}

func (s *Server) secure(c *gin.Context) bool { return s.cfg.SecureCookies || c.Request.TLS != nil }

// cookieName is the session cookie's name: with the __Host- prefix over https.
func (s *Server) cookieName(c *gin.Context) string {
	if s.secure(c) {
		return secureCookie
	}
	return sessionCookie
}

func (s *Server) clearSessionCookie(c *gin.Context) { s.setSessionCookie(c, "", -1) }

// crossSite says whether a browser sent the request from another site: by
// Sec-Fetch-Site where the browser sends it, else by Origin, else by Referer (browsers
// from before Sec-Fetch-Site leave Origin off some same-origin posts). A request with
// none of them (a script, an agent) is not judged here.
func (s *Server) crossSite(c *gin.Context) bool {
	switch c.GetHeader("Sec-Fetch-Site") {
	case "same-origin", "none":
		return false
	case "cross-site", "same-site":
		return true
	}
	if origin := c.GetHeader("Origin"); origin != "" {
		return s.foreign(c, origin)
	}
	if referer := c.GetHeader("Referer"); referer != "" {
		return s.foreign(c, referer)
	}
	return false
}

// foreign says whether a URL from Origin or Referer names another host than this hub.
func (s *Server) foreign(c *gin.Context, raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return true // "null" and other opaque origins
	}
	if s.cfg.PublicURL != "" {
		if pub, err := url.Parse(s.cfg.PublicURL); err == nil && strings.EqualFold(pub.Host, u.Host) {
			return false
		}
	}
	return !strings.EqualFold(u.Host, c.Request.Host)
}

// sameSiteForms refuses a form post from another site (the login and sign-up forms
// have no session, so no CSRF token, to check).
func (s *Server) sameSiteForms(c *gin.Context) {
	if !safeMethod(c.Request.Method) && s.crossSite(c) {
		s.refuse(c, http.StatusForbidden, apiError{Code: "cross_site", Message: "this form was posted from another site"})
		return
	}
	c.Next()
}
