package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/catalog/mesh"
	"github.com/fabcommons/fabcommons/catalog/picture"
)

// Thumbnails: the cards on the home and search pages show each design's first mesh,
// drawn on the hub (catalog/mesh.Thumbnail) the first time it is asked for and kept
// by the file's hash. Drawing streams the mesh, so a 100 MB file costs about half a
// second once; at most two are drawn at a time. A 3MF that carries its own thumbnail
// (the package's thumbnail relationship) shows that picture instead, decoded and
// encoded afresh (catalog/picture), never served as it came.
const thumbW, thumbH = 240, 180

var emptyThumb = func() []byte {
	var b bytes.Buffer
	png.Encode(&b, image.NewNRGBA(image.Rect(0, 0, 1, 1)))
	return b.Bytes()
}()

func (s *Server) thumbnail(c *gin.Context) {
	d, v, err := s.catalog.Design(c.Request.Context(), actorOf(c), c.Param("slug"))
	if err != nil {
		s.fail(c, err)
		return
	}
	var f *catalog.File
	if v != nil {
		for i := range v.Files {
			if v.Files[i].Mesh != nil {
				f = &v.Files[i]
				break
			}
		}
	}
	c.Header("Cache-Control", "private, no-cache") // revalidated by ETag: a design can be hidden
	if f == nil && v != nil && d.Remote() && s.fed != nil {
		key := "remote-thumb:" + d.Origin.Object + "#" + strconv.Itoa(v.Number)
		// Fetched in a context of its own: a client that leaves does not spoil it for others.
		fetchCtx := context.WithoutCancel(c.Request.Context())
		thumb, err := s.remoteThumbs.get(c.Request.Context(), key, func() (picture.Picture, error) { return s.remoteThumbnail(fetchCtx, d) })
		if err != nil {
			thumb.Data = emptyThumb
		}
		c.Data(http.StatusOK, "image/png", thumb.Data)
		return
	}
	if f == nil {
		c.Data(http.StatusOK, "image/png", emptyThumb)
		return
	}
	etag := `"thumb1-` + f.SHA256 + `"`
	c.Header("ETag", etag)
	if c.GetHeader("If-None-Match") == etag {
		c.Status(http.StatusNotModified)
		return
	}
	thumb, err := s.thumbs.get(c.Request.Context(), f.SHA256, func() (picture.Picture, error) { return s.drawThumbnail(c.Request.Context(), *f) })
	if err != nil {
		s.log.Warn("thumbnail not drawn", "design", d.Slug, "file", f.Path, "err", err)
		thumb.Data = emptyThumb
	}
	c.Data(http.StatusOK, "image/png", thumb.Data)
}

// drawThumbnail draws a card's thumbnail of mesh file f, as a PNG.
func (s *Server) drawThumbnail(ctx context.Context, f catalog.File) (picture.Picture, error) {
	rs := &blobSeeker{ctx: ctx, open: s.catalog.OpenBlob, key: f.SHA256, size: f.Size}
	defer rs.Close()
	var img image.Image
	var err error
	if mesh.Is3MF(f.Path) {
		img, err = thumbnailOf3MF(&seekerAt{rs: rs}, f)
	} else {
		img, err = mesh.Thumbnail(rs, f.Mesh.BBox, thumbW, thumbH)
	}
	if err != nil {
		return picture.Picture{}, err
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return picture.Picture{}, err
	}
	return picture.Picture{Data: b.Bytes(), ContentType: "image/png", Width: img.Bounds().Dx(), Height: img.Bounds().Dy()}, nil
}

// thumbnailOf3MF is the package's own thumbnail, fitted to the card, when it has one
// that decodes within picture's bounds; otherwise the build drawn as placed.
func thumbnailOf3MF(r io.ReaderAt, f catalog.File) (image.Image, error) {
	p, err := mesh.Open3MF(r, f.Size)
	if err != nil {
		return nil, err
	}
	if data, ok, err := p.EmbeddedThumbnail(); err == nil && ok {
		if img, err := thumbnailOfPicture(data); err == nil {
			return img, nil
		}
	}
	return p.Draw(f.Mesh.BBox, thumbW, thumbH), nil
}

