package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
)

// Stores are the seams a hub is built on. cmd/fabhub opens them by its configuration;
// tests open embedded ones.
type Stores struct {
	Accounts    account.Store
	Catalog     catalog.Store
	Fabrication fabrication.Store
	Blobs       storage.Blobs
	Quotas      storage.Quotas    // daily quotas per person; nil: none
	Webhooks    webhook.Store     // hooks and their deliveries; nil: no webhooks
	Leases      storage.Leases    // named leases; webhook deliveries run under one (nil: a single hub)
	Federation  federation.Store  // keys, follows and blocks; nil: the hub does not federate
	Ready       map[string]Pinger // what /readyz checks, by name
}

// HubConfig is everything a hub is built with besides its stores.
type HubConfig struct {
	Web         Config
	Limits      catalog.Limits
	Fabrication fabrication.Options
	Accounts    account.Options
	Webhooks    webhook.Options
	Federation  federation.Options // its PublicURL is Web.PublicURL; without one the hub does not federate
	Log         *slog.Logger
	Clock       func() time.Time // time.Now by default
}

// Hub is an assembled hub: its services and the HTTP handler that serves them.
type Hub struct {
	Accounts *account.Service
	Catalog  *catalog.Service
	Fab      fabrication.Fabrication
	Webhooks *webhook.Service    // nil when the stores have no webhook store
	Fed      *federation.Service // nil when the hub does not federate
	Handler  http.Handler
	server   *Server
	log      *slog.Logger
	made     *makes // jobs done, to tell remote designs' hubs of (nil: no federation)
}

// NewHub assembles a hub: the services over the stores, the glue between catalog and
// fabrication, and the router. It is the one constructor cmd/fabhub and the tests use.
func NewHub(cfg HubConfig, st Stores) (*Hub, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Accounts.Clock == nil {
		cfg.Accounts.Clock = cfg.Clock
	}
	accounts, err := account.NewService(st.Accounts, log, cfg.Accounts)
	if err != nil {
		return nil, fmt.Errorf("start accounts: %w", err)
	}
	designs := catalog.NewService(st.Catalog, st.Blobs, st.Quotas, log, cfg.Limits, cfg.Clock)
	if cfg.Fabrication.Clock == nil {
		cfg.Fabrication.Clock = cfg.Clock
	}
	makeable := &printables{catalog: designs}
	fab := fabrication.New(st.Fabrication, makeable, account.Handles{Store: st.Accounts}, fabrication.NewFeed(), st.Quotas, log, cfg.Fabrication)
	var hooks *webhook.Service
	if st.Webhooks != nil {
		if cfg.Webhooks.Clock == nil {
			cfg.Webhooks.Clock = cfg.Clock
		}
		hooks = webhook.NewService(st.Webhooks, managedLabs{fab.Labs}, st.Leases, log, cfg.Webhooks)
		fab.Feed.Tap(func(c fabrication.Change) {
			if n, ok := noticeOf(c); ok {
				hooks.Notify(n)
			}
		})
	}
	var fed *federation.Service
	if st.Federation != nil && cfg.Web.PublicURL != "" {
		cfg.Federation.PublicURL = cfg.Web.PublicURL
		if cfg.Federation.Clock == nil {
			cfg.Federation.Clock = cfg.Clock
		}
		fed, err = federation.NewService(st.Federation, directory{accounts: st.Accounts, labs: fab.Labs}, fedDesigns{designs}, st.Leases, log, cfg.Federation)
		if err != nil {
			return nil, fmt.Errorf("start federation: %w", err)
		}
		designs.UseFetcher(fed)
	}
	var made *makes
	if fed != nil {
		makeable.fetch = fed
		made = newMakes()
		tapMakes(fab.Feed, made, log)
	}
	srv := New(cfg.Web, Deps{Log: log, Accounts: accounts, Catalog: designs, Fab: fab, Webhooks: hooks, Fed: fed, Ready: st.Ready, Clock: cfg.Clock})
	makeable.budget = srv.analysis
	return &Hub{Accounts: accounts, Catalog: designs, Fab: fab, Webhooks: hooks, Fed: fed, Handler: srv.Handler(), server: srv, log: log, made: made}, nil
}

