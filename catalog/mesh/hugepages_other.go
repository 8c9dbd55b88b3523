//go:build !linux

package mesh

func hugePages[T any](s []T) {}
