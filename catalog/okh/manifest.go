// Package okh imports a design from an Open Know-How package: an archive holding an
// okh.toml (OKH-LOSH v1, or the older OKH v1 keys) and the files it names. Real manifests
// are messy, so reading one never fails on what it cannot use: a Report says what was
// taken, what was left and why.
package okh

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/storage"
)

// Item is one line of a Report: a manifest key (part[0].export for a key inside the
// first part), the file it names if any, and what became of it.
type Item struct {
	Key  string `json:"key"`
	Path string `json:"path,omitempty"`
	Note string `json:"note,omitempty"`
}

// Report says what an import made of a manifest and its archive.
type Report struct {
	OKHV    string `json:"okhv"`    // the manifest's okhv, as written ("" when it has none)
	Used    []Item `json:"used"`    // keys (and files) that went into the design
	Ignored []Item `json:"ignored"` // keys that did not, each with why: unknown, not kept, not understood
	Missing []Item `json:"missing"` // files the manifest names that the archive lacks
	// Unnamed lists archive entries the manifest does not name: they are left out.
	Unnamed []string `json:"unnamed"`
}

func (r *Report) use(key, p, note string) {
	r.Used = append(r.Used, Item{Key: key, Path: p, Note: note})
}
func (r *Report) ignore(key, p, note string) {
	r.Ignored = append(r.Ignored, Item{Key: key, Path: p, Note: note})
}

// FileRef is a file the manifest names, by the key that names it.
type FileRef struct {
	Key  string
	Path string // cleaned: inside the design, no leading slash or ./
}

// Manifest is what fabcommons takes from an okh.toml.
type Manifest struct {
	Name     string
	Function string // the design's summary
	License  string // as written: the importer decides what it means
	Licensor string
	Version  string
	Repo     string
	Tags     []string
	BOM      string    // the BOM's path in the archive ("" for none)
	Files    []FileRef // in the manifest's order, each path once
}

// MaxManifestBytes bounds an okh.toml: a description and a list of files.
const MaxManifestBytes = 1 << 20

// notKept are OKH-LOSH (and OKH v1) keys fabcommons understands but has no place for.
var notKept = map[string]string{
	"release": "", "organization": "", "documentation-language": "", "technology-readiness-level": "",
	"documentation-readiness-level": "", "attestation": "", "publication": "", "standard-compliance": "",
	"cpc-patent-class": "", "tsdc": "", "mass": "", "software": "", "date-created": "", "date-updated": "",
	"outer-dimensions": "fabcommons measures the meshes itself",
	"manifest-author":  "", "contact": "", "contributors": "", "development-stage": "", "made": "",
	"made-independently": "", "standards-used": "", "derivative-of": "", "variant-of": "", "sub": "",
	"making-instructions": "", "operating-instructions": "", "design-files": "", "schematics": "",
	"manufacturing-files": "", "health-safety-notice": "", "manifest-language": "",
	"project-link": "", "archive-download": "",
}

// fileKeys name files at the top of a manifest; parts have source, export and image.
var fileKeys = []string{"readme", "image", "source", "export", "manufacturing-instructions", "user-manual", "contribution-guide"}

// Parse reads an okh.toml. It fails only when the text is not TOML (a
// *storage.InvalidError naming the line, and a zero Report); anything it cannot use is
// in the report.
func Parse(data []byte) (Manifest, Report, error) {
	rep := Report{Used: []Item{}, Ignored: []Item{}, Missing: []Item{}, Unnamed: []string{}}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return Manifest{}, Report{}, storage.Invalid("okh.toml", fmt.Sprintf("not valid TOML at line %d, column %d: %s", row, col, de.Error()))
		}
		return Manifest{}, Report{}, storage.Invalid("okh.toml", "not valid TOML: "+err.Error())
	}
	p := parser{doc: doc, rep: &rep, seen: map[string]bool{}}
	p.read()
	return p.m, rep, nil
}

type parser struct {
	doc  map[string]any
	m    Manifest
	rep  *Report
	seen map[string]bool // file paths already taken
}

