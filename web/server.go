// Package web is the hub's HTTP face: the gin router, JSON API handlers, authentication,
// CSRF protection, health and metrics endpoints.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/catalog/picture"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/federation"
)

// Config holds the web settings.
type Config struct {
	MaxBodyBytes        int64         // limit for JSON bodies (default 1 MiB)
	SecureCookies       bool          // set Secure on cookies (the hub is served over HTTPS)
	TrustedProxies      []string      // proxies whose X-Forwarded-For is believed for client IPs
	SignupsPerHour      int           // sign-ups allowed per client IP per hour (default 20)
	MeshChecksPerMinute int           // POST /mesh/check calls per client IP per minute (default 30)
	MaxMeshBytes        int64         // largest STL /mesh/check reads (default 256 MiB)
	PublicURL           string        // how people reach the hub, for links in downloads
	TempDir             string        // for spooling uploads that are not kept ("" = the system's)
	PollWait            time.Duration // longest an agent's poll is held (30 s)
	PollRecheck         time.Duration // how often a held poll re-checks the database (2 s, plus jitter)
	MaxEventStreams     int           // live-view connections at once (1000)
	MinBodyRate         int64         // slowest a request body may arrive, in bytes a second on average (1024; -1: off)
	BodyRateGrace       time.Duration // how long a body may arrive at any rate before MinBodyRate applies (10 s)
	AnalysisBudget      int64         // bytes of meshes analysed at once, uploads and checks together (320 MiB)
	MaxStreamsPerClient int           // live-view connections at once from one client (20)
}

// Pinger is a dependency /readyz checks.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are what the handlers use.
type Deps struct {
	Log      *slog.Logger
	Accounts *account.Service
	Catalog  *catalog.Service
	Fab      fabrication.Fabrication
	Webhooks *webhook.Service  // nil: the hub has no webhooks
	Ready    map[string]Pinger // named dependencies /readyz checks
	Clock    func() time.Time  // time.Now by default

	// Fed is nil when the hub does not federate (no FAB_PUBLIC_URL).
	Fed *federation.Service
}

// Server holds the handlers' dependencies.
type Server struct {
	cfg       Config
	log       *slog.Logger
	accounts  *account.Service
	catalog   *catalog.Service
	labs      *fabrication.Labs
	orders    *fabrication.Orders
	ledger    *fabrication.Ledger
	scheduler *fabrication.Scheduler
	feed      *fabrication.Feed
	webhooks  *webhook.Service
	fed       *federation.Service
	ready     map[string]Pinger
	now       func() time.Time
	signups   *account.Throttle
	// meshChecks limits the anonymous, CPU-heavy mesh check.
	meshChecks *account.Throttle
	// enrolls limits guessing enrolment codes and join tokens.
	enrolls *account.Throttle
	// bodyLimits overrides MaxBodyBytes for upload routes, by route pattern.
	bodyLimits map[string]int64
	pages      pages
	thumbs     imageMemo // card thumbnails (thumbnails.go)
	// remoteThumbs are other hubs' thumbnails of their designs, fetched (thumbnails.go):
	// apart from thumbs, so that a slow hub holds up no card of this hub's.
	remoteThumbs imageMemo
	pics         imageMemo // design pictures, re-encoded (pictures.go)
	streams      *streamLimit
	analysis     analysisBudget
	// gates bound the expensive calls: password checks, mesh analysis, uploads,
	// archives, lineage walks, searches and thumbnails, each to a few at once.
	gates    map[string]gate
	metrics  *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// draining is closed by Drain. Every handler that holds a request open waiting for
	// something to happen (an agent's long poll, a live stream) also waits on it, so a
	// hub shutting down is not kept waiting by requests that would otherwise end only
	// on their own timers.
	draining  chan struct{}
	drainOnce sync.Once
}

