package web

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/federation"
)

// fedHub is a whole hub served on a loopback listener, whose public URL is its own
// address, so that other hubs in the test reach it as they would over the Internet.
type fedHub struct {
	bundle
	url   string
	admin map[string]string // the site admin's bearer header
}

// newFedHub starts a federating hub that may reach 127.0.0.1 (FAB_FEDERATION_ALLOW_HOSTS)
// and retries deliveries after 20 ms and 50 ms; edit changes those options.
func newFedHub(t *testing.T, edit ...func(*federation.Options)) fedHub {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	opts := federation.Options{AllowHosts: []string{"127.0.0.1"}, Backoff: []time.Duration{20 * time.Millisecond, 50 * time.Millisecond}}
	for _, e := range edit {
		e(&opts)
	}
	b := setupHub(t, HubConfig{Web: Config{PublicURL: url}, Federation: opts}, nil)
	srv := &http.Server{Handler: b.h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return fedHub{bundle: b, url: url, admin: login(t, b, "ada")}
}

func (h fedHub) host() string { return strings.TrimPrefix(h.url, "http://") }

// follows lists the hub's follows as its admin sees them.
func (h fedHub) follows(t *testing.T) []map[string]any {
	t.Helper()
	r := h.do(t, call{method: "GET", path: "/api/v1/federation/follows", header: h.admin})
	r.want(t, 200, "")
	var out []map[string]any
	for _, f := range r.json["follows"].([]any) {
		out = append(out, f.(map[string]any))
	}
	return out
}

// followers is how many followers an actor's followers collection counts.
func (h fedHub) followers(t *testing.T, path string) int {
	t.Helper()
	r := h.do(t, call{method: "GET", path: path, header: map[string]string{"Accept": federation.MediaActivity}})
	r.want(t, 200, "")
	return int(r.json["totalItems"].(float64))
}

// eventually waits (up to 10 s) for ok, which reads state over HTTP.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
	}
}

