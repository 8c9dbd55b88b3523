package web

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/account"
)

type credentials struct {
	Handle   string `json:"handle"`
	Password string `json:"password"`
}

// signUp: POST /api/v1/users {handle,email,password} -> 201 {user}.
func (s *Server) signUp(c *gin.Context) {
	var req struct {
		Handle   string `json:"handle"`
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	u, err := s.throttledSignUp(c, req.Handle, req.Email, req.Password)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"user": u})
}

// throttledSignUp creates an account within the per-client hourly allowance (the API
// and the sign-up page both come through here).
func (s *Server) throttledSignUp(c *gin.Context, handle, email, password string) (account.User, error) {
	client, now := clientOf(c), s.now()
	if wait := s.signups.Take(client, now); wait > 0 { // every attempt counts against the hourly allowance
		return account.User{}, &account.ThrottledError{Wait: wait}
	}
	return s.accounts.SignUp(c.Request.Context(), handle, email, password)
}

type tokenView struct {
	account.Token
	Secret string `json:"secret,omitempty"`
}

// createToken: POST /api/v1/tokens {handle,password,name} -> 201 {token} with its
// secret, shown this once.
func (s *Server) createToken(c *gin.Context) {
	var req struct {
		credentials
		Name string `json:"name"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	u, err := s.accounts.Authenticate(c.Request.Context(), req.Handle, req.Password, clientOf(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	t, secret, err := s.accounts.IssueToken(c.Request.Context(), u, req.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"token": tokenView{Token: t, Secret: secret}})
}

// listTokens: GET /api/v1/tokens -> {tokens} of the caller, without secrets.
func (s *Server) listTokens(c *gin.Context) {
	u := userOf(c)
	tokens, err := s.accounts.Tokens(c.Request.Context(), u)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"tokens": tokens})
}

// revokeToken: DELETE /api/v1/tokens/{id} -> 204.
func (s *Server) revokeToken(c *gin.Context) {
	u := userOf(c)
	if err := s.accounts.RevokeToken(c.Request.Context(), u, c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// logIn: POST /api/v1/sessions {handle,password} -> {user, csrf_token} and the session
// cookie. Login needs a JSON body, which a cross-site form cannot send without CORS
// consent; that keeps a forged login from planting someone else's session.
func (s *Server) logIn(c *gin.Context) {
	var req credentials
	if !s.bindJSON(c, &req) {
		return
	}
	u, err := s.accounts.Authenticate(c.Request.Context(), req.Handle, req.Password, clientOf(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	sess, err := s.beginSession(c, u)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"user": u, "csrf_token": sess.CSRF})
}

// beginSession starts a session for u and sets its cookie.
func (s *Server) beginSession(c *gin.Context, u account.User) (account.Session, error) {
	sess, secret, err := s.accounts.StartSession(c.Request.Context(), u)
	if err != nil {
		return sess, err
	}
	s.setSessionCookie(c, secret, int(sess.ExpiresAt.Sub(s.now()).Seconds()))
	return sess, nil
}

// endSession ends the caller's session, if any, and clears its cookie.
func (s *Server) endSession(c *gin.Context) error {
	if cookie, err := c.Cookie(s.cookieName(c)); err == nil && cookie != "" {
		if err := s.accounts.EndSession(c.Request.Context(), cookie); err != nil {
			return err
		}
	}
	s.clearSessionCookie(c)
	return nil
}

// logOut: DELETE /api/v1/sessions/current -> 204 and the cookie cleared.
func (s *Server) logOut(c *gin.Context) {
	if err := s.endSession(c); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// me: GET /api/v1/me -> {user}, with the CSRF token when the caller uses a session.
func (s *Server) me(c *gin.Context) {
	u := userOf(c)
	body := gin.H{"user": u}
	if sess, ok := c.Get(ctxSession); ok {
		body["csrf_token"] = sess.(account.Session).CSRF
	}
	c.JSON(http.StatusOK, body)
}

// logOutEverywhere: DELETE /api/v1/sessions ends every session of the caller.
func (s *Server) logOutEverywhere(c *gin.Context) {
	n, err := s.accounts.EndAllSessions(c.Request.Context(), userOf(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.clearSessionCookie(c)
	c.JSON(http.StatusOK, gin.H{"ended": n})
}

// setDisabled: POST /api/v1/users/{handle}/disable or /enable, for site admins.
func (s *Server) setDisabled(disabled bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		u, err := s.accounts.SetDisabled(c.Request.Context(), userOf(c), c.Param("handle"), disabled)
		if err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"user": gin.H{"handle": u.Handle, "disabled": u.Disabled}})
	}
}
