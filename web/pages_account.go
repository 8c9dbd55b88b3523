package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/storage"
)

func (s *Server) loginPage(c *gin.Context) {
	s.render(c, http.StatusOK, "login", "Log in", gin.H{"Next": localNext(c.Query("next"))})
}

// loginPost signs in from the HTML form. There is no session yet, so no CSRF token to
// check; SameSite=Lax on the new cookie keeps other sites from using it.
func (s *Server) loginPost(c *gin.Context) {
	handle, next := c.PostForm("handle"), localNext(c.PostForm("next"))
	u, err := s.accounts.Authenticate(c.Request.Context(), handle, c.PostForm("password"), clientOf(c))
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
	c.Redirect(http.StatusSeeOther, localNext(next))
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
	data := gin.H{"Tokens": tokens, "Secret": secret, "Error": errMsg, "Designs": mine.Designs}
	if !s.ledgerOf(c, fabrication.UserAccount(u.Handle), data) {
		return
	}
	if !s.webhooksOf(c, data) {
		return
	}
	s.render(c, status, "account", "Your account", data)
}

// ledgerOf puts an account's state and its latest moves into a page's data; false
// when it failed (and the error was answered).
func (s *Server) ledgerOf(c *gin.Context, account string, data gin.H) bool {
	data["Ledger"], data["Moves"] = fabrication.Account{Holds: map[string]int64{}}, []fabrication.LedgerEntry{}
	if s.ledger == nil {
		return true
	}
	a, err := s.ledger.Account(c.Request.Context(), account)
	if err != nil {
		s.fail(c, err)
		return false
	}
	moves, err := s.ledger.Transfers(c.Request.Context(), account, 0, 20)
	if err != nil {
		s.fail(c, err)
		return false
	}
	data["Ledger"], data["Moves"] = a, moves
	return true
}

// personPage: GET /people/:handle, anyone: a person's designs and machine time.
func (s *Server) personPage(c *gin.Context) {
	handle := account.NormalizeHandle(c.Param("handle"))
	data := gin.H{"Handle": handle}
	if !s.ledgerOf(c, fabrication.UserAccount(handle), data) { // 404 for nobody
		return
	}
	theirs, err := s.catalog.Search(c.Request.Context(), catalog.Query{Owner: handle, Limit: 50})
	if err != nil {
		s.fail(c, err)
		return
	}
	data["Designs"] = theirs.Designs
	s.render(c, http.StatusOK, "person", handle, data)
}

// accountTokenPost mints a token from the account page. It asks for the password again:
// a stolen session cookie must not turn into a token that outlives the session.
func (s *Server) accountTokenPost(c *gin.Context) {
	u := userOf(c)
	if _, err := s.accounts.Authenticate(c.Request.Context(), u.Handle, c.PostForm("password"), clientOf(c)); err != nil {
		if errors.Is(err, account.ErrBadCredentials) {
			err = storage.Invalid("password", "the password is wrong")
		}
		status, e := s.classify(c, err)
		s.renderAccount(c, status, "", e.Message)
		return
	}
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
	s.render(c, http.StatusOK, "admin", "Curation", gin.H{"Designs": all.Designs, "Q": c.Query("q"), "Flagged": flagged, "Notice": c.Query("notice")})
}

func (s *Server) adminPost(c *gin.Context) {
	if err := s.curation(c, c.Param("slug"), c.Param("action")); err != nil {
		s.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, localNext(c.PostForm("back")))
}

// accountEndAll signs the person out of every browser, this one too.
func (s *Server) accountEndAll(c *gin.Context) {
	if _, err := s.accounts.EndAllSessions(c.Request.Context(), userOf(c)); err != nil {
		s.fail(c, err)
		return
	}
	s.clearSessionCookie(c)
	c.Redirect(http.StatusSeeOther, "/")
}

// adminUserPost disables or enables an account from the admin page.
func (s *Server) adminUserPost(c *gin.Context) {
	disable := c.PostForm("action") == "disable"
	u, err := s.accounts.SetDisabled(c.Request.Context(), userOf(c), c.PostForm("handle"), disable)
	if err != nil {
		s.fail(c, err)
		return
	}
	word := "enabled"
	if u.Disabled {
		word = "disabled"
	}
	c.Redirect(http.StatusSeeOther, "/admin?notice="+url.QueryEscape(u.Handle+" is "+word))
}

// hookView is a hook with its latest deliveries, for the account page.
type hookView struct {
	webhook.Hook
	Deliveries []webhook.Delivery
}

// webhooksOf puts the caller's hooks and their latest deliveries into a page's data;
// false when it failed (and the error was answered).
func (s *Server) webhooksOf(c *gin.Context, data gin.H) bool {
	if s.webhooks == nil {
		return true
	}
	data["WebhookEvents"] = webhook.Events
	hooks, err := s.webhooks.Hooks(c.Request.Context(), hookActor(c))
	if err != nil {
		s.fail(c, err)
		return false
	}
	views := []hookView{}
	for _, h := range hooks {
		ds, err := s.webhooks.Deliveries(c.Request.Context(), hookActor(c), h.ID, 5)
		if err != nil {
			s.fail(c, err)
			return false
		}
		views = append(views, hookView{Hook: h, Deliveries: ds})
	}
	data["Webhooks"] = views
	return true
}
