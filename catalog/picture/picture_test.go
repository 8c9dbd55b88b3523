package picture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/fabcommons/fabcommons/storage"
)

func sample() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for y := 0; y < 30; y++ {
		for x := 0; x < 40; x++ {
			img.Set(x, y, color.NRGBA{uint8(x * 6), uint8(y * 8), 90, 255})
		}
	}
	return img
}

func TestCleanReencodes(t *testing.T) {
	var pngIn, jpgIn, gifIn bytes.Buffer
	png.Encode(&pngIn, sample())
	jpeg.Encode(&jpgIn, sample(), nil)
	gif.Encode(&gifIn, sample(), nil)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{{"png", pngIn.Bytes(), "image/png"}, {"jpeg", jpgIn.Bytes(), "image/jpeg"}, {"gif", gifIn.Bytes(), "image/png"}} {
		p, err := Clean(bytes.NewReader(tc.in), "photo")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if p.ContentType != tc.want || p.Width != 40 || p.Height != 30 {
			t.Errorf("%s: got %s %dx%d", tc.name, p.ContentType, p.Width, p.Height)
		}
		if _, format, err := image.Decode(bytes.NewReader(p.Data)); err != nil || "image/"+format != tc.want {
			t.Errorf("%s: output does not decode as %s: %v %s", tc.name, tc.want, err, format)
		}
	}
}

// A JPEG from a phone carries an EXIF block, often with where it was taken; the clean
// copy must not.
func TestCleanDropsEXIF(t *testing.T) {
	var jpg bytes.Buffer
	jpeg.Encode(&jpg, sample(), nil)
	exif := append([]byte("Exif\x00\x00"), []byte("GPS 52.5200N 13.4050E secret-location")...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(exif)+2))
	in := append(append(append([]byte{}, jpg.Bytes()[:2]...), append(seg, exif...)...), jpg.Bytes()[2:]...)
	p, err := Clean(bytes.NewReader(in), "photo")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.Data, []byte("secret-location")) || bytes.Contains(p.Data, []byte("Exif")) {
		t.Fatal("the EXIF block survived re-encoding")
	}
}

// pngHeader is a PNG signature and an IHDR chunk claiming w×h, with nothing after it:
// what a decompression bomb looks like before its pixels.
func pngHeader(w, h uint32) []byte {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.WriteString("IHDR")
	b.Write(ihdr)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte("IHDR"), ihdr...)))
	return b.Bytes()
}

func TestCleanRefuses(t *testing.T) {
	var good bytes.Buffer
	png.Encode(&good, sample())
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, storage.ErrInvalid},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), storage.ErrInvalid},
		{"html", []byte("<html><script>alert(1)</script>"), storage.ErrInvalid},
		{"bomb", pngHeader(60000, 60000), storage.ErrInvalid},
		{"wide", pngHeader(MaxSide+1, 10), storage.ErrInvalid},
		{"truncated", good.Bytes()[:len(good.Bytes())/2], storage.ErrInvalid},
		{"huge", append(good.Bytes(), make([]byte, MaxBytes)...), storage.ErrTooLarge},
	} {
		_, err := Clean(bytes.NewReader(tc.in), "photo")
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		if err != nil && len(err.Error()) < 10 {
			t.Errorf("%s: message %q says too little", tc.name, err)
		}
	}
}

func TestIsImage(t *testing.T) {
	for name, want := range map[string]bool{"a.PNG": true, "dir.x/b.jpeg": true, "c.svg": false, "d": false, "e.jpg.stl": false} {
		if IsImage(name) != want {
			t.Errorf("IsImage(%q) = %v", name, !want)
		}
	}
}

func TestFitScalesDown(t *testing.T) {
	var in bytes.Buffer
	jpeg.Encode(&in, sample(), nil)
	for _, tc := range []struct{ side, w, h int }{{0, 40, 30}, {100, 40, 30}, {20, 20, 15}, {4, 4, 3}} {
		p, err := Fit(bytes.NewReader(in.Bytes()), "photo", tc.side)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, err := image.DecodeConfig(bytes.NewReader(p.Data))
		if err != nil || cfg.Width != tc.w || cfg.Height != tc.h || p.Width != tc.w || p.Height != tc.h {
			t.Errorf("Fit(%d): got %dx%d (said %dx%d), want %dx%d (%v)", tc.side, cfg.Width, cfg.Height, p.Width, p.Height, tc.w, tc.h, err)
		}
	}
	if w, h := fitted(3000, 10, 300); w != 300 || h != 1 {
		t.Errorf("a thin strip fitted to %dx%d", w, h)
	}
}
