package catalog

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

// EncodeCursor and DecodeCursor make the opaque cursor of a newest-first listing: the
// creation time and id of the last design on the page.
func EncodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixNano(), 10) + "." + id))
}

func DecodeCursor(cursor string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err == nil {
		ts, id, ok := strings.Cut(string(b), ".")
		if n, err := strconv.ParseInt(ts, 10, 64); ok && err == nil && id != "" {
			return n, id, nil
		}
	}
	return 0, "", storage.Invalid("cursor", "not a cursor this listing gave out")
}