func (p *parser) read() {
	done := map[string]bool{}
	take := func(keys ...string) {
		for _, k := range keys {
			done[k] = true
		}
	}
	p.okhv()
	take("okhv")
	p.m.Name = p.firstText("the design's name", "name", "title")
	take("name", "title")
	p.summary()
	take("function", "description", "intended-use")
	p.license()
	take("license")
	p.m.Licensor = p.people("licensor")
	take("licensor")
	p.m.Version = p.firstText("kept in the version's message", "version")
	take("version")
	p.m.Repo = p.firstText("kept in the version's message", "repo", "documentation-home")
	take("repo", "documentation-home")
	p.tags()
	take("keywords")
	if v, ok := p.doc["bom"]; ok {
		take("bom")
		if s, ok := v.(string); ok {
			if b, why := cleanRef(s); why != "" {
				p.rep.ignore("bom", s, why)
			} else {
				p.m.BOM = b
			}
		} else {
			p.rep.ignore("bom", "", "want the path of a CSV, TSV or JSON file, got "+typeName(v))
		}
	}
	for _, k := range fileKeys {
		p.files(k, p.doc[k])
		take(k)
	}
	p.parts()
	take("part")
	keys := make([]string, 0, len(p.doc))
	for k := range p.doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if done[k] {
			continue
		}
		if why, ok := notKept[k]; ok {
			if why == "" {
				why = "an OKH key fabcommons has no place for"
			}
			p.rep.ignore(k, "", why)
			continue
		}
		p.rep.ignore(keyName(k), "", "unknown key")
	}
}

// keyName is how the report names a key: as written, or quoted when it is empty (TOML
// allows "" = 1).
func keyName(k string) string {
	if k == "" {
		return `""`
	}
	return k
}

// okhv accepts the OKH-LOSH v1 spellings, and reads anything else as OKH-LOSH v1 too.
func (p *parser) okhv() {
	v, ok := p.doc["okhv"]
	if !ok {
		p.rep.ignore("okhv", "", "missing: read as OKH-LOSH v1.0")
		return
	}
	s, ok := v.(string)
	if !ok {
		s = fmt.Sprint(v)
	}
	p.rep.OKHV = s
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "okh-loshv1.0", "okh-loshv1", "okh-losh-1.0", "1.0", "1":
		p.rep.use("okhv", "", "")
	default:
		p.rep.use("okhv", "", fmt.Sprintf("%q is not a version this hub knows: read as OKH-LOSH v1.0", s))
	}
}

// firstText takes the first of keys the manifest has as text (a number is written out);
// the others it has are reported as given too.
func (p *parser) firstText(note string, keys ...string) string {
	var got string
	for _, k := range keys {
		v, ok := p.doc[k]
		if !ok {
			continue
		}
		s, ok := text(v)
		switch {
		case !ok:
			p.rep.ignore(k, "", "want text, got "+typeName(v))
		case got != "":
			p.rep.ignore(k, "", keys[0]+" is given too")
		case strings.TrimSpace(s) == "":
			p.rep.ignore(k, "", "empty")
		default:
			got = strings.TrimSpace(s)
			n := note
			if k != keys[0] {
				n = fmt.Sprintf("the older name of %s; %s", keys[0], note)
			}
			p.rep.use(k, "", n)
		}
	}
	return got
}

// summary is function (OKH-LOSH) or description (OKH v1), with an OKH v1 intended-use
// after it, as OKH-LOSH's own mapping of v1 does.
func (p *parser) summary() {
	s := p.firstText("as the summary", "function", "description")
	if v, ok := p.doc["intended-use"]; ok {
		if u, ok := text(v); ok && strings.TrimSpace(u) != "" {
			s = strings.TrimSpace(s + "\n\n" + strings.TrimSpace(u))
			p.rep.use("intended-use", "", "added to the summary")
		} else {
			p.rep.ignore("intended-use", "", "want text, got "+typeName(v))
		}
	}
	if utf8.RuneCountInString(s) > 5000 {
		s = string([]rune(s)[:5000])
		p.rep.use("function", "", "the summary is cut to 5000 characters")
	}
	p.m.Function = s
}

// license is a string (OKH-LOSH), or a table of hardware, documentation and software
// licenses (OKH v1): the hardware one, else the documentation one.
func (p *parser) license() {
	v, ok := p.doc["license"]
	if !ok {
		return
	}
	switch l := v.(type) {
	case string:
		p.m.License = strings.TrimSpace(l)
		p.rep.use("license", "", "")
	case map[string]any:
		for _, k := range []string{"hardware", "documentation"} {
			if s, ok := l[k].(string); ok && strings.TrimSpace(s) != "" && p.m.License == "" {
				p.m.License = strings.TrimSpace(s)
				p.rep.use("license."+k, "", "an OKH v1 license table: its "+k+" license")
			} else if _, ok := l[k]; ok {
				p.rep.ignore("license."+k, "", "one license is kept per design")
			}
		}
		for _, k := range sortedKeys(l) {
			if k != "hardware" && k != "documentation" {
				p.rep.ignore("license."+k, "", "one license is kept per design")
			}
		}
	default:
		p.rep.ignore("license", "", "want an SPDX id, got "+typeName(v))
	}
}

