package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/fabcommons/fabcommons/catalog/mesh"
	"github.com/fabcommons/fabcommons/storage"
)

// ReadyToMake makes a remote design's version ready to be made at a lab here: its
// meshes are fetched from their origin and checked (EnsureFile), and each mesh without
// a report is analysed as an upload's is, the reports kept on the stored version so
// that this happens once. A local design's version comes back as it is. It ends one of
// these ways: the version, every mesh with its report; ErrOrigin (a mesh could not be
// fetched, or was not the file its design names: nothing is kept); a
// *storage.InvalidError (a mesh that cannot be read as STL or 3MF); another error of
// the stores.
func (s *Service) ReadyToMake(ctx context.Context, d Design, v Version, fetch Fetcher) (Version, error) {
	if !d.Remote() {
		return v, nil
	}
	var meshes []string
	for _, f := range v.Files {
		if f.Kind == FileMesh && f.Mesh == nil {
			meshes = append(meshes, f.Path)
		}
	}
	if len(meshes) == 0 {
		return v, nil
	}
	if err := s.EnsureFiles(ctx, v, meshes, fetch); err != nil {
		return Version{}, err
	}
	reports := map[string]mesh.Report{}
	for i, f := range v.Files {
		if f.Kind != FileMesh || f.Mesh != nil {
			continue
		}
		rep, err := s.analyze(ctx, f.Path, storage.BlobInfo{Key: f.SHA256, Size: f.Size})
		if errors.Is(err, mesh.ErrNotSTL) || errors.Is(err, mesh.Err3MF) {
			return Version{}, storage.Invalid("design", fmt.Sprintf("%s cannot be made: its file %q from %s is not a mesh this hub can read: %v",
				d.Slug, f.Path, d.Origin.Hub, err))
		}
		if err != nil {
			return Version{}, fmt.Errorf("analyse %q of %s: %w", f.Path, d.Slug, err)
		}
		reports[f.Path] = rep
		v.Files[i].Mesh = &rep
	}
	if len(reports) == 0 {
		return v, nil
	}
	if err := s.store.SetMeshReports(ctx, d.ID, v.Number, reports); err != nil {
		return Version{}, fmt.Errorf("keep the mesh reports of %s version %d: %w", d.Slug, v.Number, err)
	}
	s.log.Info("catalog: a remote design's meshes analysed", "design", d.Slug, "version", v.Number, "meshes", len(reports))
	return v, nil
}
