package federation

import "runtime/debug"

// NodeInfo (https://nodeinfo.diaspora.software/protocol) says what software a hub runs
// and what it speaks, for crawlers and for other servers (Mastodon reads it to show
// where an account lives). The discovery document at PathNodeInfo links the document
// of schema 2.1 at PathNodeInfo21.
const (
	PathNodeInfo     = "/.well-known/nodeinfo"
	PathNodeInfo21   = "/nodeinfo/2.1"
	nodeInfoSchema21 = "http://nodeinfo.diaspora.software/ns/schema/2.1"
	// MediaNodeInfo21 is the media type of a NodeInfo 2.1 document.
	MediaNodeInfo21 = `application/json; profile="` + nodeInfoSchema21 + `#"`
)

// NodeInfoLinks is the discovery document: where the NodeInfo document is.
func (s *Service) NodeInfoLinks() map[string]any {
	return map[string]any{"links": []any{map[string]any{"rel": nodeInfoSchema21, "href": s.base + PathNodeInfo21}}}
}

// NodeInfo is the hub's NodeInfo 2.1 document. Its usage figures are left out (the
// schema allows that): counting people and designs on every crawler's visit is not
// worth it, and a hub need not say how many people it has.
func (s *Service) NodeInfo(openRegistrations bool) map[string]any {
	version := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
	return map[string]any{
		"version": "2.1",
		"software": map[string]any{"name": "fabcommons", "version": version,
			"repository": "https://github.com/fabcommons/fabcommons", "homepage": "https://github.com/fabcommons/fabcommons"},
		"protocols":         []string{"activitypub"},
		"services":          map[string]any{"inbound": []string{}, "outbound": []string{}},
		"openRegistrations": openRegistrations,
		"usage":             map[string]any{"users": map[string]any{}},
		"metadata":          map[string]any{"nodeName": s.host, "nodeDescription": "An open-hardware design commons and fab-lab coordinator"},
	}
}