// New builds the server. Its Handler serves the whole HTTP surface.
func New(cfg Config, d Deps) *Server {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.SignupsPerHour == 0 {
		cfg.SignupsPerHour = 20
	}
	if cfg.MeshChecksPerMinute == 0 {
		cfg.MeshChecksPerMinute = 30
	}
	if cfg.PollWait == 0 {
		cfg.PollWait = 30 * time.Second
	}
	if cfg.PollRecheck == 0 {
		cfg.PollRecheck = 2 * time.Second
	}
	if cfg.MaxEventStreams == 0 {
		cfg.MaxEventStreams = 1000
	}
	if cfg.MinBodyRate == 0 {
		cfg.MinBodyRate = 1024
	}
	if cfg.MinBodyRate < 0 {
		cfg.MinBodyRate = 0
	}
	if cfg.AnalysisBudget == 0 {
		cfg.AnalysisBudget = 320 << 20
	}
	if cfg.BodyRateGrace == 0 {
		cfg.BodyRateGrace = 10 * time.Second
	}
	if cfg.MaxStreamsPerClient == 0 {
		cfg.MaxStreamsPerClient = 20
	}
	if cfg.MaxMeshBytes == 0 {
		cfg.MaxMeshBytes = catalog.DefaultLimits.FileBytes
	}
	if d.Clock == nil {
		d.Clock = time.Now
	}
	s := &Server{
		cfg: cfg, log: d.Log, accounts: d.Accounts, catalog: d.Catalog, labs: d.Fab.Labs, orders: d.Fab.Orders, ledger: d.Fab.Ledger, scheduler: d.Fab.Scheduler, feed: d.Fab.Feed, webhooks: d.Webhooks, fed: d.Fed, ready: d.Ready, now: d.Clock,
		enrolls:    account.NewThrottle(20, 10*time.Minute, 100_000),
		signups:    account.NewThrottle(cfg.SignupsPerHour, time.Hour, 100_000),
		meshChecks: account.NewThrottle(cfg.MeshChecksPerMinute, time.Minute, 100_000),
		draining:   make(chan struct{}),
	}
	uploads := cfg.MaxBodyBytes
	if d.Catalog != nil {
		uploads = d.Catalog.Limits().VersionBytes + 16<<20 // files plus meta, BOM and multipart framing
	}
	s.bodyLimits = map[string]int64{
		"/api/v1/designs":                uploads,
		"/api/v1/designs/:slug/versions": uploads,
		"/api/v1/designs/import":         uploads,
		"/api/v1/mesh/check":             cfg.MaxMeshBytes + 1<<20,
		"/api/v1/jobs/:id/photos":        picture.MaxBytes + 1<<20, // the image and multipart framing
		ginPath(agentapi.PathJobPhoto):   picture.MaxBytes,
	}
	for _, inbox := range []string{federation.PathSharedInbox, federation.PathInstance + "/inbox", federation.PathPeople + "/:name/inbox", federation.PathLabs + "/:name/inbox"} {
		s.bodyLimits[inbox] = federation.MaxActivityBytes
	}
	s.gates = map[string]gate{"mesh checks": make(gate, 2), "uploads": make(gate, 4), "downloads": make(gate, 8),
		"lineage walks": make(gate, 8), "searches": make(gate, 16), "thumbnails": make(gate, 16),
		"ledger reads":    make(gate, 8), // folding an account's history, or the whole chain
		"password checks": make(gate, 4)} // Argon2id takes 19 MiB and a core's moment each
	s.analysis = analysisBudget{sem: semaphore.NewWeighted(cfg.AnalysisBudget), total: cfg.AnalysisBudget}
	s.streams = &streamLimit{total: cfg.MaxEventStreams, perClient: cfg.MaxStreamsPerClient, byClient: map[string]int{}}
	s.pages = parsePages()
	s.thumbs = imageMemo{maxEntries: 2048, slots: make(chan struct{}, 2)}
	s.remoteThumbs = imageMemo{maxEntries: 2048, slots: make(chan struct{}, 4)}
	s.pics = imageMemo{maxBytes: 64 << 20, slots: make(chan struct{}, 2)}
	s.initMetrics()
	return s
}

// Drain ends every request the hub holds open waiting for something to happen, at
// once and as each would end on its own timer: a held poll is answered 204 (no work),
// a live stream ends (the browser reconnects, to another replica or to this hub once it
// is back). Such requests that arrive later end the same way, at once. Requests that
// are doing work (an upload, a download, a report) are not touched: they finish.
// http.Server.Shutdown closes the listeners and then waits for them; cmd/fabhub calls
// Drain from Shutdown (RegisterOnShutdown). Drain may be called more than once.
func (s *Server) Drain() { s.drainOnce.Do(func() { close(s.draining) }) }

func (s *Server) isDraining() bool {
	select {
	case <-s.draining:
		return true
	default:
		return false
	}
}

// Handler builds the router.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	if err := r.SetTrustedProxies(s.cfg.TrustedProxies); err != nil {
		// A bad entry would leave only part of the list in effect, silently.
		s.log.Error("trusted proxies: none are trusted", "err", err)
		r.SetTrustedProxies(nil)
	}
	r.Use(s.requestID, s.accessLog, s.recoverPanic, s.observe, s.limitBody)
	r.NoRoute(func(c *gin.Context) {
		if s.catalog != nil && !strings.HasPrefix(c.Request.URL.Path, "/api/") {
			markPage(c) // a person followed a bad link: answer with a page
		}
		s.refuse(c, http.StatusNotFound, apiError{Code: "not_found", Message: "no such page or route: " + c.Request.Method + " " + c.Request.URL.Path})
	})
	r.NoMethod(func(c *gin.Context) {
		abort(c, http.StatusMethodNotAllowed, "method_not_allowed", c.Request.Method+" is not allowed on "+c.Request.URL.Path)
	})

	s.routes(r)
	return r
}

