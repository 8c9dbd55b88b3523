package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/storage/externaltest"
	"github.com/fabcommons/fabcommons/storage/localblob"
	"github.com/fabcommons/fabcommons/storage/mongo"
	"github.com/gin-gonic/gin"
)

// The roles of the authorization matrix: who calls.
const (
	anon      = "anonymous"
	user      = "user"          // signed in, nothing more
	designer  = "design owner"  // owns the design the call is about
	member    = "lab member"    // a member of the lab the call is about
	operator  = "operator"      // an operator of that lab
	labOwner  = "lab owner"     // its owner
	admin     = "site admin"    // the first account
	machine   = "machine"       // a machine token of that lab
	stranger  = "other machine" // a machine token of another lab
	joinToken = "join token"    // a lab's join token sent as a bearer token
)

var allRoles = []string{anon, user, designer, member, operator, labOwner, admin, machine, stranger, joinToken}

// Sets of roles the rows use.
var (
	people   = []string{anon, user, designer, member, operator, labOwner, admin}
	signedIn = []string{user, designer, member, operator, labOwner, admin}
	anyone   = allRoles
	// The lab's operators; site admins act as owners of every lab.
	operators = []string{operator, labOwner, admin}
)

// route is one row of the matrix: a call and the roles that may make it. A role that
// may not gets 401 or 403 (a page sends a visitor to log in); one that may gets
// anything else (a 422 for the test's deliberately thin bodies still means the
// caller got past the door).
type route struct {
	path    string // with the fixture's ids filled in
	body    any
	allowed []string
}