// people reads a licensor: a name, a table with a name (OKH v1), or a list of either.
func (p *parser) people(key string) string {
	v, ok := p.doc[key]
	if !ok {
		return ""
	}
	var names []string
	var one func(v any) bool
	one = func(v any) bool {
		switch x := v.(type) {
		case string:
			if strings.TrimSpace(x) != "" {
				names = append(names, strings.TrimSpace(x))
			}
			return true
		case map[string]any:
			if s, ok := x["name"].(string); ok {
				return one(s)
			}
		}
		return false
	}
	if list, ok := v.([]any); ok {
		for _, e := range list {
			if !one(e) {
				p.rep.ignore(key, "", "an entry with no name")
			}
		}
	} else if !one(v) {
		p.rep.ignore(key, "", "want a name, got "+typeName(v))
		return ""
	}
	if len(names) == 0 {
		return ""
	}
	p.rep.use(key, "", "kept in the version's message")
	return strings.Join(names, ", ")
}

// tags makes tags of OKH v1 keywords: lower-cased, hyphenated, at most 20.
func (p *parser) tags() {
	v, ok := p.doc["keywords"]
	if !ok {
		return
	}
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	seen := map[string]bool{}
	for _, e := range list {
		s, ok := e.(string)
		t := catalog.Slugify(s)
		if len(t) > 40 {
			t = strings.TrimRight(t[:40], "-")
		}
		switch {
		case !ok || strings.Trim(t, "-") == "" || t == "design" && !strings.Contains(strings.ToLower(s), "design"):
			p.rep.ignore("keywords", "", fmt.Sprintf("%v: want words of letters or digits", e))
		case seen[t]:
		case len(p.m.Tags) == 20:
			p.rep.ignore("keywords", "", fmt.Sprintf("%q: at most 20 tags", s))
		default:
			seen[t] = true
			p.m.Tags = append(p.m.Tags, t)
		}
	}
	if len(p.m.Tags) > 0 {
		p.rep.use("keywords", "", "as tags")
	}
}

// files takes the file paths v names (one path or a list) under key; a path named
// twice is taken once.
func (p *parser) files(key string, v any) {
	if v == nil {
		return
	}
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			p.rep.ignore(key, "", "want a file's path, got "+typeName(e))
			continue
		}
		c, why := cleanRef(s)
		if why == "" {
			if _, err := catalog.CleanPath(c); err != nil {
				why = err.Error()
			}
		}
		if why != "" {
			p.rep.ignore(key, s, why)
			continue
		}
		if !p.seen[c] {
			p.seen[c] = true
			p.m.Files = append(p.m.Files, FileRef{Key: key, Path: c})
		}
	}
}

// parts reads [[part]]: each part's source, export and image are files of the design.
func (p *parser) parts() {
	v, ok := p.doc["part"]
	if !ok {
		return
	}
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	for i, e := range list {
		key := fmt.Sprintf("part[%d]", i)
		part, ok := e.(map[string]any)
		if !ok {
			p.rep.ignore(key, "", "want a table, got "+typeName(e))
			continue
		}
		for _, k := range []string{"source", "export", "image"} {
			p.files(key+"."+k, part[k])
		}
		for _, k := range sortedKeys(part) {
			switch k {
			case "source", "export", "image":
			case "name":
				if s, ok := part[k].(string); ok {
					p.rep.use(key+".name", "", fmt.Sprintf("part %q: its files are the design's", s))
				} else {
					p.rep.ignore(key+".name", "", "want text, got "+typeName(part[k]))
				}
			default:
				if _, known := notKept[k]; known {
					p.rep.ignore(key+"."+k, "", "an OKH key fabcommons has no place for")
				} else {
					p.rep.ignore(key+"."+keyName(k), "", "unknown key")
				}
			}
		}
	}
}

// cleanRef turns a manifest's file reference into a path inside the archive: a
// leading / or ./ means the package's root. why says why it is not one.
func cleanRef(s string) (p, why string) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "://") {
		return "", "a link, not a file in the archive: not fetched"
	}
	for {
		t := strings.TrimPrefix(strings.TrimPrefix(s, "./"), "/")
		if t == s {
			break
		}
		s = t
	}
	if s == "" {
		return "", "empty"
	}
	c := path.Clean(s)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", "climbs out of the package with .."
	}
	return c, ""
}

// text reads a scalar as text: a string, or a number or date written out.
func text(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case map[string]any, []any, bool:
		return "", false
	case nil:
		return "", false
	default:
		return fmt.Sprint(x), true
	}
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "text"
	case map[string]any:
		return "a table"
	case []any:
		return "a list"
	case bool:
		return "true/false"
	case int64, float64:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
