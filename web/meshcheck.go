package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/catalog/mesh"
)

// meshCheck: POST /api/v1/mesh/check (multipart "file") -> the mesh report of one STL,
// or of a 3MF's build when the file's name ends in .3mf. Nothing is stored: the upload is spooled to a temporary file, analysed and removed.
// Anyone may call it, a limited number of times a minute per client.
func (s *Server) meshCheck(c *gin.Context) {
	client, now := clientOf(c), s.now()
	if wait := s.meshChecks.Take(client, now); wait > 0 {
		s.fail(c, &rateLimited{wait})
		return
	}
	mr, err := c.Request.MultipartReader()
	if err != nil {
		s.fail(c, &badRequest{"send multipart/form-data with the STL in a field named file"})
		return
	}
	part, err := mr.NextPart()
	if err != nil {
		s.fail(c, bodyError(err))
		return
	}
	if part.FormName() != "file" {
		s.fail(c, &badRequest{fmt.Sprintf("unexpected field %q: send the STL as file", part.FormName())})
		return
	}
	tmp, err := os.CreateTemp(s.cfg.TempDir, "meshcheck-*.stl")
	if err != nil {
		s.fail(c, err)
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, io.LimitReader(part, s.cfg.MaxMeshBytes+1))
	if err != nil {
		s.fail(c, bodyError(err))
		return
	}
	if n > s.cfg.MaxMeshBytes {
		abort(c, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the file is over %d bytes", s.cfg.MaxMeshBytes))
		return
	}
	rep, err := mesh.AnalyzeFile(rawFileName(part), tmp, n)
	if errors.Is(err, mesh.ErrNotSTL) {
		c.AbortWithStatusJSON(http.StatusUnprocessableEntity, gin.H{"error": apiError{Code: "not_stl", Message: err.Error(), Field: "file"}})
		return
	}
	if errors.Is(err, mesh.Err3MF) {
		c.AbortWithStatusJSON(http.StatusUnprocessableEntity, gin.H{"error": apiError{Code: "not_3mf", Message: err.Error(), Field: "file"}})
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"file": rawFileName(part), "report": rep})
}
