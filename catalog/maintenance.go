package catalog

import (
	"context"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

// BlobAdmin is what collecting orphans needs beyond Blobs (storage.Blobs has it).
type BlobAdmin interface {
	List(ctx context.Context, prefix string, fn func(storage.BlobInfo) error) error
	Delete(ctx context.Context, key string) error
	Sweep(ctx context.Context, olderThan time.Duration) (int, error)
}

// CollectOrphans deletes blobs no version refers to that are older than grace (an
// upload stores its blobs before its version, so a young orphan may be an upload in
// progress), and temporary objects of crashed uploads.
func (s *Service) CollectOrphans(ctx context.Context, admin BlobAdmin, grace time.Duration) (int, error) {
	used := map[string]bool{}
	if err := s.store.ReferencedBlobs(ctx, func(k string) error { used[k] = true; return nil }); err != nil {
		return 0, err
	}
	cutoff := s.now().Add(-grace)
	var orphans []string
	err := admin.List(ctx, "", func(b storage.BlobInfo) error {
		if !used[b.Key] && b.ModTime.Before(cutoff) {
			orphans = append(orphans, b.Key)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range orphans {
		if err := admin.Delete(ctx, k); err != nil {
			return n, err
		}
		n++
	}
	swept, err := admin.Sweep(ctx, grace)
	return n + swept, err
}

// RecomputeCounters sets every design's counters: forks from its children, job
// outcomes from jobCounts (design id -> [done, failed]), and makes from the jobs done
// here and remoteMakes (design id -> its makes at other hubs' labs).
func (s *Service) RecomputeCounters(ctx context.Context, jobCounts map[string][2]int, remoteMakes map[string]int) (int, error) {
	changed := 0
	cursor := ""
	for {
		page, err := s.store.Search(ctx, Query{Limit: 100, Cursor: cursor})
		if err != nil {
			return changed, err
		}
		for _, d := range page.Designs {
			children, err := s.store.Children(ctx, d.ID)
			if err != nil {
				return changed, err
			}
			jc := jobCounts[d.ID]
			c := Counters{Forks: len(children), Makes: jc[0] + remoteMakes[d.ID], JobsOK: jc[0], JobsFailed: jc[1]}
			if c != d.Counters {
				if err := s.store.SetCounters(ctx, d.ID, c); err != nil {
					return changed, err
				}
				changed++
			}
		}
		if cursor = page.NextCursor; cursor == "" {
			return changed, nil
		}
	}
}