// thumbnailOfPicture is a picture (a 3MF's own thumbnail, another hub's card) decoded
// and encoded afresh by catalog/picture, fitted to the card. Thumbnails are a few
// hundred pixels a side; a larger picture would cost seconds of scaling for a card,
// so one over maxThumbPixels is refused.
func thumbnailOfPicture(data []byte) (image.Image, error) {
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err != nil || cfg.Width*cfg.Height > maxThumbPixels {
		return nil, fmt.Errorf("not a picture of at most %d pixels to fit a card", maxThumbPixels)
	}
	pic, err := picture.Clean(bytes.NewReader(data), "thumbnail")
	if err != nil {
		return nil, err
	}
	img, _, err := image.Decode(bytes.NewReader(pic.Data))
	if err != nil {
		return nil, err
	}
	return fitted(img, thumbW, thumbH), nil
}

const maxThumbPixels = 4_000_000

// maxRemoteThumbBytes is the most of another hub's card thumbnail read, and
// remoteThumbTimeout how long it may take.
const (
	maxRemoteThumbBytes = 2 << 20
	remoteThumbTimeout  = 10 * time.Second
)

// remoteThumbnail is the card thumbnail of a remote design none of whose meshes has
// been fetched: its hub's own (<object>/thumbnail.png, the design object's icon),
// fetched through the federation's guard, decoded and encoded afresh. When its hub
// fails, it is the empty thumbnail, kept like a drawn one, so a hub that is down is
// not asked again at every card.
func (s *Server) remoteThumbnail(ctx context.Context, d catalog.Design) (picture.Picture, error) {
	empty := picture.Picture{Data: emptyThumb, ContentType: "image/png", Width: 1, Height: 1}
	ctx, cancel := context.WithTimeout(ctx, remoteThumbTimeout)
	defer cancel()
	body, err := s.fed.Fetch(ctx, d.Origin.Object+"/thumbnail.png", maxRemoteThumbBytes)
	if err != nil {
		s.log.Info("a remote design's thumbnail was not fetched", "design", d.Slug, "err", err)
		return empty, nil
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, maxRemoteThumbBytes+1))
	if err != nil || len(data) > maxRemoteThumbBytes {
		s.log.Info("a remote design's thumbnail was not read whole", "design", d.Slug, "bytes", len(data), "err", err)
		return empty, nil
	}
	img, err := thumbnailOfPicture(data)
	if err != nil {
		s.log.Info("a remote design's thumbnail is not a picture", "design", d.Slug, "err", err)
		return empty, nil
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return picture.Picture{}, err
	}
	return picture.Picture{Data: b.Bytes(), ContentType: "image/png", Width: thumbW, Height: thumbH}, nil
}

// fitted scales img to fit w×h, centred on a clear background, each output pixel the
// average of the source pixels it covers (a box filter: enough for a card).
func fitted(img image.Image, w, h int) *image.NRGBA {
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	src := img.Bounds()
	sw, sh := src.Dx(), src.Dy()
	scale := min(float64(w)/float64(sw), float64(h)/float64(sh))
	dw, dh := max(1, int(float64(sw)*scale)), max(1, int(float64(sh)*scale))
	ox, oy := (w-dw)/2, (h-dh)/2
	for y := range dh {
		y0, y1 := src.Min.Y+y*sh/dh, src.Min.Y+max((y+1)*sh/dh, y*sh/dh+1)
		for x := range dw {
			x0, x1 := src.Min.X+x*sw/dw, src.Min.X+max((x+1)*sw/dw, x*sw/dw+1)
			var r, g, b, a, n uint64
			for sy := y0; sy < y1; sy++ {
				for sx := x0; sx < x1; sx++ {
					c := color.NRGBA64Model.Convert(img.At(sx, sy)).(color.NRGBA64)
					r, g, b, a, n = r+uint64(c.R), g+uint64(c.G), b+uint64(c.B), a+uint64(c.A), n+1
				}
			}
			out.SetNRGBA(ox+x, oy+y, color.NRGBA{R: uint8(r / n >> 8), G: uint8(g / n >> 8), B: uint8(b / n >> 8), A: uint8(a / n >> 8)})
		}
	}
	return out
}

// seekerAt reads a blobSeeker at offsets, as a zip reader wants.
type seekerAt struct {
	mu sync.Mutex
	rs io.ReadSeeker
}

func (s *seekerAt) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.rs.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(s.rs, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF // ReaderAt's word for a read cut short by the end
	}
	return n, err
}
