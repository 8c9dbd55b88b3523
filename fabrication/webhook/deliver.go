package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

const (
	// leaseName is the lease a hub holds while it delivers, so that of several hub
	// replicas sharing a database only one sends a given delivery at a time.
	leaseName = "webhooks:deliver"
	// batch is how many due deliveries one pass takes, and parallel how many of them
	// are on the wire at once: a pass lasts at most batch/parallel timeouts (40 s),
	// well within the lease.
	batch, parallel = 32, 8
	leaseTTL        = 2 * time.Minute
	// maxAnswer is as much of a receiver's answer as is read: it is only drained, so
	// the connection can be reused; a receiver cannot make the hub read a lot.
	maxAnswer = 64 << 10
	// maxErrorText is as much of a failure as is kept for the owner to read.
	maxErrorText = 300
)

// DeliverDue makes one attempt at each due delivery (up to a batch) and records the
// outcomes; it returns how many it tried. It does nothing (0, nil) while another hub
// holds the delivery lease.
func (s *Service) DeliverDue(ctx context.Context) (int, error) {
	// A read first: most passes find nothing due, and need not write a lease for that.
	if due, err := s.store.DueDeliveries(ctx, s.opts.Clock(), 1); err != nil || len(due) == 0 {
		return 0, err
	}
	if s.leases != nil {
		ok, err := s.leases.AcquireLease(ctx, leaseName, s.holder, s.opts.Clock(), leaseTTL)
		if err != nil || !ok {
			return 0, err
		}
		defer s.leases.ReleaseLease(context.WithoutCancel(ctx), leaseName, s.holder)
	}
	due, err := s.store.DueDeliveries(ctx, s.opts.Clock(), batch)
	if err != nil {
		return 0, fmt.Errorf("due webhook deliveries: %w", err)
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, d := range due {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.attempt(ctx, d)
		}()
	}
	wg.Wait()
	return len(due), nil
}

// attempt sends d once and records what came of it.
func (s *Service) attempt(ctx context.Context, d Delivery) {
	h, err := s.store.Hook(ctx, d.HookID)
	if errors.Is(err, storage.ErrNotFound) {
		return // deleted since: its deliveries went with it
	}
	if err != nil {
		s.log.Warn("webhook delivery postponed: its hook could not be read", "delivery_id", d.ID, "err", err)
		return
	}
	status, sendErr := s.send(ctx, h, d)
	if ctx.Err() != nil {
		return // the hub is stopping: not the receiver's failure; it stays due
	}
	now := s.opts.Clock().UTC().Truncate(time.Millisecond)
	d = nextState(d, status, sendErr, now, s.opts.Backoff)
	if err := s.store.SaveAttempt(ctx, d); err != nil && !errors.Is(err, storage.ErrNotFound) {
		// Not recorded: the delivery stays due and is tried again (a receiver may see it
		// twice, with the same X-Fab-Delivery).
		s.log.Warn("webhook attempt not recorded", "delivery_id", d.ID, "err", err)
	}
	if d.State == Failed {
		s.log.Info("webhook delivery failed for good", "delivery_id", d.ID, "hook_id", h.ID, "attempts", d.Attempts)
	}
}

// send makes one signed POST of d's payload to h and returns the receiver's status
// (0 when it did not answer).
func (s *Service) send(ctx context.Context, h Hook, d Delivery) (int, error) {
	ts := strconv.FormatInt(s.opts.Clock().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fabcommons-webhooks/1")
	req.Header.Set(HeaderEvent, d.Event)
	req.Header.Set(HeaderDelivery, d.ID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, "sha256="+Sign(h.Secret, ts, d.Payload))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	return resp.StatusCode, nil
}

// nextState is d after an attempt at now that got status or err: delivered on a 2xx,
// else pending again after the next wait of backoff, or failed once backoff is spent.
func nextState(d Delivery, status int, err error, now time.Time, backoff []time.Duration) Delivery {
	d.Attempts++
	d.LastStatus, d.LastError, d.UpdatedAt = status, "", now
	if err == nil && status >= 200 && status < 300 {
		d.State = Delivered
		return d
	}
	switch {
	case err != nil:
		d.LastError = err.Error()
	default:
		d.LastError = fmt.Sprintf("the receiver answered %d %s", status, http.StatusText(status))
	}
	if len(d.LastError) > maxErrorText {
		d.LastError = strings.ToValidUTF8(d.LastError[:maxErrorText], "")
	}
	if d.Attempts > len(backoff) {
		d.State = Failed
		return d
	}
	d.State, d.NextAttemptAt = Pending, now.Add(backoff[d.Attempts-1])
	return d
}
