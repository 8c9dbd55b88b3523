package agent

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// digestAuth is a client for HTTP digest authentication (RFC 7616) as PrusaLink asks
// for it: MD5 or MD5-sess, with qop=auth. No Go library for it is served to this
// project, and this much is small. The challenge is kept, so later requests are
// authorized up front (a nonce with a growing nonce count) and an upload is not sent
// twice; a 401 with a new challenge (the nonce went stale) is answered once.
type digestAuth struct {
	user, password string

	mu        sync.Mutex
	realm     string
	nonce     string
	opaque    string
	algorithm string // "MD5" or "MD5-SESS"
	nc        int
}

func newDigestAuth(user, password string) (*digestAuth, error) {
	if user == "" || password == "" {
		return nil, errors.New("digest authentication needs both a user and a password")
	}
	if strings.ContainsAny(user, "\"\\\r\n") {
		return nil, fmt.Errorf("the user %q has a quote, a backslash or a line break, which digest authentication cannot carry", user)
	}
	return &digestAuth{user: user, password: password}, nil
}

// learn takes the challenge of a 401 answer. It answers whether the request is worth
// sending again: a digest challenge with a nonce other than the one the request used.
// A challenge this client cannot answer is an error saying why.
func (d *digestAuth) learn(header http.Header, used string) (bool, error) {
	var ch string
	for _, h := range header.Values("WWW-Authenticate") {
		if len(h) > 7 && strings.EqualFold(h[:7], "digest ") {
			ch = h[7:]
			break
		}
	}
	if ch == "" {
		return false, nil
	}
	f := digestParams(ch)
	alg := strings.ToUpper(f["algorithm"])
	if alg == "" {
		alg = "MD5"
	}
	if alg != "MD5" && alg != "MD5-SESS" {
		return false, fmt.Errorf("the printer asks for digest algorithm %s; this agent speaks MD5 and MD5-sess", f["algorithm"])
	}
	if qop, ok := f["qop"]; ok && !hasToken(qop, "auth") {
		return false, fmt.Errorf("the printer asks for digest qop %q; this agent speaks auth", qop)
	}
	if f["nonce"] == "" {
		return false, errors.New("the printer's digest challenge has no nonce")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.realm, d.nonce, d.opaque, d.algorithm, d.nc = f["realm"], f["nonce"], f["opaque"], alg, 0
	return f["nonce"] != used, nil
}

func hasToken(list, tok string) bool {
	for _, t := range strings.Split(list, ",") {
		if strings.EqualFold(strings.TrimSpace(t), tok) {
			return true
		}
	}
	return false
}

// authorize sets the request's Authorization header from the challenge learnt last,
// and answers the nonce it used ("" before any challenge: the request goes without).
func (d *digestAuth) authorize(req *http.Request) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nonce == "" {
		return ""
	}
	d.nc++
	nc := fmt.Sprintf("%08x", d.nc)
	b := make([]byte, 12)
	rand.Read(b)
	cnonce := hex.EncodeToString(b)
	uri := req.URL.RequestURI()
	ha1 := md5Hex(d.user + ":" + d.realm + ":" + d.password)
	if d.algorithm == "MD5-SESS" {
		ha1 = md5Hex(ha1 + ":" + d.nonce + ":" + cnonce)
	}
	ha2 := md5Hex(req.Method + ":" + uri)
	response := md5Hex(strings.Join([]string{ha1, d.nonce, nc, cnonce, "auth", ha2}, ":"))
	h := fmt.Sprintf(`Digest username=%q, realm=%q, nonce=%q, uri=%q, algorithm=%s, qop=auth, nc=%s, cnonce=%q, response=%q`,
		d.user, d.realm, d.nonce, uri, d.algorithm, nc, cnonce, response)
	if d.opaque != "" {
		h += fmt.Sprintf(", opaque=%q", d.opaque)
	}
	req.Header.Set("Authorization", h)
	return d.nonce
}

func md5Hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// digestParams reads a challenge's k=v and k="v" pairs (RFC 7616 section 3.3).
func digestParams(s string) map[string]string {
	out := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimLeft(s, ", \t") {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		var v strings.Builder
		if strings.HasPrefix(rest, `"`) {
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				v.WriteByte(rest[i])
			}
			s = rest[min(i+1, len(rest)):]
		} else {
			var val string
			val, s, _ = strings.Cut(rest, ",")
			v.WriteString(strings.TrimSpace(val))
		}
		out[k] = v.String()
	}
	return out
}

// do sends the request, answering a digest challenge when the API has a user and
// password: once, and only when the body can be sent again.
func (p printerAPI) do(req *http.Request) (*http.Response, error) {
	if p.digest == nil {
		return p.http.Do(req)
	}
	used := p.digest.authorize(req)
	resp, err := p.http.Do(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	again, err := p.digest.learn(resp.Header, used)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	if !again || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
		return resp, nil
	}
	resp.Body.Close()
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	p.digest.authorize(retry)
	return p.http.Do(retry)
}
