package mesh

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	headerSize = 84
	facetSize  = 50
)

// ErrNotSTL means the bytes cannot be read as STL at all.
var ErrNotSTL = errors.New("not an STL file")

// layout is how a file will be read.
type layout struct {
	binary      bool
	facets      int64 // binary: facets the size allows, the count that is read
	headerCount uint32
}

// detect decides binary or ASCII by the rule size == 84 + 50 × header count, so a binary
// file whose header begins with "solid" still reads as binary. When size and count
// disagree it does what admesh does: text that starts with "solid" is ASCII, anything
// else is binary with as many facets as the size holds — never the count the header
// claims, which may be four billion.
func detect(r io.ReaderAt, size int64, rep *Report) (layout, error) {
	head := make([]byte, min(size, 512))
	if _, err := r.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return layout{}, err
	}
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	solid := len(trimmed) >= 5 && bytes.EqualFold(trimmed[:5], []byte("solid"))
	if size >= headerSize {
		count := binary.LittleEndian.Uint32(head[80:84])
		if size == headerSize+facetSize*int64(count) {
			if solid {
				rep.lint(CodeSolidHeaderBinary, `binary STL whose header begins with "solid"; some programs misread it as ASCII`)
			}
			return layout{binary: true, facets: int64(count), headerCount: count}, nil
		}
		if !(solid && isText(head)) {
			l := layout{binary: true, facets: (size - headerSize) / facetSize, headerCount: count}
			rep.lint(CodeCountMismatch, fmt.Sprintf("the header says %d facets but the file size holds %d; read %d", count, l.facets, l.facets))
			if (size-headerSize)%facetSize != 0 {
				rep.lint(CodeTruncated, fmt.Sprintf("the file ends %d bytes into a facet", (size-headerSize)%facetSize))
			}
			return l, nil
		}
	}
	if solid && isText(head) {
		return layout{}, nil
	}
	rep.lint(CodeNotSTL, "too short for binary STL and not ASCII STL")
	return layout{}, fmt.Errorf("%w: %d bytes, too short for binary STL and not ASCII STL", ErrNotSTL, size)
}

// isText reports whether b looks like ASCII text (no control bytes but whitespace).
func isText(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