// TestFederationBetweenHubs runs three hubs on loopback: A follows B (by its URL) and
// B's lab (by @slug@host), B accepts both, A sees them accepted and B counts A among
// the followers; A unfollows B and B forgets it; C blocks A and refuses its Follow.
func TestFederationBetweenHubs(t *testing.T) {
	t.Parallel()
	a, b, c := newFedHub(t), newFedHub(t), newFedHub(t)
	b.do(t, call{method: "POST", path: "/api/v1/labs", header: b.admin, body: map[string]any{"slug": "makers", "name": "Makers"}}).want(t, 201, "")

	r := a.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: a.admin, body: map[string]string{"target": b.url}})
	r.want(t, 201, "")
	follow := r.json["follow"].(map[string]any)
	if follow["state"] != federation.Pending || follow["actor"] != b.url+"/ap/actor" {
		t.Fatalf("the new follow: got %v, want pending, of %s/ap/actor", follow, b.url)
	}
	r = a.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: a.admin, body: map[string]string{"target": "@makers@" + b.host()}})
	r.want(t, 201, "")
	if got := r.json["follow"].(map[string]any)["actor"]; got != b.url+"/labs/makers" {
		t.Fatalf("following @makers@%s: got actor %v, want %s/labs/makers", b.host(), got, b.url)
	}
	a.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: a.admin, body: map[string]string{"target": b.url}}).want(t, 409, "conflict")

	eventually(t, "A's follows of B to be accepted", func() bool {
		fs := a.follows(t)
		return len(fs) == 2 && fs[0]["state"] == federation.Accepted && fs[1]["state"] == federation.Accepted
	})
	if n := b.followers(t, "/ap/actor/followers"); n != 1 {
		t.Fatalf("B's instance followers: got %d, want 1 (A)", n)
	}
	if n := b.followers(t, "/ap/labs/makers/followers"); n != 1 {
		t.Fatalf("B's lab's followers: got %d, want 1 (A)", n)
	}

	// Unfollow: the Undo reaches B, which forgets A.
	a.do(t, call{method: "DELETE", path: "/api/v1/federation/follows/" + follow["id"].(string), header: a.admin}).want(t, 204, "")
	if fs := a.follows(t); len(fs) != 1 {
		t.Fatalf("A's follows after the unfollow: got %d, want 1 (the lab)", len(fs))
	}
	eventually(t, "B to drop A as its follower", func() bool { return b.followers(t, "/ap/actor/followers") == 0 })
	a.do(t, call{method: "DELETE", path: "/api/v1/federation/follows/" + follow["id"].(string), header: a.admin}).want(t, 404, "not_found")

	// C blocks A: A's Follow is refused with 403 at C's inbox, and C records nothing.
	c.do(t, call{method: "POST", path: "/api/v1/federation/blocks", header: c.admin, body: map[string]string{"host": a.host()}}).want(t, 201, "")
	a.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: a.admin, body: map[string]string{"target": c.url}}).want(t, 201, "")
	eventually(t, "A's delivery to C to be refused with 403", func() bool {
		return strings.Contains(a.logs.String(), c.url+"/ap/actor/inbox answered 403")
	})
	if n := c.followers(t, "/ap/actor/followers"); n != 0 {
		t.Fatalf("C's followers after refusing A: got %d, want 0", n)
	}
	for _, f := range a.follows(t) {
		if f["actor"] == c.url+"/ap/actor" && f["state"] != federation.Pending {
			t.Fatalf("A's follow of C: got %v, want it still pending", f["state"])
		}
	}
	// C lifts the block (only its admin may, and only once): A's Follow is taken again.
	c.do(t, call{method: "DELETE", path: "/api/v1/federation/blocks/" + a.host(), header: login(t, c.bundle, "carol")}).want(t, 403, "forbidden")
	c.do(t, call{method: "DELETE", path: "/api/v1/federation/blocks/" + a.host(), header: c.admin}).want(t, 204, "")
	c.do(t, call{method: "DELETE", path: "/api/v1/federation/blocks/" + a.host(), header: c.admin}).want(t, 404, "not_found")
	for _, f := range a.follows(t) {
		if f["actor"] == c.url+"/ap/actor" {
			a.do(t, call{method: "DELETE", path: "/api/v1/federation/follows/" + f["id"].(string), header: a.admin}).want(t, 204, "")
		}
	}
	a.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: a.admin, body: map[string]string{"target": c.url}}).want(t, 201, "")
	eventually(t, "C to take A's Follow once unblocked", func() bool { return c.followers(t, "/ap/actor/followers") == 1 })

	// B blocks A after the fact: A's follow of B's lab is dropped on B.
	b.do(t, call{method: "POST", path: "/api/v1/federation/blocks", header: b.admin, body: map[string]string{"host": "127.0.0.1"}}).want(t, 201, "")
	if n := b.followers(t, "/ap/labs/makers/followers"); n != 0 {
		t.Fatalf("B's lab's followers after blocking 127.0.0.1: got %d, want 0", n)
	}
	r = b.do(t, call{method: "GET", path: "/api/v1/federation/blocks", header: b.admin})
	r.want(t, 200, "")
	if bs := r.json["blocks"].([]any); len(bs) != 1 || bs[0].(map[string]any)["host"] != "127.0.0.1" {
		t.Fatalf("B's blocks: got %v, want [127.0.0.1]", bs)
	}
}

