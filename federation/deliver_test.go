package federation_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/storage/sqlite"
)

// nobody is a directory with no people and no labs: the instance actor sends alone.
type nobody struct{}

func (nobody) Person(context.Context, string) (federation.Local, error) {
	return federation.Local{}, storage.ErrNotFound
}
func (nobody) Lab(context.Context, string) (federation.Local, error) {
	return federation.Local{}, storage.ErrNotFound
}

// receiver is a remote actor whose inbox refuses (503) until it is told to take.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	take   bool
	bodies []string // every POST's body, taken or not
}

func newReceiver(t *testing.T) *receiver {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet {
			actor := r.URL + "/actor"
			w.Header().Set("Content-Type", "application/activity+json")
			json.NewEncoder(w).Encode(map[string]any{"id": actor, "type": "Person", "inbox": r.URL + "/inbox",
				"publicKey": map[string]any{"id": actor + "#main-key", "owner": actor,
					"publicKeyPem": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}})
			return
		}
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.bodies = append(r.bodies, string(body))
		if !r.take {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

// openStore opens an embedded store of its own for a test.
func openStore(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fab.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newHub is a federation service on db, at http://127.0.0.1:9, that may reach
// loopback, retrying after an hour, with clock.
func newHub(t *testing.T, db *sqlite.DB, clock func() time.Time, edit ...func(*federation.Options)) *federation.Service {
	t.Helper()
	o := federation.Options{PublicURL: "http://127.0.0.1:9", AllowHosts: []string{"127.0.0.1"}, Backoff: []time.Duration{time.Hour}, KeyBits: 1024, Clock: clock}
	for _, e := range edit {
		e(&o)
	}
	s, err := federation.NewService(db.Federation(), nobody{}, nil, db.Leases(), slog.New(slog.NewTextHandler(io.Discard, nil)), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDeliveriesOutliveTheHub: an activity queued by a hub that stops before sending
// it, or after a failed attempt, is sent by the hub that next runs on the same store:
// the queue is in the database, not in the process.
func TestDeliveriesOutliveTheHub(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openStore(t)
	remote := newReceiver(t)
	hub := func(clock func() time.Time) *federation.Service { return newHub(t, db, clock) }
	run := func(s *federation.Service, until func() bool) {
		t.Helper()
		ctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); s.Run(ctx) }()
		defer func() { stop(); <-done }()
		for deadline := time.Now().Add(10 * time.Second); !until(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting; the remote got %q", remote.got())
			}
		}
	}

	// The first hub queues a Follow and stops before it runs at all.
	first := hub(time.Now)
	f, err := first.Follow(ctx, federation.Caller{Admin: true}, remote.URL+"/actor")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(remote.got()); n != 0 {
		t.Fatalf("the Follow went out in the request: %d POSTs", n)
	}
	// The second runs, and sends it; the remote refuses, and the retry is an hour away.
	second := hub(time.Now)
	run(second, func() bool { return len(remote.got()) == 1 })
	// The third runs two hours later, and sends it again; the remote takes it.
	remote.mu.Lock()
	remote.take = true
	remote.mu.Unlock()
	third := hub(func() time.Time { return time.Now().Add(2 * time.Hour) })
	run(third, func() bool {
		due, err := db.Federation().DueDeliveries(ctx, time.Now().Add(24*time.Hour), 10)
		return len(remote.got()) == 2 && err == nil && len(due) == 0 // sent, and so gone from the queue
	})
	var follow map[string]any
	if bodies := remote.got(); bodies[0] != bodies[1] || json.Unmarshal([]byte(bodies[1]), &follow) != nil ||
		follow["type"] != "Follow" || follow["id"] != "http://127.0.0.1:9/ap/follows/"+f.ID {
		t.Fatalf("the remote got %q, want the same Follow twice", bodies)
	}
}

// TestDeliveriesInOrderAndApart: an Undo queued behind its Follow is not sent while the
// Follow waits for its retry, and a destination that refuses holds back no other.
func TestDeliveriesInOrderAndApart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openStore(t)
	down, up := newReceiver(t), newReceiver(t)
	up.take = true
	now := time.Now()
	hub := newHub(t, db, func() time.Time { return now })
	admin := federation.Caller{Admin: true}
	f, err := hub.Follow(ctx, admin, down.URL+"/actor")
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Unfollow(ctx, admin, f.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Follow(ctx, admin, up.URL+"/actor"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := hub.DeliverDue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := down.got(); len(got) != 1 || !strings.Contains(got[0], `"Follow"`) {
		t.Fatalf("the refusing remote got %q, want its Follow alone (the Undo waits behind it)", got)
	}
	if got := up.got(); len(got) != 1 {
		t.Fatalf("the other remote got %q, want its Follow", got)
	}
	// An hour on the refusing remote takes them: the Follow, then the Undo.
	down.mu.Lock()
	down.take = true
	down.mu.Unlock()
	now = now.Add(2 * time.Hour)
	for range 3 {
		if _, err := hub.DeliverDue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := down.got(); len(got) != 3 || !strings.Contains(got[1], `"Follow"`) || !strings.Contains(got[2], `"Undo"`) {
		t.Fatalf("the remote, back: got %q, want the Follow again and then the Undo", got)
	}
}

// TestDeliveriesBounded: a host that owes the hub a thousand deliveries is owed no more
// (a Follow of it is refused as unavailable) until some go.
func TestDeliveriesBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openStore(t)
	remote := newReceiver(t)
	host := strings.TrimPrefix(remote.URL, "http://")
	for i := range 1000 {
		d := federation.Delivery{ID: fmt.Sprintf("%04d", i), From: "http://127.0.0.1:9/ap/actor", Inbox: remote.URL + "/inbox", Host: host,
			Body: []byte("{}"), Due: time.Now().Add(time.Hour), CreatedAt: time.Now()}
		if err := db.Federation().AddDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := newHub(t, db, time.Now).Follow(ctx, federation.Caller{Admin: true}, remote.URL+"/actor"); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("a Follow of a host owed 1000 deliveries: got %v, want ErrUnavailable", err)
	}
	if fs, _ := db.Federation().Follows(ctx); len(fs) != 0 {
		t.Fatalf("the follows after the refused one: got %+v, want none", fs)
	}
}

// TestDeliveriesBoundedInAll: past Options.MaxWaiting deliveries waiting for all hosts
// together, an activity is refused. The count is taken from the table at most once a
// second, and includes what this hub queued since it last counted.
func TestDeliveriesBoundedInAll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openStore(t)
	for i := range 3 {
		d := federation.Delivery{ID: fmt.Sprintf("%04d", i), From: "http://127.0.0.1:9/ap/actor", Inbox: "https://elsewhere.example/inbox", Host: "elsewhere.example",
			Body: []byte("{}"), Due: time.Now().Add(time.Hour), CreatedAt: time.Now()}
		if err := db.Federation().AddDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	store := &countingStore{Store: db.Federation()}
	hub, err := federation.NewService(store, nobody{}, nil, db.Leases(), slog.New(slog.NewTextHandler(io.Discard, nil)),
		federation.Options{PublicURL: "http://127.0.0.1:9", AllowHosts: []string{"127.0.0.1"}, Backoff: []time.Duration{time.Hour}, KeyBits: 1024, MaxWaiting: 7})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		_, err := hub.Follow(ctx, federation.Caller{Admin: true}, newReceiver(t).URL+"/actor")
		switch {
		case i < 4 && err != nil:
			t.Fatalf("Follow %d with %d of 7 deliveries waiting: %v", i+1, 3+i, err)
		case i == 4 && !errors.Is(err, storage.ErrUnavailable):
			t.Fatalf("Follow 5 with 7 of 7 deliveries waiting: got %v, want ErrUnavailable", err)
		}
	}
	if fs, _ := db.Federation().Follows(ctx); len(fs) != 4 {
		t.Fatalf("the follows: got %d, want the first four", len(fs))
	}
	if n := store.all.Load(); n > 3 {
		t.Fatalf("the whole queue was counted %d times for 5 activities, want once a second", n)
	}
}

// countingStore counts the counts of the whole delivery queue.
type countingStore struct {
	federation.Store
	all atomic.Int32
}

func (s *countingStore) CountDeliveries(ctx context.Context, host string) (int, error) {
	if host == "" {
		s.all.Add(1)
	}
	return s.Store.CountDeliveries(ctx, host)
}