// authzMatrix is one row per route of the router, API and pages alike.
func authzMatrix(fx authzFixture) map[string]route {
	j, o, m := fx.job, fx.order, fx.machineID
	return map[string]route{
		"GET /healthz": {"/healthz", nil, anyone},
		"GET /readyz":  {"/readyz", nil, anyone},
		"GET /metrics": {"/metrics", nil, anyone},

		"POST /api/v1/users":                 {"/api/v1/users", map[string]string{}, people},
		"POST /api/v1/tokens":                {"/api/v1/tokens", map[string]string{"handle": "uma", "password": "correct horse battery", "name": "m"}, people},
		"GET /api/v1/tokens":                 {"/api/v1/tokens", nil, signedIn},
		"DELETE /api/v1/tokens/:id":          {"/api/v1/tokens/nope", nil, signedIn},
		"POST /api/v1/sessions":              {"/api/v1/sessions", map[string]string{"handle": "uma", "password": "correct horse battery"}, people},
		"DELETE /api/v1/sessions/current":    {"/api/v1/sessions/current", nil, people},
		"DELETE /api/v1/sessions":            {"/api/v1/sessions", nil, signedIn},
		"POST /api/v1/users/:handle/disable": {"/api/v1/users/nobody/disable", nil, []string{admin}},
		"POST /api/v1/users/:handle/enable":  {"/api/v1/users/nobody/enable", nil, []string{admin}},
		"POST /account/sessions/end-all":     {"/account/sessions/end-all", "", signedIn},
		"POST /admin/users":                  {"/admin/users", "handle=nobody&action=disable", []string{admin}},
		"GET /api/v1/me":                     {"/api/v1/me", nil, signedIn},

		"GET /api/v1/designs":                                  {"/api/v1/designs", nil, people},
		"GET /api/v1/designs/:slug":                            {"/api/v1/designs/alpha", nil, people},
		"GET /api/v1/designs/:slug/versions":                   {"/api/v1/designs/alpha/versions", nil, people},
		"GET /api/v1/designs/:slug/versions/:n":                {"/api/v1/designs/alpha/versions/1", nil, people},
		"GET /api/v1/designs/:slug/versions/:n/files/*path":    {"/api/v1/designs/alpha/versions/1/files/parts/base.stl", nil, people},
		"GET /api/v1/designs/:slug/versions/:n/pictures/*path": {"/api/v1/designs/alpha/versions/1/pictures/photo.png", nil, people},
		"GET /api/v1/designs/:slug/versions/:n/archive.zip":    {"/api/v1/designs/alpha/versions/1/archive.zip", nil, people},
		"GET /api/v1/designs/:slug/versions/:n/okh.toml":       {"/api/v1/designs/alpha/versions/1/okh.toml", nil, people},
		"GET /api/v1/designs/:slug/versions/:n/bom.csv":        {"/api/v1/designs/alpha/versions/1/bom.csv", nil, people},
		"GET /api/v1/designs/:slug/fork-options":               {"/api/v1/designs/alpha/fork-options", nil, people},
		"GET /api/v1/designs/:slug/lineage":                    {"/api/v1/designs/alpha/lineage", nil, people},
		"GET /api/v1/designs/:slug/makes":                      {"/api/v1/designs/alpha/makes", nil, people},
		"POST /api/v1/mesh/check":                              {"/api/v1/mesh/check", nil, people},
		"POST /api/v1/designs":                                 {"/api/v1/designs", nil, signedIn},
		"POST /api/v1/designs/import":                          {"/api/v1/designs/import", nil, signedIn},
		"POST /api/v1/designs/:slug/versions":                  {"/api/v1/designs/alpha/versions", nil, []string{designer}},
		"POST /api/v1/designs/:slug/forks":                     {"/api/v1/designs/alpha/forks", map[string]string{}, signedIn},
		"POST /api/v1/designs/:slug/flag":                      {"/api/v1/designs/alpha/flag", map[string]string{}, signedIn},
		"POST /api/v1/designs/:slug/hide":                      {"/api/v1/designs/nope/hide", nil, []string{admin}},
		"POST /api/v1/designs/:slug/unhide":                    {"/api/v1/designs/nope/unhide", nil, []string{admin}},
		"POST /api/v1/designs/:slug/feature":                   {"/api/v1/designs/nope/feature", nil, []string{admin}},
		"POST /api/v1/designs/:slug/unfeature":                 {"/api/v1/designs/nope/unfeature", nil, []string{admin}},
		"POST /api/v1/designs/:slug/dismiss-flags":             {"/api/v1/designs/nope/dismiss-flags", nil, []string{admin}},
		"GET /api/v1/flags":                                    {"/api/v1/flags", nil, []string{admin}},
		"GET /api/v1/labs":                                     {"/api/v1/labs", nil, people},
		"GET /api/v1/labs/:slug":                               {"/api/v1/labs/lab1", nil, people},
		"POST /api/v1/labs":                                    {"/api/v1/labs", map[string]string{}, signedIn},
		"POST /api/v1/labs/:slug/members":                      {"/api/v1/labs/lab1/members", map[string]string{"handle": "nobody", "role": "member"}, []string{labOwner, admin}},
		"DELETE /api/v1/labs/:slug/members/:handle":            {"/api/v1/labs/lab1/members/nobody", nil, []string{labOwner, admin}},
		"PUT /api/v1/labs/:slug/policy":                        {"/api/v1/labs/lab1/policy", map[string]string{"submit": "public"}, []string{labOwner, admin}},
		"POST /api/v1/labs/:slug/machines":                     {"/api/v1/labs/lab1/machines", map[string]string{}, operators},
		// A join token adds machines again and again: the lab's owners keep them.
		"POST /api/v1/labs/:slug/join-tokens":       {"/api/v1/labs/lab1/join-tokens", map[string]string{}, []string{labOwner, admin}},
		"GET /api/v1/labs/:slug/join-tokens":        {"/api/v1/labs/lab1/join-tokens", nil, []string{labOwner, admin}},
		"DELETE /api/v1/labs/:slug/join-tokens/:id": {"/api/v1/labs/lab1/join-tokens/nope", nil, []string{labOwner, admin}},
		"POST /api/v1/machines/:id/token":           {"/api/v1/machines/" + m + "/token", nil, operators},
		"POST /api/v1/machines/:id/retire":          {"/api/v1/machines/" + m + "/retire", nil, operators},
		"PATCH /api/v1/machines/:id":                {"/api/v1/machines/" + m, map[string]any{"tags": []string{}}, operators},
		"POST /api/v1/orders":                       {"/api/v1/orders", map[string]string{}, signedIn},
		"GET /api/v1/orders/:id":                    {"/api/v1/orders/" + o, nil, people},
		"GET /api/v1/jobs/:id":                      {"/api/v1/jobs/" + j, nil, people},
		"GET /api/v1/events":                        {"/api/v1/events?lab=lab1", nil, people},
		"POST /api/v1/orders/quote":                 {"/api/v1/orders/quote", map[string]string{}, signedIn},
		"GET /api/v1/ledger/accounts/:account":      {"/api/v1/ledger/accounts/user:uma", nil, people},
		"GET /api/v1/ledger/transfers":              {"/api/v1/ledger/transfers?account=lab:lab1", nil, people},
		"GET /api/v1/ledger/entries":                {"/api/v1/ledger/entries", nil, people},
		"GET /api/v1/ledger/verify":                 {"/api/v1/ledger/verify", nil, people},
		// Out of a lab's account: its owners only (a site admin does not spend a lab's minutes).
		"POST /api/v1/ledger/transfers":              {"/api/v1/ledger/transfers", map[string]any{"from": "lab:lab1", "to": "user:uma", "minutes": 1}, []string{labOwner}},
		"POST /api/v1/ledger/transfers/:id/reverse":  {"/api/v1/ledger/transfers/999/reverse", map[string]string{}, []string{admin}},
		"PUT /api/v1/ledger/accounts/:account/floor": {"/api/v1/ledger/accounts/user:uma/floor", map[string]int{"floor": -100}, []string{admin}},
		// A person's own hooks: anyone signed in may have some; someone else's are 404.
		"POST /api/v1/webhooks":               {"/api/v1/webhooks", map[string]string{}, signedIn},
		"GET /api/v1/webhooks":                {"/api/v1/webhooks", nil, signedIn},
		"DELETE /api/v1/webhooks/:id":         {"/api/v1/webhooks/nope", nil, signedIn},
		"POST /api/v1/webhooks/:id/test":      {"/api/v1/webhooks/nope/test", nil, signedIn},
		"GET /api/v1/webhooks/:id/deliveries": {"/api/v1/webhooks/nope/deliveries", nil, signedIn},
		"POST /api/v1/jobs/:id/approve":       {"/api/v1/jobs/" + j + "/approve", map[string]string{}, operators},
		"POST /api/v1/jobs/:id/reject":        {"/api/v1/jobs/" + j + "/reject", map[string]string{}, operators},
		"POST /api/v1/jobs/:id/cancel":        {"/api/v1/jobs/" + fx.cancelJob + "/cancel", map[string]string{}, append([]string{user}, operators...)},
		"POST /api/v1/jobs/:id/resolve":       {"/api/v1/jobs/" + j + "/resolve", map[string]string{}, operators},
		"POST /api/v1/jobs/:id/harvest":       {"/api/v1/jobs/" + j + "/harvest", map[string]string{}, operators},
		"POST /api/v1/jobs/:id/photos":        {"/api/v1/jobs/" + j + "/photos", map[string]string{}, operators},
		"GET /api/v1/jobs/:id/photos/:key":    {"/api/v1/jobs/" + j + "/photos/" + strings.Repeat("a", 64), nil, people},

		// Federation: ActivityPub is public to read; an inbox takes only signed activities
		// (none here, so 401 for all); the hub's follows and blocks are its admins'.
		"GET /.well-known/webfinger":             {"/.well-known/webfinger?resource=acct:hub.test@hub.test", nil, anyone},
		"GET /.well-known/nodeinfo":              {"/.well-known/nodeinfo", nil, anyone},
		"GET /nodeinfo/2.1":                      {"/nodeinfo/2.1", nil, anyone},
		"GET /ap/actor":                          {"/ap/actor", nil, anyone},
		"GET /ap/actor/outbox":                   {"/ap/actor/outbox", nil, anyone},
		"GET /ap/actor/followers":                {"/ap/actor/followers", nil, anyone},
		"GET /ap/people/:name/outbox":            {"/ap/people/uma/outbox", nil, anyone},
		"GET /ap/people/:name/followers":         {"/ap/people/uma/followers", nil, anyone},
		"GET /ap/labs/:name/outbox":              {"/ap/labs/lab1/outbox", nil, anyone},
		"GET /ap/labs/:name/followers":           {"/ap/labs/lab1/followers", nil, anyone},
		"POST /ap/inbox":                         {"/ap/inbox", map[string]string{}, nil},
		"POST /ap/actor/inbox":                   {"/ap/actor/inbox", map[string]string{}, nil},
		"POST /ap/people/:name/inbox":            {"/ap/people/uma/inbox", map[string]string{}, nil},
		"POST /ap/labs/:name/inbox":              {"/ap/labs/lab1/inbox", map[string]string{}, nil},
		"POST /api/v1/federation/follows":        {"/api/v1/federation/follows", map[string]string{}, []string{admin}},
		"GET /api/v1/federation/follows":         {"/api/v1/federation/follows", nil, []string{admin}},
		"DELETE /api/v1/federation/follows/:id":  {"/api/v1/federation/follows/nope", nil, []string{admin}},
		"POST /api/v1/federation/blocks":         {"/api/v1/federation/blocks", map[string]string{}, []string{admin}},
		"GET /api/v1/federation/blocks":          {"/api/v1/federation/blocks", nil, []string{admin}},
		"DELETE /api/v1/federation/blocks/:host": {"/api/v1/federation/blocks/nope.example", nil, []string{admin}},
		// The code or join token in the body is the credential; a bearer header grants
		// nothing there. A wrong code is refused to all.
		"POST /api/v1/agent/enroll":          {"/api/v1/agent/enroll", map[string]string{"code": "WRNG-CODE"}, nil},
		"POST /api/v1/agent/register":        {"/api/v1/agent/register", map[string]any{"join_token": fx.creds[joinToken], "name": "r", "capabilities": map[string]any{"process": "fdm", "build_volume": []int{100, 100, 100}, "driver": "sim"}}, anyone},
		"POST /api/v1/agent/poll":            {"/api/v1/agent/poll", map[string]any{"protocol": 0}, []string{machine, stranger}},
		"POST /api/v1/agent/jobs/:id/events": {"/api/v1/agent/jobs/" + j + "/events", map[string]string{"lease": "fab_l_x", "kind": "progress"}, []string{machine}},
		"GET /api/v1/agent/jobs/:id/file":    {"/api/v1/agent/jobs/" + j + "/file", nil, []string{machine}},
		"POST /api/v1/agent/jobs/:id/photo":  {"/api/v1/agent/jobs/" + j + "/photo", map[string]string{}, []string{machine}},
		"GET /assets/*path":                  {"/assets/app.css", nil, anyone},
		"GET /":                              {"/", nil, people},
		"GET /search":                        {"/search?q=alpha", nil, people},
		"GET /login":                         {"/login", nil, people},
		"POST /login":                        {"/login", "handle=uma&password=correct+horse+battery", people},
		"GET /signup":                        {"/signup", nil, people},
		"POST /signup":                       {"/signup", "", people},
		"POST /logout":                       {"/logout", "", people},
		"GET /designs/:slug":                 {"/designs/alpha", nil, people},
		"GET /designs/:slug/thumbnail.png":   {"/designs/alpha/thumbnail.png", nil, people},
		"GET /account":                       {"/account", nil, signedIn},
		"POST /account/tokens":               {"/account/tokens", "name=x&password=wrong", signedIn},
		"POST /account/tokens/:id/revoke":    {"/account/tokens/nope/revoke", "", signedIn},
		"GET /admin":                         {"/admin", nil, []string{admin}},
		"POST /admin/designs/:slug/:action":  {"/admin/designs/nope/hide", "", []string{admin}},
		"GET /designs/new":                   {"/designs/new", nil, signedIn},
		"GET /designs/import":                {"/designs/import", nil, signedIn},
		"GET /designs/:slug/versions/new":    {"/designs/alpha/versions/new", nil, []string{designer}},
		"POST /designs/:slug/flag":           {"/designs/alpha/flag", "", signedIn},
		"GET /designs/:slug/fork":            {"/designs/alpha/fork", nil, signedIn},
		"POST /designs/:slug/fork":           {"/designs/alpha/fork", "", signedIn},
		"GET /labs":                          {"/labs", nil, people},
		"GET /labs/:slug":                    {"/labs/lab1", nil, people},
		"GET /orders/:id":                    {"/orders/" + o, nil, people},
		"GET /jobs/:id":                      {"/jobs/" + j, nil, people},
		"GET /people/:handle":                {"/people/uma", nil, people},
		"GET /designs/:slug/make":            {"/designs/alpha/make", nil, signedIn},
		"POST /designs/:slug/make":           {"/designs/alpha/make", "", signedIn},
	}
}

