// Command fabhub is the fabcommons hub: the HTTP API and web UI, the scheduler and the
// maintenance cron, in one binary. It only wires: config, constructors, run.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/storage/archive"
	"github.com/fabcommons/fabcommons/storage/localblob"
	"github.com/fabcommons/fabcommons/storage/mongo"
	"github.com/fabcommons/fabcommons/storage/s3blob"
	"github.com/fabcommons/fabcommons/storage/sqlite"
	"github.com/fabcommons/fabcommons/web"
)

// defaultMemoryLimit is the heap size the collector works to stay under: the analysis
// budget's worst case (a binary triangle soup peaks at about 2.1 times its size since
// catalog/mesh analyses in two phases, down from 2.4; scripts/bench-mesh.sh) plus the
// rest of the hub, with room to spare.
const defaultMemoryLimit = 900 << 20

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fabhub:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "mesh":
			return meshCommand(args[1:], stdout, stderr)
		case "export":
			return exportCommand(ctx, args[1:], getenv, stdout, stderr)
		case "import":
			return importCommand(ctx, args[1:], getenv, os.Stdin, stderr)
		case "check":
			return checkCommand(ctx, args[1:], getenv, stdout, stderr)
		case "backup":
			return backupCommand(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	cfg, err := parseConfig(args, getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)
	log.Info("starting fabhub", "config", cfg)
	if getenv("GOMEMLIMIT") == "" {
		// Garbage from a finished mesh analysis (hundreds of MiB of tables) would
		// otherwise stay until the heap doubles; a soft limit has the collector return
		// it first. GOMEMLIMIT, Go's own setting, overrides it.
		debug.SetMemoryLimit(defaultMemoryLimit)
	}

	if cfg.PprofAddr != "" {
		go func() {
			// A separate listener, so profiles never share the public address.
			log.Warn("profiling enabled", "addr", cfg.PprofAddr, "err", http.ListenAndServe(cfg.PprofAddr, pprofMux()))
		}()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	stores, err := openStores(ctx, cfg)
	if err != nil {
		return err
	}
	defer stores.close()

	tmp := filepath.Join(cfg.DataDir, "tmp")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		return fmt.Errorf("create temp dir: %w", err)
	}
	hub, err := web.NewHub(web.HubConfig{
		Web: web.Config{
			MaxBodyBytes:   cfg.MaxBodyBytes,
			SecureCookies:  strings.HasPrefix(cfg.PublicURL, "https://"),
			TrustedProxies: cfg.Proxies,
			PublicURL:      cfg.PublicURL,
			MaxMeshBytes:   cfg.MaxFileBytes,
			TempDir:        tmp,
		},
		Limits: catalog.Limits{FileBytes: cfg.MaxFileBytes, Files: cfg.MaxFiles,
			DesignsPerDay: cfg.DesignsPerDay, UploadBytesPerDay: cfg.UploadBytesPerDay},
		Fabrication: fabrication.Options{LeaseTTL: cfg.LeaseTTL, LabsPerUser: cfg.LabsPerUser, JobsPerDay: cfg.JobsPerDay, CreditFloor: &cfg.CreditFloor},
		Webhooks:    webhook.Options{AllowHosts: cfg.WebhookHosts},
		Federation:  federation.Options{AllowHosts: cfg.FedHosts},
		Log:         log,
	}, web.Stores{Accounts: stores.accounts, Catalog: stores.catalog, Fabrication: stores.fab, Blobs: stores.blobs, Quotas: stores.quotas,
		Webhooks: stores.webhooks, Leases: stores.leases, Federation: stores.fed,
		Ready: map[string]web.Pinger{"db": stores.db, "blobs": stores.blobs}})
	if err != nil {
		return err
	}
	if hub.Fed == nil {
		log.Info("federation is off: set FAB_PUBLIC_URL to the hub's public URL to federate")
	}
	cron, err := fabrication.NewMaintenance(stores.leases, log, nil, maintenanceTasks(stores, hub.Catalog, hub.Fab, hub.Accounts))
	if err != nil {
		return fmt.Errorf("schedule maintenance: %w", err)
	}
	cron.Start()
	background, stopBackground := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { defer close(ran); hub.Run(background) }()
	err = serve(ctx, log, cfg, hub.Handler, hub.Drain)
	// Nothing more is served: the background work and the maintenance stop, and then
	// the records of free labs' makes still queued are written, before the store
	// closes (the caller's). Within 10 s: they take milliseconds.
	stopBackground()
	<-ran
	cron.Stop()
	flush, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ferr := hub.Fab.Ledger.Flush(flush); ferr != nil {
		log.Warn("ledger: stopping with records unwritten; SettleEnded will write them", "err", ferr)
	}
	return err
}

