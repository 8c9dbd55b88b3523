package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// delivery is one activity on its way to one inbox.
type delivery struct {
	from    Local
	inbox   string
	body    []byte
	attempt int // attempts made so far
}

// parallel is how many deliveries are on the wire at once.
const parallel = 4

// enqueue queues activity from a local actor for inbox. Delivery happens in Run,
// never in the caller's request. The queue lives in this hub's memory: a hub that
// stops drops what it has not delivered yet (a follow stays pending; the admin
// follows again).
func (s *Service) enqueue(from Local, inbox string, activity map[string]any) {
	body, err := json.Marshal(activity)
	if err != nil {
		s.log.Error("federation: an activity did not encode", "err", err)
		return
	}
	s.push(delivery{from: from, inbox: inbox, body: body})
}

func (s *Service) push(d delivery) {
	select {
	case s.out <- d:
	default:
		s.log.Warn("federation: the delivery queue is full; an activity is dropped", "inbox", d.inbox)
	}
}

// Run delivers queued activities until ctx ends, retrying each failed one after the
// waits of Backoff, then giving it up.
func (s *Service) Run(ctx context.Context) {
	sem := make(chan struct{}, parallel)
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-s.resyncs:
			go s.resync(ctx, f)
		case d := <-s.out:
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				wait, retry := s.attempt(ctx, d)
				<-sem // the slot is free while a failed delivery waits for its retry
				if retry {
					s.retryAfter(ctx, d, wait)
				}
			}()
		}
	}
}

// attempt sends d once. On a failure worth retrying it says how long to wait first:
// the next wait of the backoff, until the backoff is spent.
func (s *Service) attempt(ctx context.Context, d delivery) (wait time.Duration, retry bool) {
	err := s.send(ctx, d)
	if err == nil || ctx.Err() != nil {
		return 0, false
	}
	if d.attempt >= len(s.opts.Backoff) {
		s.log.Warn("federation: delivery given up", "inbox", d.inbox, "attempts", d.attempt+1, "err", err)
		return 0, false
	}
	s.log.Info("federation: delivery failed; it will be retried", "inbox", d.inbox, "attempt", d.attempt+1, "err", err)
	return s.opts.Backoff[d.attempt], true
}

// retryAfter queues d again after wait, unless ctx ends first.
func (s *Service) retryAfter(ctx context.Context, d delivery, wait time.Duration) {
	d.attempt++
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
		s.push(d)
	}
}

// send POSTs d, signed by its sender. A blocked host is not sent to.
func (s *Service) send(ctx context.Context, d delivery) error {
	if err := s.refuseBlocked(ctx, hostOf(d.inbox)); err != nil {
		return nil // blocked since it was queued: dropped, not retried
	}
	if err := s.guard.CheckURL(d.inbox); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.inbox, bytes.NewReader(d.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", MediaActivity)
	req.Header.Set("Accept", MediaActivity)
	req.Header.Set("User-Agent", userAgent)
	if err := s.signAs(ctx, req, d.body, d.from); err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %d %s", d.inbox, resp.StatusCode, http.StatusText(resp.StatusCode))
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
