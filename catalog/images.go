package catalog

import (
	"bytes"
	"context"
	"fmt"

	"github.com/fabcommons/fabcommons/catalog/picture"
	"github.com/fabcommons/fabcommons/storage"
)

// StoreImage keeps an image picture.Clean made as a blob, in the store design files
// live in (served with OpenBlob), and returns its key and size. Only cleaned images
// come here, so nothing is stored as it was uploaded. The caller names the blob in a
// record afterwards; until then it is an orphan that the maintenance cron collects.
func (s *Service) StoreImage(ctx context.Context, p picture.Picture) (storage.BlobInfo, error) {
	info, err := s.blobs.Put(ctx, bytes.NewReader(p.Data), int64(len(p.Data)), "")
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("store image: %w", err)
	}
	return info, nil
}