// TestFederationDiscovery: WebFinger finds the instance, people and labs; their
// actors are served as activity+json (and ld+json) with inbox, outbox, followers and
// a public key, while a browser asking for the same page gets HTML.
func TestFederationDiscovery(t *testing.T) {
	t.Parallel()
	h := newFedHub(t)
	h.do(t, call{method: "POST", path: "/api/v1/labs", header: h.admin, body: map[string]any{"slug": "makers", "name": "Makers"}}).want(t, 201, "")
	host := h.host()
	for resource, want := range map[string]string{
		"acct:" + host + "@" + host: h.url + "/ap/actor",
		"acct:ada@" + host:          h.url + "/people/ada",
		"acct:makers@" + host:       h.url + "/labs/makers",
		h.url + "/labs/makers":      h.url + "/labs/makers",
	} {
		r := h.do(t, call{method: "GET", path: "/.well-known/webfinger?resource=" + resource})
		r.want(t, 200, "")
		links, _ := r.json["links"].([]any)
		if len(links) == 0 || links[0].(map[string]any)["href"] != want || links[0].(map[string]any)["type"] != federation.MediaActivity {
			t.Errorf("webfinger %s: got %s, want a self link to %s", resource, r.body, want)
		}
	}
	for _, resource := range []string{"acct:nobody@" + host, "acct:ada@elsewhere.example"} {
		h.do(t, call{method: "GET", path: "/.well-known/webfinger?resource=" + resource}).want(t, 404, "not_found")
	}

	for path, typ := range map[string]string{"/ap/actor": "Application", "/people/ada": "Person", "/labs/makers": "Organization"} {
		for _, accept := range []string{federation.MediaActivity, federation.MediaLD} {
			r := h.do(t, call{method: "GET", path: path, header: map[string]string{"Accept": accept}})
			r.want(t, 200, "")
			if ct := r.header.Get("Content-Type"); ct != accept {
				t.Errorf("GET %s accepting %s: got Content-Type %q, want it", path, accept, ct)
			}
			key, _ := r.json["publicKey"].(map[string]any)
			if r.json["type"] != typ || r.json["id"] != h.url+path || r.json["inbox"] == nil || r.json["outbox"] == nil || r.json["followers"] == nil ||
				key["id"] != h.url+path+"#main-key" || key["owner"] != h.url+path || !strings.Contains(fmt.Sprint(key["publicKeyPem"]), "BEGIN PUBLIC KEY") {
				t.Errorf("GET %s: got %s, want a %s with inbox, outbox, followers and its key", path, r.body, typ)
			}
			if strings.Contains(string(r.body), "PRIVATE") {
				t.Fatalf("GET %s shows a private key", path)
			}
		}
	}
	if r := h.do(t, call{method: "GET", path: "/labs/makers", header: map[string]string{"Accept": "text/html"}}); !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Errorf("a browser on /labs/makers: got %q, want the HTML page", r.header.Get("Content-Type"))
	}

	// NodeInfo: the discovery document links the 2.1 document, which names the software
	// and ActivityPub.
	r := h.do(t, call{method: "GET", path: "/.well-known/nodeinfo"})
	r.want(t, 200, "")
	links, _ := r.json["links"].([]any)
	if len(links) != 1 || links[0].(map[string]any)["href"] != h.url+"/nodeinfo/2.1" ||
		links[0].(map[string]any)["rel"] != "http://nodeinfo.diaspora.software/ns/schema/2.1" {
		t.Fatalf("the NodeInfo links: got %s", r.body)
	}
	r = h.do(t, call{method: "GET", path: "/nodeinfo/2.1"})
	r.want(t, 200, "")
	software, _ := r.json["software"].(map[string]any)
	if r.json["version"] != "2.1" || software["name"] != "fabcommons" || fmt.Sprint(r.json["protocols"]) != "[activitypub]" ||
		!strings.Contains(r.header.Get("Content-Type"), "schema/2.1") {
		t.Fatalf("the NodeInfo document: got %s %s", r.header.Get("Content-Type"), r.body)
	}
}

// TestFederationOffWithoutPublicURL: a hub with no public URL has no identity, so its
// federation routes say why they do not answer.
func TestFederationOffWithoutPublicURL(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	admin := login(t, b, "ada")
	b.do(t, call{method: "GET", path: "/ap/actor"}).want(t, 404, "federation_off")
	b.do(t, call{method: "GET", path: "/api/v1/federation/follows", header: admin}).want(t, 404, "federation_off")
}

