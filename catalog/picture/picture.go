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

// Limits on what is taken in. A 24-megapixel photo decodes to about 96 MB of pixels,
// so the pixel bound, not the byte bound, is what keeps memory in check.
const (
	MaxBytes  = 16 << 20
	MaxPixels = 24_000_000
	MaxSide   = 12_000
)

// Types the hub accepts, by the format name image.Decode reports.
var types = map[string]bool{"png": true, "jpeg": true, "gif": true, "webp": true}

// Picture is a re-encoded image, ready to store and serve.
type Picture struct {
	Data          []byte
	ContentType   string // image/png or image/jpeg
	Width, Height int
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
	if !types[format] {
		return Picture{}, storage.Invalid(field, fmt.Sprintf("%s images are not taken; use PNG or JPEG", format))
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > MaxSide || cfg.Height > MaxSide ||
		int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return Picture{}, storage.Invalid(field, fmt.Sprintf("a %d×%d image is too large; at most %d pixels a side and %d megapixels", cfg.Width, cfg.Height, MaxSide, MaxPixels/1_000_000))
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
