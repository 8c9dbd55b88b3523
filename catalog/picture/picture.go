// Package picture takes in the images people upload — pictures that travel with a
// design, photos of real makes — and gives back a clean copy to serve. An uploaded
// image is never served as it came: it is decoded within bounds and encoded afresh,
// which drops whatever else the file carried (scripts in an SVG are not accepted at
// all; EXIF blocks, with a phone's GPS position, do not survive).
package picture

import (
	"bytes"
	"fmt"
	"image"
	_ "image/gif" // decoders, registered for image.Decode
	"image/jpeg"
	"image/png"
	"io"
	"path"
	"strings"

	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp"

	"github.com/fabcommons/fabcommons/storage"
)

// Limits on what is taken in. A 50-megapixel photo decodes to 75 to 200 MB of pixels,
// so the pixel bound, not the byte bound, is what keeps memory in check.
const (
	MaxBytes  = 32 << 20
	MaxPixels = 50_000_000
	MaxSide   = 16_000
)

// Types the hub accepts, by the format name image.Decode reports.
var types = map[string]bool{"png": true, "jpeg": true, "gif": true, "webp": true}

// Picture is a re-encoded image, ready to store and serve.
type Picture struct {
	Data          []byte
	ContentType   string // image/png or image/jpeg
	Width, Height int
}

// Measure reads only as much of a picture as says its format and size, and checks
// them against the limits Clean applies, so a file that will not show is refused when
// it is uploaded rather than when someone looks at it.
func Measure(r io.Reader, size int64, field string) (width, height int, err error) {
	if size > MaxBytes {
		return 0, 0, storage.Invalid(field, fmt.Sprintf("a picture may be at most %d MB", MaxBytes>>20))
	}
	cfg, format, err := image.DecodeConfig(r)
	if err != nil {
		return 0, 0, storage.Invalid(field, "not a PNG, JPEG, GIF or WebP image")
	}
	return cfg.Width, cfg.Height, within(cfg, format, field)
}

func within(cfg image.Config, format, field string) error {
	if !types[format] {
		return storage.Invalid(field, fmt.Sprintf("%s images are not taken; use PNG or JPEG", format))
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > MaxSide || cfg.Height > MaxSide ||
		int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return storage.Invalid(field, fmt.Sprintf("a %d×%d image is too large; at most %d pixels a side and %d megapixels", cfg.Width, cfg.Height, MaxSide, MaxPixels/1_000_000))
	}
	return nil
}

// Clean reads at most MaxBytes from r, decodes a PNG, JPEG, GIF (its first frame) or
// WebP and encodes it again, at full size. Bad input is a storage.Invalid error
// naming field; too many bytes is ErrTooLarge.
func Clean(r io.Reader, field string) (Picture, error) { return Fit(r, field, 0) }

// Fit is Clean, scaled down (never up) so that neither side is over side pixels;
// side 0 keeps the size. Photographs (JPEG, opaque WebP) come out as JPEG (quality
// 88), the rest (drawings, screenshots, anything with transparency) as PNG.
func Fit(r io.Reader, field string, side int) (Picture, error) {
	raw, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return Picture{}, fmt.Errorf("read image: %w", err)
	}
	if len(raw) > MaxBytes {
		return Picture{}, fmt.Errorf("%w: an image may be at most %d MB", storage.ErrTooLarge, MaxBytes>>20)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return Picture{}, storage.Invalid(field, "not a PNG, JPEG, GIF or WebP image")
	}
	if err := within(cfg, format, field); err != nil {
		return Picture{}, err
	}
	img, _, err := image.Decode(bytes.NewReader(raw))
	if err != nil {
		return Picture{}, storage.Invalid(field, "the image is damaged: "+err.Error())
	}
	if w, h := fitted(cfg.Width, cfg.Height, side); w != cfg.Width || h != cfg.Height {
		small := image.NewNRGBA(image.Rect(0, 0, w, h))
		draw.CatmullRom.Scale(small, small.Bounds(), img, img.Bounds(), draw.Src, nil)
		img = small
	}
	var out bytes.Buffer
	b := img.Bounds()
	p := Picture{ContentType: "image/png", Width: b.Dx(), Height: b.Dy()}
	if o, ok := img.(interface{ Opaque() bool }); format == "jpeg" || format == "webp" && ok && o.Opaque() {
		p.ContentType = "image/jpeg"
		err = jpeg.Encode(&out, img, &jpeg.Options{Quality: 88})
	} else {
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&out, img)
	}
	if err != nil {
		return Picture{}, fmt.Errorf("encode image: %w", err)
	}
	p.Data = out.Bytes()
	return p, nil
}

// fitted scales w×h down to fit in side×side, keeping the aspect ratio.
func fitted(w, h, side int) (int, int) {
	if side <= 0 || w <= side && h <= side {
		return w, h
	}
	if w >= h {
		return side, max(1, h*side/w)
	}
	return max(1, w*side/h), side
}

// IsImage says whether a file name is one Clean may take, by its extension.
func IsImage(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".png", ".jpg", ".jpeg", ".gif", ".webp":
		return true
	}
	return false
}