// remoteKeys are two RSA keys for the fake remote servers, made once for the package.
var remoteKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var keys [2]*rsa.PrivateKey
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

// fakeRemote is another server of the fediverse (Mastodon, Manyfold) as far as the
// hub sees it: an actor document served from a fixture, and inboxes that keep what
// they are sent.
type fakeRemote struct {
	url     string
	actor   string // the actor's id
	got     chan *http.Request
	body    chan []byte
	mu      sync.Mutex
	pemText []byte            // the public key the actor document shows, as a JSON string
	fetches int               // how many times the actor document was fetched
	refuse  bool              // its inboxes answer 500
	files   map[string][]byte // what it serves besides the actor, by path
}

// rotate has the actor publish key from now on.
func (f *fakeRemote) rotate(key *rsa.PrivateKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pemText = pemJSON(key)
}

func (f *fakeRemote) fetched() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches
}

func pemJSON(key *rsa.PrivateKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	text, _ := json.Marshal(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	return text
}

func newFakeRemote(t *testing.T, fixture, actorPath string, key *rsa.PrivateKey) *fakeRemote {
	t.Helper()
	tmpl, err := os.ReadFile("testdata/federation/" + fixture)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRemote{got: make(chan *http.Request, 10), body: make(chan []byte, 10), pemText: pemJSON(key)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			f.mu.Lock()
			refuse := f.refuse
			f.mu.Unlock()
			if refuse {
				http.Error(w, "down for maintenance", http.StatusInternalServerError)
				return
			}
			body, _ := io.ReadAll(r.Body)
			f.got <- r
			f.body <- body
			w.WriteHeader(http.StatusAccepted)
			return
		}
		f.mu.Lock()
		file, ok := f.files[r.URL.Path]
		f.mu.Unlock()
		if ok {
			w.Write(file)
			return
		}
		if r.URL.Path != actorPath {
			http.NotFound(w, r)
			return
		}
		f.mu.Lock()
		f.fetches++
		doc := strings.ReplaceAll(string(tmpl), "{{BASE}}", f.url)
		doc = strings.ReplaceAll(doc, `"{{PEM}}"`, string(f.pemText))
		f.mu.Unlock()
		w.Header().Set("Content-Type", federation.MediaActivity)
		io.WriteString(w, doc)
	}))
	t.Cleanup(srv.Close)
	f.url, f.actor = srv.URL, srv.URL+actorPath
	return f
}

// mastodonSigned builds an inbox POST as Mastodon's signed requests are made
// (app/lib/request.rb): Host, Date in HTTP format, Digest SHA-256 of the body,
// Content-Type, and a Signature over "(request-target) host date digest content-type"
// with rsa-sha256, keyId the actor's #main-key.
func mastodonSigned(t *testing.T, url string, body []byte, key *rsa.PrivateKey, keyID string, date time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	digest := "SHA-256=" + base64.StdEncoding.EncodeToString(sum[:])
	dateText := date.UTC().Format(http.TimeFormat)
	req.Header.Set("User-Agent", "http.rb/5.1.1 (Mastodon/4.3.0; +https://mastodon.example/)")
	req.Header.Set("Host", req.URL.Host)
	req.Header.Set("Date", dateText)
	req.Header.Set("Digest", digest)
	req.Header.Set("Content-Type", "application/activity+json")
	signed := strings.Join([]string{
		"(request-target): post " + req.URL.RequestURI(),
		"host: " + req.URL.Host,
		"date: " + dateText,
		"digest: " + digest,
		"content-type: application/activity+json",
	}, "\n")
	h := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Signature", fmt.Sprintf(`keyId="%s",algorithm="rsa-sha256",headers="(request-target) host date digest content-type",signature="%s"`,
		keyID, base64.StdEncoding.EncodeToString(sig)))
	return req
}

