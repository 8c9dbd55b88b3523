package mesh

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
)

// Reading vertices and triangles through encoding/xml costs about 8 µs a triangle
// (every attribute becomes strings in a fresh slice), 4 s for a 500,000-triangle model,
// as measured by BenchmarkAnalyze3MF. Nearly all of a model is these two elements, in
// one plain form: <vertex x="1" y="2" z="3"/>, whitespace between. scanItems reads that
// form straight from the buffered bytes and hands anything else back to the decoder.

// vertex checks and stores one vertex (vals by x, y, z; got has bit k set for each given).
func (m *model3MF) vertex(obj *object3MF, vals [3]string, got int) error {
	if m.vertices++; m.vertices > max3MFVertices {
		return fmt.Errorf("over %d vertices", max3MFVertices)
	}
	if got != 7 {
		return fmt.Errorf("a vertex without x, y and z")
	}
	var xyz [3]float32
	for k, s := range vals {
		v, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return fmt.Errorf("vertex %c=%q is not a number", "xyz"[k], clip(s))
		}
		xyz[k] = float32(v)
	}
	obj.vertices = append(obj.vertices, xyz[0], xyz[1], xyz[2])
	return nil
}

// triangle checks and stores one triangle (vals by v1, v2, v3).
func (m *model3MF) triangle(obj *object3MF, vals [3]string, got int) error {
	if m.triangles++; m.triangles > max3MFTriangles {
		return fmt.Errorf("over %d triangles", max3MFTriangles)
	}
	if got != 7 {
		return fmt.Errorf("a triangle without v1, v2 and v3")
	}
	var v [3]uint32
	for k, s := range vals {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return fmt.Errorf("triangle v%d=%q is not a vertex index", k+1, clip(s))
		}
		v[k] = uint32(n)
	}
	obj.triangles = append(obj.triangles, v[0], v[1], v[2])
	return nil
}

func triangleAttr(name string) (int, bool) {
	if len(name) == 2 && name[0] == 'v' && '1' <= name[1] && name[1] <= '3' {
		return int(name[1] - '1'), true
	}
	return 0, false
}

// scanItems reads, from br just after the decoder returned <vertices> or <triangles>,
// the children in plain form: <vertex .../> or <triangle .../> with quoted attributes
// and no entities, with whitespace and comments between. It consumes only whole items
// and stops before anything else (the closing tag, text, an element with content or a
// namespace declaration, one longer than br's buffer), which the decoder then reads as
// usual. Attributes with a prefix belong to extensions and are ignored, as the decoder
// path ignores them.
func (m *model3MF) scanItems(br *bufio.Reader, list string, obj *object3MF) error {
	item := []byte("<vertex")
	if list == "triangles" {
		item = []byte("<triangle")
	}
	for {
		buf, _ := br.Peek(br.Size()) // fewer bytes at the end of the part
		used, err := m.scanBuffer(buf, item, obj)
		if err != nil {
			return err
		}
		if used == 0 {
			return nil // not plain, or the end: the decoder carries on from here
		}
		if _, err := br.Discard(used); err != nil {
			return err
		}
	}
}

// scanBuffer reads whole plain items from buf and returns the bytes they took.
func (m *model3MF) scanBuffer(buf, item []byte, obj *object3MF) (int, error) {
	used := 0
	for {
		i := used
		for i < len(buf) && isSpace(buf[i]) {
			i++
		}
		rest := buf[i:]
		if bytes.HasPrefix(rest, []byte("<!--")) {
			end := bytes.Index(rest[4:], []byte("-->"))
			if end < 0 {
				return used, nil
			}
			used = i + 4 + end + 3
			continue
		}
		if !bytes.HasPrefix(rest, item) || len(rest) == len(item) || !(isSpace(rest[len(item)]) || rest[len(item)] == '/') || !m.plain {
			return used, nil
		}
		var vals [3]string
		got := 0
		n, ok := plainAttrs(rest[len(item):], func(name, value []byte) {
			var k int
			var is bool
			if item[1] == 'v' {
				k, is = bytes.IndexByte([]byte("xyz"), name[0]), len(name) == 1
				is = is && k >= 0
			} else {
				k, is = triangleAttr(string(name))
			}
			if is {
				vals[k], got = string(value), got|1<<k
			}
		})
		if !ok {
			return used, nil
		}
		var err error
		if item[1] == 'v' {
			err = m.vertex(obj, vals, got)
		} else {
			err = m.triangle(obj, vals, got)
		}
		if err != nil {
			return used, err
		}
		used = i + len(item) + n
	}
}

// plainAttrs reads name="value" pairs up to "/>" and returns the bytes taken, or false
// when the element is not in plain form or not all in b: anything the decoder would
// judge (odd names or characters, entities, namespace declarations) goes to it. each
// sees unprefixed names.
func plainAttrs(b []byte, each func(name, value []byte)) (int, bool) {
	i := 0
	for {
		spaced := i < len(b) && isSpace(b[i])
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i+1 < len(b) && b[i] == '/' && b[i+1] == '>' {
			return i + 2, true
		}
		if !spaced {
			return 0, false
		}
		start := i
		for i < len(b) && isNameByte(b[i], i == start) {
			i++
		}
		name := b[start:i]
		if len(name) == 0 || i+1 >= len(b) || b[i] != '=' || (b[i+1] != '"' && b[i+1] != '\'') {
			return 0, false
		}
		q := b[i+1]
		i += 2
		start = i
		for i < len(b) && b[i] != q {
			if c := b[i]; c < 0x20 || c >= 0x80 || c == '&' || c == '<' {
				return 0, false
			}
			i++
		}
		if i >= len(b) || bytes.HasPrefix(name, []byte("xmlns")) {
			return 0, false
		}
		if bytes.IndexByte(name, ':') < 0 {
			each(name, b[start:i])
		}
		i++
	}
}

// isNameByte: the ASCII letters of an XML name; anything else is left to the decoder.
func isNameByte(c byte, first bool) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_', c == ':':
		return true
	case '0' <= c && c <= '9', c == '-', c == '.':
		return !first
	}
	return false
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }
