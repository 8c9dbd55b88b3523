package storage

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestValidKeyAndPrefix(t *testing.T) {
	t.Parallel()
	good := strings.Repeat("0a", 32)
	for _, tc := range []struct {
		s             string
		key, isPrefix bool
	}{
		{good, true, true},
		{"", false, true},
		{"ab", false, true},
		{strings.ToUpper(good), false, false},
		{good + "0", false, false},
		{"../x", false, false},
		{"g" + good[1:], false, false},
	} {
		if got := ValidKey(tc.s); got != tc.key {
			t.Errorf("ValidKey(%q): got %v, want %v", tc.s, got, tc.key)
		}
		if got := ValidPrefix(tc.s); got != tc.isPrefix {
			t.Errorf("ValidPrefix(%q): got %v, want %v", tc.s, got, tc.isPrefix)
		}
	}
}

func TestDigestReader(t *testing.T) {
	t.Parallel()
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" // sha256("abc")
	d := NewDigestReader(iotest.OneByteReader(strings.NewReader("abc")), 3)
	if b, err := io.ReadAll(d); err != nil || string(b) != "abc" {
		t.Fatalf("got %q, %v", b, err)
	}
	if d.Key() != abc || d.Size() != 3 || d.Check(abc) != nil || d.Err() != nil {
		t.Fatalf("got key %s size %d", d.Key(), d.Size())
	}
	if err := d.Check(strings.Repeat("0", 64)); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Check with the wrong digest: got %v", err)
	}
	d = NewDigestReader(strings.NewReader("abcd"), 3)
	if _, err := io.ReadAll(d); !errors.Is(err, ErrTooLarge) || !errors.Is(d.Err(), ErrTooLarge) {
		t.Fatalf("over the limit: got %v / %v, want ErrTooLarge", err, d.Err())
	}
	d = NewDigestReader(iotest.ErrReader(io.ErrUnexpectedEOF), 10)
	io.ReadAll(d)
	if !errors.Is(d.Err(), io.ErrUnexpectedEOF) {
		t.Fatalf("a failing source: got Err %v, want it kept", d.Err())
	}
}