func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestInboxMastodonSignedFollow: a Follow of a lab signed as Mastodon signs it is
// verified (the key fetched from the actor document) and answered with an Accept
// signed by the lab's own key; a request unsigned, signed with another key, with its
// body changed, or with a stale Date is refused 401; one whose signer is not its actor
// is 403, as is one from a blocked host.
func TestInboxMastodonSignedFollow(t *testing.T) {
	t.Parallel()
	h := newFedHub(t)
	h.do(t, call{method: "POST", path: "/api/v1/labs", header: h.admin, body: map[string]any{"slug": "makers", "name": "Makers"}}).want(t, 201, "")
	keys := remoteKeys()
	masto := newFakeRemote(t, "mastodon_actor.json", "/users/alice", keys[0])
	inbox := h.url + "/ap/labs/makers/inbox"
	follow := func(id string) []byte {
		return []byte(`{"@context":"https://www.w3.org/ns/activitystreams","id":"` + masto.url + `/` + id + `","type":"Follow","actor":"` + masto.actor + `","object":"` + h.url + `/labs/makers"}`)
	}
	keyID := masto.actor + "#main-key"
	now := time.Now()

	tampered := mastodonSigned(t, inbox, follow("f-tampered"), keys[0], keyID, now)
	tampered.Body = io.NopCloser(bytes.NewReader(follow("f-other")))
	tampered.ContentLength = int64(len(follow("f-other")))
	unsigned := mastodonSigned(t, inbox, follow("f-unsigned"), keys[0], keyID, now)
	unsigned.Header.Del("Signature")
	for name, req := range map[string]*http.Request{
		"unsigned":          unsigned,
		"signed by another": mastodonSigned(t, inbox, follow("f-wrong"), keys[1], keyID, now),
		"body changed":      tampered,
		"Date 13 h old":     mastodonSigned(t, inbox, follow("f-stale"), keys[0], keyID, now.Add(-13*time.Hour)),
	} {
		if status, body := send(t, req); status != 401 || !strings.Contains(body, `"code":"bad_signature"`) {
			t.Errorf("%s: got %d %s, want 401 bad_signature", name, status, body)
		}
	}
	if n := h.followers(t, "/ap/labs/makers/followers"); n != 0 {
		t.Fatalf("followers after the refusals: got %d, want 0", n)
	}

	status, body := send(t, mastodonSigned(t, inbox, follow("f-good"), keys[0], keyID, now))
	if status != 202 {
		t.Fatalf("a Follow signed as Mastodon signs: got %d %s, want 202", status, body)
	}
	if n := h.followers(t, "/ap/labs/makers/followers"); n != 1 {
		t.Fatalf("the lab's followers: got %d, want 1", n)
	}
	// The Accept goes to alice's own inbox, from the lab, signed with the lab's key.
	var accept *http.Request
	select {
	case accept = <-masto.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no Accept reached the follower's inbox")
	}
	acceptBody := <-masto.body
	if accept.URL.Path != "/users/alice/inbox" {
		t.Errorf("the Accept went to %s, want /users/alice/inbox", accept.URL.Path)
	}
	var a map[string]any
	json.Unmarshal(acceptBody, &a)
	obj, _ := a["object"].(map[string]any)
	if a["type"] != "Accept" || a["actor"] != h.url+"/labs/makers" || obj["id"] != masto.url+"/f-good" || obj["type"] != "Follow" {
		t.Fatalf("the Accept: got %s, want the lab accepting f-good", acceptBody)
	}
	labKey := h.do(t, call{method: "GET", path: "/labs/makers", header: map[string]string{"Accept": federation.MediaActivity}}).json["publicKey"].(map[string]any)
	checkMastodonVerifies(t, accept, acceptBody, labKey)

	// A signer that is not the activity's actor, and then a blocked host.
	other := []byte(strings.Replace(string(follow("f-imp")), masto.actor, masto.url+"/users/bob", 1))
	if status, body := send(t, mastodonSigned(t, inbox, other, keys[0], keyID, now)); status != 403 {
		t.Errorf("alice signing bob's Follow: got %d %s, want 403", status, body)
	}
	h.do(t, call{method: "POST", path: "/api/v1/federation/blocks", header: h.admin, body: map[string]string{"host": strings.TrimPrefix(masto.url, "http://")}}).want(t, 201, "")
	if status, body := send(t, mastodonSigned(t, inbox, follow("f-blocked"), keys[0], keyID, now)); status != 403 {
		t.Errorf("a Follow from a blocked host: got %d %s, want 403", status, body)
	}
	if n := h.followers(t, "/ap/labs/makers/followers"); n != 0 {
		t.Fatalf("the lab's followers after blocking alice's host: got %d, want 0", n)
	}

	big := mastodonSigned(t, inbox, bytes.Repeat([]byte(" "), federation.MaxActivityBytes+1), keys[0], keyID, now)
	if status, _ := send(t, big); status != 413 {
		t.Errorf("an activity over %d bytes: got %d, want 413", federation.MaxActivityBytes, status)
	}
}