// routes is the route table: every route of the hub, grouped by who may call it.
// Finer rules (an owner of this design, an operator of that lab, a site admin) are the
// services' to check, as they depend on the thing acted on.
func (s *Server) routes(r *gin.Engine) {
	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", s.metricsHandler())

	// The API: anyone, or a signed-in person (personal token or session).
	api := r.Group("/api/v1", s.authenticate)
	user := api.Group("", s.signedIn)
	g := func(what string) gin.HandlerFunc { return s.gates[what].handler(what) }
	api.POST("/users", g("password checks"), s.signUp)
	api.POST("/tokens", g("password checks"), s.createToken)
	api.POST("/sessions", g("password checks"), s.logIn)
	api.DELETE("/sessions/current", s.logOut)
	user.GET("/tokens", s.listTokens)
	user.DELETE("/tokens/:id", s.revokeToken)
	user.GET("/me", s.me)
	user.DELETE("/sessions", s.logOutEverywhere)
	user.POST("/users/:handle/disable", s.setDisabled(true))
	user.POST("/users/:handle/enable", s.setDisabled(false))

	api.GET("/designs", g("searches"), s.listDesigns)
	api.GET("/designs/:slug", s.getDesign)
	api.GET("/designs/:slug/versions", s.listVersions)
	api.GET("/designs/:slug/versions/:n", s.getVersion)
	api.GET("/designs/:slug/versions/:n/files/*path", writeDeadline(time.Minute), s.downloadFile)
	api.GET("/designs/:slug/versions/:n/pictures/*path", g("thumbnails"), s.picture)
	api.GET("/designs/:slug/versions/:n/archive.zip", g("downloads"), writeDeadline(time.Minute), s.archive)
	api.GET("/designs/:slug/versions/:n/okh.toml", s.okh)
	api.GET("/designs/:slug/versions/:n/bom.csv", s.bomCSV)
	api.GET("/designs/:slug/fork-options", s.forkOptions)
	api.GET("/designs/:slug/lineage", g("lineage walks"), s.lineage)
	api.GET("/designs/:slug/makes", s.designMakes)
	api.POST("/mesh/check", g("mesh checks"), s.analysis.handler, s.meshCheck)
	user.POST("/designs", g("uploads"), s.analysis.handler, s.createDesign)
	user.POST("/designs/:slug/versions", g("uploads"), s.analysis.handler, s.addVersion)
	user.POST("/designs/import", g("uploads"), s.analysis.handler, s.importDesign)
	user.POST("/designs/:slug/forks", s.fork)
	user.POST("/designs/:slug/flag", s.flagDesign)
	for _, action := range []string{"hide", "unhide", "feature", "unfeature"} {
		user.POST("/designs/:slug/"+action, s.curate(action))
	}
	user.POST("/designs/:slug/dismiss-flags", s.curate("dismiss"))
	user.GET("/flags", s.listFlags)
	s.federationRoutes(r, user)

	if s.orders != nil {
		api.GET("/labs", s.listLabs)
		api.GET("/labs/:slug", s.getLab)
		api.GET("/orders/:id", s.getOrder)
		api.GET("/jobs/:id", s.getJob)
		api.GET("/events", s.events)
		user.POST("/labs", s.createLab)
		user.POST("/labs/:slug/members", s.setMember)
		user.PUT("/labs/:slug/policy", s.setPolicy)
		user.DELETE("/labs/:slug/members/:handle", s.removeMember)
		user.POST("/labs/:slug/machines", s.addMachine)
		user.POST("/labs/:slug/join-tokens", s.createJoinToken)
		user.GET("/labs/:slug/join-tokens", s.listJoinTokens)
		user.DELETE("/labs/:slug/join-tokens/:id", s.revokeJoinToken)
		user.PATCH("/machines/:id", s.patchMachine)
		user.POST("/machines/:id/token", s.rotateToken)
		user.POST("/machines/:id/retire", s.retireMachine)
		user.POST("/orders", s.placeOrder)
		user.POST("/orders/quote", s.quoteOrder)
		api.GET("/ledger/accounts/:account", g("ledger reads"), s.ledgerAccount)
		api.GET("/ledger/transfers", s.listTransfers)
		api.GET("/ledger/entries", s.ledgerEntries)
		api.GET("/ledger/verify", g("ledger reads"), s.verifyLedger)
		user.POST("/ledger/transfers", s.transfer)
		user.POST("/ledger/transfers/:id/reverse", s.reverseTransfer)
		user.PUT("/ledger/accounts/:account/floor", s.setFloor)
		if s.webhooks != nil {
			user.POST("/webhooks", s.createWebhook)
			user.GET("/webhooks", s.listWebhooks)
			user.DELETE("/webhooks/:id", s.deleteWebhook)
			user.POST("/webhooks/:id/test", s.testWebhook)
			user.GET("/webhooks/:id/deliveries", s.webhookDeliveries)
		}
		for _, action := range []string{"approve", "reject", "cancel", "resolve", "harvest"} {
			user.POST("/jobs/:id/"+action, s.jobAction(action))
		}
		api.GET("/jobs/:id/photos/:key", s.jobPhoto)
		user.POST("/jobs/:id/photos", g("uploads"), s.addPhoto)

		// The agent protocol, for agents with a machine token: paths from its contract
		// (agentapi), {id} as gin's :id.
		r.POST(agentapi.PathEnroll, s.agentEnroll)
		r.POST(agentapi.PathRegister, s.agentRegister)
		machine := r.Group("", s.authenticateMachine)
		machine.POST(agentapi.PathPoll, s.agentPoll)
		machine.POST(ginPath(agentapi.PathJobEvents), s.agentEvent)
		machine.GET(ginPath(agentapi.PathJobFile), writeDeadline(time.Minute), s.agentFile)
		machine.POST(ginPath(agentapi.PathJobPhoto), g("uploads"), s.agentPhoto)
	}

	// The pages: anyone, or a signed-in person (others are sent to log in first).
	if s.catalog == nil {
		return
	}
	r.GET("/assets/*path", serveAssets())
	page := r.Group("", markPage, s.sameSiteForms, s.authenticate)
	member := page.Group("", s.signedInPage)
	page.GET("/", s.homePage)
	page.GET("/search", g("searches"), s.searchPage)
	page.GET("/login", s.loginPage)
	page.POST("/login", g("password checks"), s.loginPost)
	page.GET("/signup", s.signupPage)
	page.POST("/signup", g("password checks"), s.signupPost)
	page.POST("/logout", s.logoutPost)
	page.GET("/designs/:slug", s.negotiateDesign, g("lineage walks"), s.designPage) // it walks the lineage
	page.GET("/designs/:slug/thumbnail.png", g("thumbnails"), s.thumbnail)
	member.GET("/account", s.accountPage)
	member.POST("/account/tokens", g("password checks"), s.accountTokenPost)
	member.POST("/account/tokens/:id/revoke", s.accountTokenRevoke)
	member.POST("/account/sessions/end-all", s.accountEndAll)
	member.POST("/admin/users", s.adminUserPost)
	member.GET("/admin", s.adminPage)
	member.POST("/admin/designs/:slug/:action", s.adminPost)
	member.GET("/designs/new", s.uploadPage)
	member.GET("/designs/import", s.importPage)
	member.GET("/designs/:slug/versions/new", s.uploadPage)
	member.POST("/designs/:slug/flag", s.flagPost)
	member.GET("/designs/:slug/fork", s.forkPage)
	member.POST("/designs/:slug/fork", s.forkPost)
	if s.orders != nil {
		page.GET("/labs", s.labsPage)
		page.GET("/labs/:slug", s.negotiateActor(federation.KindLab, "slug"), s.labPage)
		page.GET("/orders/:id", s.orderPage)
		page.GET("/jobs/:id", s.jobPage)
		page.GET("/people/:handle", s.negotiateActor(federation.KindPerson, "handle"), g("ledger reads"), s.personPage)
		member.GET("/designs/:slug/make", s.makePage)
		member.POST("/designs/:slug/make", s.makePost)
	}
}

// ginPath turns a path of the agent contract (agentapi) into a gin route: {id} as :id.
func ginPath(p string) string { return strings.Replace(p, "{id}", ":id", 1) }

// streamLimit bounds the live streams open at once, in all and per client, so no one
// client can hold the hub's connections.
type streamLimit struct {
	mu               sync.Mutex
	total, perClient int
	n                int
	byClient         map[string]int
}

// open takes a place for client's stream; release gives it back. ok is false when
// the hub or the client is at its limit.
func (l *streamLimit) open(client string) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n >= l.total || l.byClient[client] >= l.perClient {
		return nil, false
	}
	l.n++
	l.byClient[client]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.n--
		if l.byClient[client]--; l.byClient[client] == 0 {
			delete(l.byClient, client)
		}
	}, true
}
