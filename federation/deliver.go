package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

const (
	// deliverLease is the lease a hub holds while it delivers, so that of several hub
	// replicas sharing a database only one sends a given activity at a time.
	deliverLease = "federation:deliver"
	// deliverBatch is how many due deliveries one pass takes (one per destination), and
	// parallel how many are on the wire at once: a pass lasts at most
	// deliverBatch/parallel attempts, each at most three timeouts (finding a hub's inbox
	// takes two), so 2 minutes with the default 10 s, within deliverLeaseTTL.
	deliverBatch, parallel = 32, 8
	deliverLeaseTTL        = 5 * time.Minute
	// maxQueuedPerHost and Options.MaxWaiting bound the deliveries waiting, for one
	// host and in all: a remote that has the hub owe it activities (a Follow is
	// answered with an Accept) and then never takes them cannot grow the queue without
	// end.
	maxQueuedPerHost = 1000
)

// enqueue stores activity from a local actor for inbox, to be sent by Run: never in
// the caller's request, and still when the hub has restarted meanwhile.
func (s *Service) enqueue(ctx context.Context, from Local, inbox string, activity map[string]any) error {
	return s.queue(ctx, from, Delivery{Inbox: inbox}, activity)
}

// enqueueToHub is enqueue to the instance actor of the hub at hubURL (scheme://host),
// whose inbox is found (by WebFinger) when the activity is sent: a hub that cannot be
// reached now is tried again as any failed delivery is.
func (s *Service) enqueueToHub(ctx context.Context, from Local, hubURL string, activity map[string]any) error {
	return s.queue(ctx, from, Delivery{Hub: hubURL}, activity)
}

func (s *Service) queue(ctx context.Context, from Local, d Delivery, activity map[string]any) error {
	inbox := d.Inbox + d.Hub
	d.Host = hostOf(inbox)
	body, err := json.Marshal(activity)
	if err != nil {
		return fmt.Errorf("encode an activity for %s: %w", inbox, err)
	}
	full := func(n int, host string) error {
		s.log.Warn("federation: too many deliveries wait; an activity is not queued", "inbox", inbox, "host", host, "waiting", n)
		return fmt.Errorf("%w: %d activities wait to be delivered (to %q; \"\" is every host); try again later", storage.ErrUnavailable, n, host)
	}
	n, err := s.store.CountDeliveries(ctx, d.Host)
	if err != nil {
		return fmt.Errorf("count the deliveries waiting: %w", err)
	}
	if n >= maxQueuedPerHost {
		return full(n, d.Host)
	}
	n, ok, err := s.reserveWaiting(ctx)
	if err != nil {
		return fmt.Errorf("count the deliveries waiting: %w", err)
	}
	if !ok {
		return full(n, "")
	}
	now := s.opts.Clock().UTC().Truncate(time.Millisecond)
	// An id in the order of queueing, which is the order of sending to one inbox (a
	// Follow before its Undo), also when the clock gives two the same instant.
	d.ID = fmt.Sprintf("%016x%08x%s", now.UnixNano(), s.queued.Add(1), randomHex(4))
	d.From, d.Body, d.Due, d.CreatedAt = s.ActorURL(from), body, now, now
	if err := s.store.AddDelivery(ctx, d); err != nil {
		s.waiting.release()
		return fmt.Errorf("queue an activity for %s: %w", inbox, err)
	}
	s.wakeUp()
	return nil
}

// waitingCount is how many deliveries wait for every host, as last counted plus those
// queued here since. It is counted afresh when a second old: a full count of the
// table for each activity queued cost a design published to many followers one count
// per follower. Deliveries sent, and those other replicas queue, are seen within the
// second.
type waitingCount struct {
	mu sync.Mutex
	n  int
	at time.Time // wall clock
}

// reserveWaiting takes a place among the deliveries that may wait for every host
// (Options.MaxWaiting), and says how many wait; ok is false when none is left. A
// place taken is counted at once, so that activities queued at the same time cannot
// all take the last one; release gives it back when the delivery was not stored.
func (s *Service) reserveWaiting(ctx context.Context) (n int, ok bool, err error) {
	w := &s.waiting
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.at.IsZero() || time.Since(w.at) >= time.Second {
		n, err := s.store.CountDeliveries(ctx, "")
		if err != nil {
			return 0, false, err
		}
		w.n, w.at = n, time.Now()
	}
	if w.n >= s.opts.MaxWaiting {
		return w.n, false, nil
	}
	w.n++
	return w.n - 1, true, nil
}

func (w *waitingCount) release() {
	w.mu.Lock()
	w.n--
	w.mu.Unlock()
}

// wakeUp has Run look for due deliveries now rather than at its next poll.
func (s *Service) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default: // it is woken already
	}
}

