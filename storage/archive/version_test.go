package archive

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// An archive of an older version is read; one of a newer version, whose records this
// hub would load without what it does not know, is refused in words.
func TestArchiveVersions(t *testing.T) {
	user := []byte(`{"kind":"user","data":{"id":"u1","handle":"ada","admin":true,"created_at":"2026-03-01T12:00:00Z","password_hash":"$argon2id$x"}}` + "\n")
	for v, want := range map[string]string{"1": "", "2": "", "3": "archive version 3: this fabhub reads versions 1 to 2", "0": "archive version 0"} {
		header := []byte(`{"format":"fabcommons-archive","version":` + v + `,"records":{"user":1}}`)
		dst := &memStore{}
		_, err := Import(context.Background(), bytes.NewReader(archiveOf(header, user, []byte("a blob"))), dst, &memBlobs{m: map[string][]byte{}}, Options{})
		switch {
		case want == "" && (err != nil || len(dst.loaded) != 1):
			t.Errorf("version %s: got %v and %d records, want the user loaded", v, err, len(dst.loaded))
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("version %s: got %v, want %q", v, err, want)
		}
	}
}