// checkMastodonVerifies verifies a request the hub signed the way Mastodon's verifier
// does (app/controllers/concerns/signature_verification.rb): rebuild the signed string
// from the headers list and check it with the key the actor publishes.
func checkMastodonVerifies(t *testing.T, req *http.Request, body []byte, publicKey map[string]any) {
	t.Helper()
	params := map[string]string{}
	for _, part := range strings.Split(req.Header.Get("Signature"), ",") {
		k, v, _ := strings.Cut(part, "=")
		params[k] = strings.Trim(v, `"`)
	}
	if params["keyId"] != publicKey["id"] {
		t.Fatalf("signed with keyId %q, want the actor's key %v", params["keyId"], publicKey["id"])
	}
	var lines []string
	for _, h := range strings.Fields(params["headers"]) {
		switch h {
		case "(request-target)":
			lines = append(lines, h+": "+strings.ToLower(req.Method)+" "+req.URL.RequestURI())
		case "host":
			lines = append(lines, "host: "+req.Host)
		default:
			lines = append(lines, h+": "+req.Header.Get(h))
		}
	}
	if !strings.Contains(params["headers"], "digest") {
		t.Fatalf("the signature covers %q, want the digest too", params["headers"])
	}
	sum := sha256.Sum256(body)
	if want := "SHA-256=" + base64.StdEncoding.EncodeToString(sum[:]); req.Header.Get("Digest") != want {
		t.Fatalf("Digest: got %q, want %q", req.Header.Get("Digest"), want)
	}
	block, _ := pem.Decode([]byte(publicKey["publicKeyPem"].(string)))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(params["signature"])
	h := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	if err := rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, h[:], sig); err != nil {
		t.Fatalf("the hub's signature does not verify as Mastodon checks it: %v", err)
	}
}

