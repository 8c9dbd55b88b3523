package fabrication

import (
	"testing"
	"time"
)

// TestMachineTokens: an entry lives machineTokenTTL; a write of the machine drops it;
// a read that began before the write is not kept; a new token replaces the old one's
// entry; seen brings a cached offline machine back to idle.
func TestMachineTokens(t *testing.T) {
	t.Parallel()
	var c machineTokens
	m := Machine{ID: "m1", State: MachineOffline}
	before := time.Now()
	c.put("h1", m, before)
	if got, ok := c.get("h1"); !ok || got.ID != "m1" {
		t.Fatalf("fresh entry: got %v %v, want m1", got.ID, ok)
	}
	at := time.Now().UTC()
	c.seen("m1", at)
	if got, _ := c.get("h1"); got.State != MachineIdle || got.LastSeen == nil || !got.LastSeen.Equal(at) {
		t.Fatalf("after seen: got state %s, last seen %v; want idle at %v", got.State, got.LastSeen, at)
	}
	c.forget("m1")
	if _, ok := c.get("h1"); ok {
		t.Fatal("an entry outlived a write of its machine")
	}
	c.put("h1", m, before) // a read that began before the write
	if _, ok := c.get("h1"); ok {
		t.Fatal("a read from before a write was kept")
	}
	c.put("h2", m, time.Now()) // the rotated token, read after the write
	if _, ok := c.get("h2"); !ok {
		t.Fatal("a read after the write was not kept")
	}
	c.put("h3", m, time.Now())
	if _, ok := c.get("h2"); ok {
		t.Fatal("the machine's old token kept its entry after a new one was read")
	}
	c.put("h4", Machine{ID: "m2"}, time.Now().Add(-machineTokenTTL-time.Millisecond))
	if _, ok := c.get("h4"); ok {
		t.Fatal("an entry older than machineTokenTTL was served")
	}
}
