package mesh

import (
	"syscall"
	"unsafe"
)

// hugePages asks the kernel to back a large table with 2 MiB pages where it can
// (MADV_HUGEPAGE; Go's heap does not by default): lookups land at random places in
// tables of tens of megabytes, and with 4 KiB pages nearly every one also misses the
// TLB. Advice only: an error changes nothing but speed.
func hugePages[T any](s []T) {
	if len(s) == 0 {
		return
	}
	n := uintptr(len(s)) * unsafe.Sizeof(s[0])
	if n < 4<<20 {
		return
	}
	base := unsafe.Pointer(&s[0])
	start := uintptr(base)
	const page = 4096
	first := (start + page - 1) &^ (page - 1)
	last := (start + n) &^ (page - 1)
	if last <= first {
		return
	}
	syscall.Madvise(unsafe.Slice((*byte)(unsafe.Add(base, first-start)), last-first), syscall.MADV_HUGEPAGE)
}