// TestInboxManyfoldActor: a Follow of the hub from a Manyfold model (a Service actor
// with f3di:concreteType 3DModel, its actor shaped as Manyfold's documents are) is
// understood and accepted.
func TestInboxManyfoldActor(t *testing.T) {
	t.Parallel()
	h := newFedHub(t)
	key := remoteKeys()[1]
	path := "/federation/actors/8a5c2e0f-3b1d-4c55-9d1e-2f0a7b6c9e41"
	mf := newFakeRemote(t, "manyfold_model_actor.json", path, key)
	body := []byte(`{"@context":"https://www.w3.org/ns/activitystreams","id":"` + mf.url + `/federation/activities/1","type":"Follow","actor":"` + mf.actor + `","object":"` + h.url + `/ap/actor"}`)
	if status, resp := send(t, mastodonSigned(t, h.url+"/ap/inbox", body, key, mf.actor+"#main-key", time.Now())); status != 202 {
		t.Fatalf("a Follow from a Manyfold model: got %d %s, want 202", status, resp)
	}
	select {
	case r := <-mf.got:
		if r.URL.Path != path+"/inbox" {
			t.Fatalf("the Accept went to %s, want %s/inbox (a Manyfold actor has no shared inbox)", r.URL.Path, path)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Accept reached the Manyfold actor")
	}
	if n := h.followers(t, "/ap/actor/followers"); n != 1 {
		t.Fatalf("the hub's followers: got %d, want 1", n)
	}
}

// TestInboxKeysCachedRotatedAndLimited: a signer's key is fetched once and cached; when
// the signer has rotated its key, a signature that fails against the cached key makes
// the hub fetch it once more and verify again; a key that sits at a private address
// is never fetched unless FAB_FEDERATION_ALLOW_HOSTS allows it; and a host that sends
// more than its share of activities a minute is answered 429.
func TestInboxKeysCachedRotatedAndLimited(t *testing.T) {
	t.Parallel()
	h := newFedHub(t, func(o *federation.Options) { o.PerHost = 4 })
	keys := remoteKeys()
	masto := newFakeRemote(t, "mastodon_actor.json", "/users/alice", keys[0])
	keyID := masto.actor + "#main-key"
	follow := func(id string) []byte {
		return []byte(`{"id":"` + masto.url + `/` + id + `","type":"Follow","actor":"` + masto.actor + `","object":"` + h.url + `/ap/actor"}`)
	}
	inbox := h.url + "/ap/inbox"
	for i, key := range []*rsa.PrivateKey{keys[0], keys[0]} {
		if status, body := send(t, mastodonSigned(t, inbox, follow(fmt.Sprint("f", i)), key, keyID, time.Now())); status != 202 {
			t.Fatalf("Follow %d: got %d %s, want 202", i, status, body)
		}
	}
	if n := masto.fetched(); n != 1 {
		t.Fatalf("the actor was fetched %d times for two activities, want once (then cached)", n)
	}
	masto.rotate(keys[1])
	if status, body := send(t, mastodonSigned(t, inbox, follow("f-rotated"), keys[1], keyID, time.Now())); status != 202 {
		t.Fatalf("a Follow signed with the rotated key: got %d %s, want 202", status, body)
	}
	if n := masto.fetched(); n != 2 {
		t.Fatalf("after the rotation the actor was fetched %d times in all, want 2", n)
	}
	if status, _ := send(t, mastodonSigned(t, inbox, follow("f-over"), keys[1], keyID, time.Now())); status != 202 {
		t.Fatalf("the 4th activity this minute: got %d, want 202 (the limit is 4)", status)
	}
	if status, body := send(t, mastodonSigned(t, inbox, follow("f-over2"), keys[1], keyID, time.Now())); status != 429 || !strings.Contains(body, "rate_limited") {
		t.Fatalf("the 5th activity this minute: got %d %s, want 429 rate_limited", status, body)
	}

	// A hub that may not reach loopback does not fetch the key there: 401, nothing fetched.
	closed := newFedHub(t, func(o *federation.Options) { o.AllowHosts = nil })
	before := masto.fetched()
	status, body := send(t, mastodonSigned(t, closed.url+"/ap/inbox", follow("f-private"), keys[1], keyID, time.Now()))
	if status != 401 || !strings.Contains(body, "private") {
		t.Fatalf("a key at a loopback address without an allowlist: got %d %s, want 401 saying it is private", status, body)
	}
	if n := masto.fetched(); n != before {
		t.Fatalf("the hub without an allowlist fetched the actor at a loopback address (%d fetches, want %d)", n, before)
	}
}

// TestDeliveriesWaitingForRetryBlockNoOthers: deliveries that failed and wait (an hour,
// here) for their retry do not hold the hub's few delivery slots, so a Follow sent
// after five of them still goes out at once.
func TestDeliveriesWaitingForRetryBlockNoOthers(t *testing.T) {
	t.Parallel()
	a := newFedHub(t, func(o *federation.Options) { o.Backoff = []time.Duration{time.Hour} })
	b := newFedHub(t)
	key := remoteKeys()[0]
	for i := range 5 {
		down := newFakeRemote(t, "mastodon_actor.json", "/users/alice", key)
		down.mu.Lock()
		down.refuse = true
		down.mu.Unlock()
		a.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: a.admin, body: map[string]string{"target": down.actor}}).want(t, 201, "")
		eventually(t, fmt.Sprintf("the Follow of down server %d to fail once", i), func() bool {
			return strings.Count(a.logs.String(), "delivery failed; it will be retried") == i+1
		})
	}
	a.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: a.admin, body: map[string]string{"target": b.url}}).want(t, 201, "")
	eventually(t, "the follow of B to be accepted while five deliveries wait for their retry", func() bool {
		for _, f := range a.follows(t) {
			if f["actor"] == b.url+"/ap/actor" {
				return f["state"] == federation.Accepted
			}
		}
		return false
	})
}

