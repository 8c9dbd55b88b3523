package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/cmd/internal/progress"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage/check"
)

// checkCommand runs `fabhub check [-repair] [-quick] [-grace D]`: every inconsistency in
// the stores the environment names, one line each on stdout, and a non-zero exit when
// there is one. -repair then fixes what can be derived again (the search index, the
// design counters, unreferenced blobs past the grace period) and checks once more, so
// what it printed last is what it could not fix.
func checkCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fabhub check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	repair := fs.Bool("repair", false, "rebuild the search index and counters and delete unreferenced blobs past the grace period, then check again")
	quick := fs.Bool("quick", false, "compare blob sizes only, without reading every blob to hash it")
	grace := fs.Duration("grace", 24*time.Hour, "unreferenced blobs younger than this are uploads in flight, not problems")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *grace < time.Minute {
		return errors.New("usage: fabhub check [-repair] [-quick] [-grace 24h] (grace at least 1m)")
	}
	st, cfg, err := openArchiveStores(ctx, getenv, false)
	if err != nil {
		return err
	}
	defer st.close()
	log := slog.New(slog.DiscardHandler)
	ledger := fabrication.New(st.fab, nil, account.Handles{Store: st.accounts}, fabrication.NewFeed(), nil, log,
		fabrication.Options{CreditFloor: &cfg.CreditFloor}).Ledger
	opt := check.Options{Hashes: !*quick, Grace: *grace, Verify: ledger.Verify}
	if c, ok := st.db.(interface{ IntegrityCheck(context.Context) error }); ok {
		opt.DatabaseCheck = c.IntegrityCheck
	}

	run := func() (check.Summary, error) {
		opt.Now = time.Now()
		if progress.IsTerminal(stderr) && opt.Hashes {
			b := progress.NewBar(stderr, "hash blobs")
			defer b.End()
			opt.Progress = b.Update
		}
		return check.Run(ctx, st.archive, st.blobs, opt, func(p check.Problem) { fmt.Fprintln(stdout, p) })
	}
	start := time.Now()
	sum, err := run()
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	fmt.Fprintf(stderr, "checked %d records and %d blobs (%s) in %s: %d problems\n",
		sum.Records, sum.Blobs, progress.MB(sum.BlobBytes), time.Since(start).Round(time.Millisecond), sum.Problems)
	if *repair {
		if err := repairStores(ctx, st, *grace, log, stderr); err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		fmt.Fprintln(stderr, "checking again; what follows could not be repaired:")
		if sum, err = run(); err != nil {
			return fmt.Errorf("check: %w", err)
		}
	}
	if sum.Problems > 0 {
		return fmt.Errorf("check: %d problems", sum.Problems)
	}
	return nil
}

// repairStores does what can be derived again, as the hub's own maintenance tasks do.
func repairStores(ctx context.Context, st *stores, grace time.Duration, log *slog.Logger, stderr io.Writer) error {
	if r, ok := st.catalog.(interface {
		Reindex(context.Context) (int, error)
	}); ok {
		n, err := r.Reindex(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "rebuilt the search index of %d designs\n", n)
	}
	designs := catalog.NewService(st.catalog, st.blobs, st.quotas, log, catalog.Limits{}, nil)
	counts, err := st.fab.DesignJobCounts(ctx)
	if err != nil {
		return err
	}
	remote, err := st.fed.RemoteMakeCounts(ctx)
	if err != nil {
		return err
	}
	n, err := designs.RecomputeCounters(ctx, counts, remote)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "recomputed the counters of %d designs\n", n)
	n, err = designs.CollectOrphans(ctx, st.blobs, grace)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "deleted %d unreferenced blobs and unfinished uploads older than %s\n", n, grace)
	return nil
}