// Run delivers queued activities until ctx ends, retrying each failed one after the
// waits of Backoff, then giving it up; and it pulls the outboxes of newly accepted
// follows.
func (s *Service) Run(ctx context.Context) {
	tick := time.NewTicker(s.opts.PollEvery)
	defer tick.Stop()
	for {
		for range 1000 { // a bound, should the store fail to record retries
			n, err := s.DeliverDue(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("federation: deliveries failed", "err", err)
			}
			if err != nil || n == 0 {
				break // else more may be due at once: the next of a destination whose first went
			}
		}
		select {
		case <-ctx.Done():
			return
		case f := <-s.resyncs:
			go s.resync(ctx, f)
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// DeliverDue makes one attempt at each due delivery (up to a batch), at most one per
// destination, the first queued of those to it (so they go in order, and one that
// waits for its retry holds back only its own destination's), and says how many it
// tried. It does nothing (0, nil) while another hub replica holds the delivery lease.
func (s *Service) DeliverDue(ctx context.Context) (int, error) {
	if due, err := s.store.DueDeliveries(ctx, s.opts.Clock(), 1); err != nil || len(due) == 0 {
		return 0, err // most passes find nothing due, and need not write a lease for that
	}
	if s.leases != nil {
		ok, err := s.leases.AcquireLease(ctx, deliverLease, s.holder, s.opts.Clock(), deliverLeaseTTL)
		if err != nil || !ok {
			return 0, err
		}
		defer s.leases.ReleaseLease(context.WithoutCancel(ctx), deliverLease, s.holder)
	}
	due, err := s.store.DueDeliveries(ctx, s.opts.Clock(), deliverBatch)
	if err != nil {
		return 0, fmt.Errorf("due deliveries: %w", err)
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, d := range due { // one per destination: the store holds back the rest
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.attempt(ctx, d)
		})
	}
	wg.Wait()
	return len(due), nil
}

// attempt sends d once and records what came of it: gone when sent (or given up, or
// its sender is gone), else due again after the next wait of the backoff.
func (s *Service) attempt(ctx context.Context, d Delivery) {
	from, err := s.localOf(ctx, d.From)
	if errors.Is(err, storage.ErrNotFound) {
		s.log.Info("federation: an activity's sender is gone; it is not sent", "inbox", d.Inbox)
		s.forget(ctx, d)
		return
	}
	if err == nil && d.Inbox == "" {
		d.Inbox, err = s.hubInbox(ctx, d.Hub)
	}
	if err == nil {
		err = s.send(ctx, from, d)
	}
	if ctx.Err() != nil {
		return // the hub is stopping: not the receiver's failure; it stays due
	}
	switch {
	case err == nil:
		s.forget(ctx, d)
	case d.Attempts >= len(s.opts.Backoff):
		s.log.Warn("federation: delivery given up", "inbox", d.Inbox, "hub", d.Hub, "attempts", d.Attempts+1, "err", err)
		s.forget(ctx, d)
	default:
		s.log.Info("federation: delivery failed; it will be retried", "inbox", d.Inbox, "hub", d.Hub, "attempt", d.Attempts+1, "err", err)
		wait := s.opts.Backoff[d.Attempts]
		if err := s.store.RetryDelivery(ctx, d.ID, d.Attempts+1, s.opts.Clock().Add(wait)); err != nil {
			s.log.Warn("federation: a retry was not recorded; the delivery stays due", "inbox", d.Inbox, "err", err)
			return
		}
		time.AfterFunc(wait, s.wakeUp)
	}
}

// hubInbox is the inbox of the instance actor of the hub at hubURL (its shared inbox
// when it has one).
func (s *Service) hubInbox(ctx context.Context, hubURL string) (string, error) {
	actor, err := s.Resolve(ctx, hubURL)
	if err != nil {
		return "", fmt.Errorf("find the hub %s: %w", hubURL, err)
	}
	if actor.SharedInbox != "" {
		return actor.SharedInbox, nil
	}
	return actor.Inbox, nil
}

// forget deletes a delivery that is over. Not deleted, it is sent again (a receiver
// may see an activity twice, with the same id).
func (s *Service) forget(ctx context.Context, d Delivery) {
	if err := s.store.DeleteDelivery(ctx, d.ID); err != nil {
		s.log.Warn("federation: a delivery that is over was not deleted", "inbox", d.Inbox, "err", err)
	}
}

// send POSTs d, signed by from. A blocked host is not sent to.
func (s *Service) send(ctx context.Context, from Local, d Delivery) error {
	if err := s.refuseBlocked(ctx, hostOf(d.Inbox)); err != nil {
		return nil // blocked since it was queued: dropped, not retried
	}
	if err := s.guard.CheckURL(d.Inbox); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Inbox, bytes.NewReader(d.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", MediaActivity)
	req.Header.Set("Accept", MediaActivity)
	req.Header.Set("User-Agent", userAgent)
	if err := s.signAs(ctx, req, d.Body, from); err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %d %s", d.Inbox, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return nil
}

// signAs sets req's Date and Host and signs it with the key of from (body nil for a
// GET), as Mastodon signs: (request-target) host date, and digest content-type with a
// body.
func (s *Service) signAs(ctx context.Context, req *http.Request, body []byte, from Local) error {
	_, priv, err := s.keyOf(ctx, from)
	if err != nil {
		return err
	}
	req.Header.Set("Date", s.opts.Clock().UTC().Format(http.TimeFormat))
	req.Header.Set("Host", req.URL.Host)
	return sign(req, body, priv, s.ActorURL(from)+"#main-key")
}
