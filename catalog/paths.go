package catalog

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fabcommons/fabcommons/storage"
)

// CleanPath normalises a file path inside a design and refuses anything that could
// escape it or confuse a file system: absolute paths, "..", empty or hidden
// components, backslashes and control characters.
func CleanPath(p string) (string, error) {
	raw := p
	if p == "" {
		return "", storage.Invalid("files", "a file has no name")
	}
	if len(p) > 255 || !utf8.ValidString(p) {
		return "", storage.Invalid("files", fmt.Sprintf("file name %q is too long or not UTF-8", raw))
	}
	if strings.ContainsAny(p, "\\\x00:") || strings.IndexFunc(p, unicode.IsControl) >= 0 {
		return "", storage.Invalid("files", fmt.Sprintf("file name %q has a backslash, colon or control character", raw))
	}
	if strings.HasPrefix(p, "/") {
		return "", storage.Invalid("files", fmt.Sprintf("file name %q is absolute; use a path inside the design", raw))
	}
	for _, part := range strings.Split(p, "/") {
		switch {
		case part == "..":
			return "", storage.Invalid("files", fmt.Sprintf("file name %q climbs out of the design with ..", raw))
		case part == "" || part == ".":
			return "", storage.Invalid("files", fmt.Sprintf("file name %q has an empty part", raw))
		case strings.HasPrefix(part, "."):
			return "", storage.Invalid("files", fmt.Sprintf("file name %q has a hidden part", raw))
		}
	}
	if generatedName(p) {
		return "", storage.Invalid("files", fmt.Sprintf("%q is the name of a file the hub writes into every download; name yours otherwise", raw))
	}
	return path.Clean(p), nil
}

// generated are the files the hub writes at the root of a download.
var generated = []string{"ATTRIBUTION.md", "bom.csv", "okh.toml"}

func generatedName(p string) bool {
	for _, g := range generated {
		if strings.EqualFold(p, g) {
			return true
		}
	}
	return false
}

// KindOf says how a file is treated: STL and 3MF files are analysed as meshes.
func KindOf(p string) string {
	switch strings.ToLower(path.Ext(p)) {
	case ".stl", ".3mf":
		return FileMesh
	}
	return FileDocument
}

var slugUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// Slugify makes a URL slug from a title: lower-case ASCII letters, digits and hyphens.
func Slugify(title string) string {
	s := slugUnsafe.ReplaceAllString(strings.ToLower(title), "-")
	s = strings.Trim(s, "-")
	if len(s) > 60 {
		s = strings.TrimRight(s[:60], "-")
	}
	if s == "" {
		s = "design"
	}
	return s
}

var slugRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$`)

// ValidSlug reports whether s can be a design slug.
func ValidSlug(s string) bool { return slugRE.MatchString(s) }

var tagRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// CleanTags lower-cases, de-duplicates and checks tags.
func CleanTags(tags []string) ([]string, error) {
	out := []string{}
	seen := map[string]bool{}
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" || seen[t] {
			continue
		}
		if !tagRE.MatchString(t) {
			return nil, storage.Invalid("tags", fmt.Sprintf("tag %q: use up to 40 lowercase letters, digits and hyphens", t))
		}
		seen[t] = true
		out = append(out, t)
	}
	if len(out) > 20 {
		return nil, storage.Invalid("tags", "at most 20 tags")
	}
	return out, nil
}

// Terms are the lower-cased words of a design's title, summary and tags, for search.
func Terms(d Design) []string {
	seen := map[string]bool{}
	var terms []string
	add := func(s string) {
		for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			if !seen[w] && len(w) <= 64 {
				seen[w] = true
				terms = append(terms, w)
			}
		}
	}
	add(d.Title)
	add(d.Summary)
	for _, t := range d.Tags {
		add(t)
	}
	return terms
}

// QueryWords splits a search text the same way Terms splits a design.
func QueryWords(text string) []string {
	return Terms(Design{Title: text})
}