type authzFixture struct {
	creds                 map[string]string // role -> bearer secret ("" for anonymous)
	job, cancelJob, order string
	machineID             string
}

// newAuthzFixture: rootie (site admin), olga owns design alpha, lina owns lab1 with opie
// as operator and mem as member, uma (a plain user) ordered two jobs there; lab2 is
// someone else's, with its own machine.
func newAuthzFixture(t *testing.T, b bundle) authzFixture {
	t.Helper()
	secret := func(h map[string]string) string { return strings.TrimPrefix(h["Authorization"], "Bearer ") }
	fx := authzFixture{creds: map[string]string{anon: ""}}
	fx.creds[admin] = secret(login(t, b, "rootie"))
	olga, lina := login(t, b, "olga"), login(t, b, "lina")
	fx.creds[designer], fx.creds[labOwner] = secret(olga), secret(lina)
	fx.creds[operator], fx.creds[member] = secret(login(t, b, "opie")), secret(login(t, b, "mem"))
	uma := login(t, b, "uma")
	fx.creds[user] = secret(uma)
	publish(t, b, olga, map[string]any{"title": "Alpha", "license": "CC-BY-SA-4.0"}).want(t, 201, "")
	b.do(t, call{method: "POST", path: "/api/v1/labs", header: lina, body: map[string]any{"slug": "lab1", "name": "Lab one"}}).want(t, 201, "")
	b.do(t, call{method: "POST", path: "/api/v1/labs/lab1/members", header: lina, body: map[string]string{"handle": "opie", "role": "operator"}}).want(t, 200, "")
	b.do(t, call{method: "POST", path: "/api/v1/labs/lab1/members", header: lina, body: map[string]string{"handle": "mem", "role": "member"}}).want(t, 200, "")
	lf := labFixture{bundle: b, owner: lina}
	fx.machineID, _ = lf.addMachine(t, "lab1", "M1", 250, 250, 250)
	_, m1 := lf.addMachine(t, "lab1", "M1b", 250, 250, 250)
	fx.creds[machine] = secret(m1)
	b.do(t, call{method: "POST", path: "/api/v1/labs", header: olga, body: map[string]any{"slug": "lab2", "name": "Lab two"}}).want(t, 201, "")
	_, m2 := labFixture{bundle: b, owner: olga}.addMachine(t, "lab2", "M2", 250, 250, 250)
	fx.creds[stranger] = secret(m2)
	r := b.do(t, call{method: "POST", path: "/api/v1/labs/lab1/join-tokens", header: lina, body: map[string]string{"name": "shelf"}})
	r.want(t, 201, "")
	fx.creds[joinToken] = r.json["join_token"].(map[string]any)["secret"].(string)
	r = b.do(t, call{method: "POST", path: "/api/v1/orders", header: uma, body: map[string]any{"lab": "lab1", "design": "alpha", "files": []string{"parts/base.stl"}, "quantity": 2}})
	r.want(t, 201, "")
	fx.order = r.json["order"].(map[string]any)["id"].(string)
	jobs := r.json["jobs"].([]any)
	fx.job, fx.cancelJob = jobs[0].(map[string]any)["id"].(string), jobs[1].(map[string]any)["id"].(string)
	return fx
}

