// Package netguard keeps the hub's outbound HTTP (webhook deliveries, federation) off
// the addresses only the hub can reach: loopback, private networks, link-local, metadata.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

// Guard keeps the hub from being used to reach what only it can reach (its own
// loopback, the private network it sits in, a cloud's metadata address): a receiver
// must be an http(s) URL of a public address, unless its host is one an operator
// allowed (FAB_WEBHOOK_ALLOW_HOSTS for webhooks, FAB_FEDERATION_ALLOW_HOSTS for
// federation: host names, IP addresses or CIDR prefixes). The URL is checked when a hook is registered, and
// the address actually dialled at every delivery, so a name that later resolves to a
// private address (DNS rebinding) is refused too.
type Guard struct {
	allow    map[string]bool // host names and IP addresses, lower-cased
	prefixes []netip.Prefix  // CIDR prefixes allowed
}

// New allows the hosts given (names, IP addresses or CIDR prefixes such as
// 10.0.0.0/8) even when they are private.
func New(allowHosts []string) Guard {
	g := Guard{allow: map[string]bool{}}
	for _, h := range allowHosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if p, err := netip.ParsePrefix(h); err == nil {
			g.prefixes = append(g.prefixes, p.Masked())
			continue
		}
		if h != "" {
			g.allow[h] = true
		}
	}
	return g
}

// allowed reports whether host (a name or an IP address) was allowed.
func (g Guard) allowed(host string) bool {
	host = strings.ToLower(host)
	if g.allow[host] {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	if g.allow[ip.String()] {
		return true
	}
	for _, p := range g.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Allowed reports whether the URL's host was allowed outright (so an http:// URL of a
// loopback address may be used, as in tests).
func (g Guard) Allowed(host string) bool { return g.allowed(host) }

// CheckURL refuses (as storage.ErrInvalid on field "url") what is not an http(s) URL
// with a host, carries credentials, or names a private address outright (an IP
// literal, localhost) that is not allowed.
func (g Guard) CheckURL(raw string) error {
	if len(raw) > 2000 {
		return storage.Invalid("url", "at most 2000 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return storage.Invalid("url", "must be an http:// or https:// URL with a host")
	}
	if u.User != nil {
		return storage.Invalid("url", "must not carry a user name or password; the signature authenticates the hub")
	}
	host := strings.ToLower(u.Hostname())
	if g.allowed(host) {
		return nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return storage.Invalid("url", "must not point at the hub's own machine")
	}
	if ip, err := netip.ParseAddr(host); err == nil && !public(ip) {
		return storage.Invalid("url", fmt.Sprintf("%s is a private, loopback or reserved address", ip))
	}
	return nil
}

// ErrPrivate is how a dial to a refused address fails.
var ErrPrivate = errors.New("refused: the receiver's address is private, loopback or reserved")

// Client is an HTTP client for deliveries: it dials only what the guard allows, gives
// up after timeout, and follows no redirects (a 3xx is a failed attempt).
func (g Guard) Client(timeout time.Duration) *http.Client {
	guarded := &net.Dialer{Timeout: timeout, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || (!public(ap.Addr()) && !g.allowed(ap.Addr().String())) {
			return ErrPrivate
		}
		return nil
	}}
	plain := &net.Dialer{Timeout: timeout}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err == nil && g.allow[strings.ToLower(host)] { // an allowed name: its addresses are trusted
			return plain.DialContext(ctx, network, addr)
		}
		return guarded.DialContext(ctx, network, addr)
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:           dial,
			Proxy:                 nil, // a proxy would dial for us, past the guard
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       time.Minute,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598), private in effect.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// public reports whether ip is an ordinary Internet address.
func public(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsValid() && ip.IsGlobalUnicast() && !ip.IsPrivate() && !cgnat.Contains(ip) &&
		!(ip.Is4() && ip.As4()[0] == 0)
}