// stores is what openStores connected, with the seams the rest of the hub uses.
type stores struct {
	db       web.Pinger
	archive  archive.Store
	blobs    storage.Blobs
	accounts account.Store
	catalog  catalog.Store
	fab      fabrication.Store
	leases   storage.Leases
	quotas   storage.Quotas
	webhooks webhook.Store
	fed      federation.Store
	prune    func(ctx context.Context) (int, error) // backend housekeeping, if any
	close    func()
}

// openStores picks each backend by an explicit switch on config, defaulting to the
// embedded ones.
func openStores(ctx context.Context, cfg Config) (*stores, error) {
	s := &stores{}
	var closers []func() error
	s.close = func() {
		for _, c := range closers {
			c()
		}
	}
	switch {
	case cfg.DB == "":
		db, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "fabcommons.db"))
		if err != nil {
			return nil, fmt.Errorf("open SQLite store: %w", err)
		}
		s.db, s.archive, s.accounts, s.catalog, s.fab, s.leases, s.quotas = db, db, db.Accounts(), db.Catalog(), db.Fabrication(), db.Leases(), db.Quotas()
		s.webhooks, s.fed = db.Webhooks(), db.Federation()
		closers = append(closers, db.Close)
	default:
		db, err := mongo.Open(ctx, cfg.DB)
		if err != nil {
			return nil, fmt.Errorf("open MongoDB store %s: %w", redact(cfg.DB), err)
		}
		s.db, s.archive, s.accounts, s.catalog, s.fab, s.leases, s.quotas = db, db, db.Accounts(), db.Catalog(), db.Fabrication(), db.Leases(), db.Quotas()
		s.webhooks, s.fed = db.Webhooks(), db.Federation()
		s.prune = func(ctx context.Context) (int, error) { return db.PruneRevisions(ctx, time.Hour) }
		closers = append(closers, db.Close)
	}
	switch {
	case cfg.Blobs == "":
		b, err := localblob.Open(filepath.Join(cfg.DataDir, "blobs"))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("open local blob store: %w", err)
		}
		s.blobs = b
	default:
		bc, err := s3blob.ParseURL(cfg.Blobs)
		if err != nil {
			s.close()
			return nil, err
		}
		b, err := s3blob.Open(ctx, bc)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("open S3 blob store %s: %w", redact(cfg.Blobs), err)
		}
		s.blobs = b
	}
	return s, nil
}

// maintenanceTasks are the cron's jobs, each run by one replica at a time.
func maintenanceTasks(st *stores, designs *catalog.Service, fab fabrication.Fabrication, accounts *account.Service) []fabrication.Task {
	tasks := []fabrication.Task{
		{Name: "expire-leases", Spec: "*/5 * * * * *", Run: fab.Scheduler.ExpireLeases},
		{Name: "mark-offline", Spec: "*/30 * * * * *", Run: fab.Labs.MarkOffline},
		{Name: "collect-orphan-blobs", Spec: "0 17 * * * *", Run: func(ctx context.Context) (int, error) {
			return designs.CollectOrphans(ctx, st.blobs, 24*time.Hour)
		}},
		{Name: "recompute-counters", Spec: "0 */10 * * * *", Run: func(ctx context.Context) (int, error) {
			counts, err := st.fab.DesignJobCounts(ctx)
			if err != nil {
				return 0, err
			}
			remote, err := st.fed.RemoteMakeCounts(ctx)
			if err != nil {
				return 0, err
			}
			return designs.RecomputeCounters(ctx, counts, remote)
		}},
		{Name: "purge-sessions", Spec: "0 3 * * * *", Run: accounts.PurgeSessions},
		{Name: "settle-ended-jobs", Spec: "0 */5 * * * *", Run: fab.Orders.SettleEnded},
	}
	if st.prune != nil {
		tasks = append(tasks, fabrication.Task{Name: "prune-revisions", Spec: "0 */15 * * * *", Run: st.prune})
	}
	return tasks
}

// serve runs the HTTP server until ctx ends, then lets in-flight requests finish:
// drain, called as the shutdown begins, ends the requests that would otherwise be
// held open until their own timers run out (long polls, live streams).
func serve(ctx context.Context, log *slog.Logger, cfg Config, h http.Handler, drain func()) error {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(drain)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("fabhub listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "wait", cfg.ShutdownWait)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownWait)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
