package account

import (
	"strings"
	"testing"
	"time"
)

func TestPasswordHash(t *testing.T) {
	t.Parallel()
	p := Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}
	h, err := HashPassword("correct horse battery", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("got %q, want a PHC argon2id string", h)
	}
	h2, _ := HashPassword("correct horse battery", p)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	for _, tc := range []struct {
		password string
		want     bool
	}{
		{"correct horse battery", true},
		{"correct horse batterY", false},
		{"", false},
	} {
		got, err := CheckPassword(tc.password, h)
		if err != nil || got != tc.want {
			t.Errorf("CheckPassword(%q): got %v, %v; want %v", tc.password, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "$argon2id$", "$bcrypt$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=18$m=64,t=1,p=1$AA$AA", "$argon2id$v=19$m=64,t=1,p=1$!!$AA"} {
		if _, err := CheckPassword("x", bad); err == nil {
			t.Errorf("CheckPassword with hash %q: got nil error", bad)
		}
	}
}

func TestHandleRule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		handle string
		ok     bool
	}{
		{"ada", true}, {"a1", true}, {"fab-lab-42", true}, {strings.Repeat("a", 32), true},
		{"a", false}, {strings.Repeat("a", 33), false}, {"-ada", false}, {"ada-", false},
		{"ada--lovelace", false}, {"ada_l", false}, {"Ada", false}, {"ada lovelace", false}, {"ådа", false},
	} {
		if got := handleRE.MatchString(tc.handle); got != tc.ok {
			t.Errorf("%q: got %v, want %v", tc.handle, got, tc.ok)
		}
	}
}

func TestThrottle(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := NewThrottle(3, time.Minute, 100)
	for i := range 3 {
		if w := th.Wait("ip", now); w != 0 {
			t.Fatalf("attempt %d: got wait %v, want 0", i, w)
		}
		th.Fail("ip", now)
	}
	if w := th.Wait("ip", now.Add(10*time.Second)); w != 50*time.Second {
		t.Fatalf("after 3 failures: got wait %v, want 50s", w)
	}
	if w := th.Wait("other", now); w != 0 {
		t.Fatalf("another key: got wait %v, want 0", w)
	}
	if w := th.Wait("ip", now.Add(time.Minute)); w != 0 {
		t.Fatalf("after the window: got wait %v, want 0", w)
	}
	th.Fail("ip", now.Add(time.Minute))
	if w := th.Wait("ip", now.Add(time.Minute)); w != 0 {
		t.Fatalf("a new window starts at one failure: got wait %v", w)
	}
	th.Reset("ip")
	if len(th.entries) != 0 {
		t.Fatalf("after Reset: %d entries", len(th.entries))
	}
}

func TestThrottleMemoryIsBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := NewThrottle(3, time.Minute, 50)
	for i := range 1000 {
		th.Fail(strings.Repeat("k", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), now)
	}
	if n := len(th.entries); n > 50 {
		t.Fatalf("got %d entries, want at most 50", n)
	}
}