// TestAuthorizationMatrix calls every route of the router as every role, over HTTP
// against a real hub, and checks who gets past the door. It fails when a route has no
// row, so a new route cannot go in without saying who may call it.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		exerciseAuthz(t, setup(t, Config{PublicURL: "http://hub.test"}))
	})
	t.Run("mongodb", func(t *testing.T) {
		t.Parallel()
		uri := externaltest.NeedMongoDB(t)
		blobs, err := localblob.Open(filepath.Join(t.TempDir(), "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		name := externaltest.UniqueName("authz_")
		st := mongoHubStores(t, uri, name)
		hooks, err := mongo.OpenDatabase(context.Background(), uri, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hooks.Close() })
		hub, err := NewHub(HubConfig{Web: Config{PublicURL: "http://hub.test"}, Accounts: account.Options{Argon2: cheapArgon}},
			Stores{Accounts: st.accounts, Catalog: st.catalog, Fabrication: st.fab, Blobs: blobs, Webhooks: hooks.Webhooks(), Federation: hooks.Federation()})
		if err != nil {
			t.Fatal(err)
		}
		exerciseAuthz(t, bundle{h: hub.Handler, logs: &syncBuffer{}, fab: hub.Fab})
	})
}

func exerciseAuthz(t *testing.T, b bundle) {
	fx := newAuthzFixture(t, b)
	matrix := authzMatrix(fx)
	srv := httptest.NewServer(b.h)
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	var routes []string
	for _, ri := range b.h.(*gin.Engine).Routes() {
		routes = append(routes, ri.Method+" "+ri.Path)
	}
	sort.Strings(routes)
	for _, key := range routes {
		if _, ok := matrix[key]; !ok {
			t.Errorf("route %s has no row in the authorization matrix", key)
		}
	}
	for key, row := range matrix {
		if !slices.Contains(routes, key) {
			t.Errorf("the matrix has a row for %s, which the router does not have", key)
		}
		method := strings.Fields(key)[0]
		// Those who may not call first: a call that is let through may change what the
		// next caller meets.
		order := append([]string(nil), allRoles...)
		sort.SliceStable(order, func(i, k int) bool {
			return !slices.Contains(row.allowed, order[i]) && slices.Contains(row.allowed, order[k])
		})
		for _, role := range order {
			status, loc := callAs(t, client, srv.URL, method, row, fx.creds[role])
			refused := status == http.StatusUnauthorized || status == http.StatusForbidden ||
				(status == http.StatusSeeOther && strings.HasPrefix(loc, "/login"))
			if want := slices.Contains(row.allowed, role); want == refused {
				t.Errorf("%s as %s: got %d, want %s", key, role, status, map[bool]string{true: "to get past the door", false: "401, 403 or the login page"}[want])
			}
		}
	}
}

func callAs(t *testing.T, client *http.Client, base, method string, row route, secret string) (int, string) {
	t.Helper()
	var body io.Reader
	ctype := ""
	switch v := row.body.(type) {
	case nil:
	case string:
		body, ctype = strings.NewReader(v), "application/x-www-form-urlencoded"
	default:
		j, _ := json.Marshal(v)
		body, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, base+row.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, row.path, err)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") { // a live stream never ends
		io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}