// TestFollowMastodonActor: the hub follows a Mastodon account by its URL; the Follow
// reaches the account's inbox signed so that Mastodon verifies it; an Accept of it from
// anyone but that account is refused (403), and the account's own Accept, signed as
// Mastodon signs, marks the follow accepted.
func TestFollowMastodonActor(t *testing.T) {
	t.Parallel()
	h := newFedHub(t)
	keys := remoteKeys()
	alice := newFakeRemote(t, "mastodon_actor.json", "/users/alice", keys[0])
	mallory := newFakeRemote(t, "mastodon_actor.json", "/users/alice", keys[1]) // another server's "alice"

	r := h.do(t, call{method: "POST", path: "/api/v1/federation/follows", header: h.admin, body: map[string]string{"target": alice.actor}})
	r.want(t, 201, "")
	var got *http.Request
	select {
	case got = <-alice.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no Follow reached the account's inbox")
	}
	body := <-alice.body
	var follow map[string]any
	json.Unmarshal(body, &follow)
	if got.URL.Path != "/users/alice/inbox" || follow["type"] != "Follow" || follow["actor"] != h.url+"/ap/actor" || follow["object"] != alice.actor {
		t.Fatalf("the Follow: got %s to %s, want the instance actor following %s at its inbox", body, got.URL.Path, alice.actor)
	}
	instanceKey := h.do(t, call{method: "GET", path: "/ap/actor", header: map[string]string{"Accept": federation.MediaActivity}}).json["publicKey"].(map[string]any)
	checkMastodonVerifies(t, got, body, instanceKey)

	accept := func(from *fakeRemote) []byte {
		b, _ := json.Marshal(map[string]any{"@context": "https://www.w3.org/ns/activitystreams", "id": from.actor + "#accepts/follows/1",
			"type": "Accept", "actor": from.actor, "object": follow})
		return b
	}
	if status, resp := send(t, mastodonSigned(t, h.url+"/ap/actor/inbox", accept(mallory), keys[1], mallory.actor+"#main-key", time.Now())); status != 403 {
		t.Fatalf("an Accept from another actor: got %d %s, want 403", status, resp)
	}
	if fs := h.follows(t); fs[0]["state"] != federation.Pending {
		t.Fatalf("after the forged Accept: got %v, want pending", fs[0]["state"])
	}
	if status, resp := send(t, mastodonSigned(t, h.url+"/ap/actor/inbox", accept(alice), keys[0], alice.actor+"#main-key", time.Now())); status != 202 {
		t.Fatalf("the account's Accept: got %d %s, want 202", status, resp)
	}
	if fs := h.follows(t); fs[0]["state"] != federation.Accepted {
		t.Fatalf("after the Accept: got %v, want accepted", fs[0]["state"])
	}
}