// Run does the hub's background work that is not the maintenance cron's (recording
// and delivering webhooks, delivering activities; when it starts, writing the free
// labs' records a hub before it lost in a crash) until ctx ends.
func (h *Hub) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { // what a hub before this one may have lost in a crash
		if n, err := h.Fab.Orders.RecordLost(ctx); err != nil || n > 0 {
			h.log.Info("ledger: records of free labs' makes a stopped hub had not written", "written", n, "err", err)
		}
	})
	if h.Fed != nil {
		wg.Go(func() { h.Fed.Run(ctx) })
		wg.Go(func() { h.tellMakes(ctx) })
	}
	if h.Webhooks != nil {
		h.Webhooks.Run(ctx)
	}
	wg.Wait()
}

// Drain ends the requests the hub holds open waiting (agents' long polls, live
// streams) at once; see Server.Drain. Call it when shutting down.
func (h *Hub) Drain() { h.server.Drain() }

// printables shows catalog versions to fabrication as things to make. A remote
// design's meshes are fetched from its origin and analysed first, within the server's
// analysis budget.
type printables struct {
	catalog *catalog.Service
	fetch   catalog.Fetcher // nil when the hub does not federate
	budget  analysisBudget  // the server's, set once it is built
}

// readyToMake fetches and analyses the meshes of a remote design's version that have
// no report yet (catalog.ReadyToMake), taking the largest of them from the analysis
// budget: storage.ErrUnavailable (503) when other analyses hold it.
func (p *printables) readyToMake(ctx context.Context, d catalog.Design, v catalog.Version) (catalog.Version, error) {
	var need int64
	for _, f := range v.Files {
		if f.Kind == catalog.FileMesh && f.Mesh == nil {
			need = max(need, f.Size)
		}
	}
	if need == 0 {
		return v, nil
	}
	release, ok := p.budget.reserve(need)
	if !ok {
		return catalog.Version{}, fmt.Errorf("%w: the hub is analysing other meshes; try again in a few seconds", storage.ErrUnavailable)
	}
	defer release()
	return p.catalog.ReadyToMake(ctx, d, v, p.fetch)
}

func (p *printables) Printable(ctx context.Context, slug string, version int) (fabrication.Printable, error) {
	var d catalog.Design
	var v catalog.Version
	var err error
	if version == 0 {
		var latest *catalog.Version
		d, latest, err = p.catalog.Design(ctx, catalog.Actor{}, slug)
		if err == nil && latest == nil {
			return fabrication.Printable{}, storage.Invalid("design", "the design is hidden and cannot be made")
		}
		if latest != nil {
			v = *latest
		}
	} else {
		d, v, err = p.catalog.Version(ctx, catalog.Actor{}, slug, version)
	}
	if err != nil {
		return fabrication.Printable{}, err
	}
	if d.Remote() {
		if v, err = p.readyToMake(ctx, d, v); err != nil {
			return fabrication.Printable{}, err
		}
	}
	out := fabrication.Printable{DesignID: d.ID, Slug: d.Slug, Title: d.Title, Version: v.Number}
	for _, f := range v.Files {
		if f.Kind != catalog.FileMesh || f.Mesh == nil || f.Mesh.Triangles == 0 {
			continue
		}
		s := f.Mesh.BBox.Size
		out.Files = append(out.Files, fabrication.PrintableFile{Path: f.Path, SHA256: f.SHA256, Size: f.Size,
			BBox: fabrication.Volume{X: s[0], Y: s[1], Z: s[2]}, Volume: f.Mesh.Volume})
	}
	for _, l := range v.BOM {
		if l.Kind == catalog.KindPrinted {
			out.BOM = append(out.BOM, fabrication.PrintableLine{Ref: l.Ref, File: l.File, Qty: int(l.Qty), Material: l.Material})
		}
	}
	return out, nil
}

func (p *printables) Hidden(ctx context.Context, designID string) (bool, error) {
	return p.catalog.Hidden(ctx, designID)
}
