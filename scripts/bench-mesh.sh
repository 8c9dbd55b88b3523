#!/usr/bin/env bash
# Mesh analysis speed and memory against admesh on a generated 2-million-facet
# (100 MB) binary STL. Prints the Go benchmark (in-process: MB/s, admesh's time, our
# time as a fraction of it) and then one fresh `fabhub mesh check` process and one
# admesh process timed by GNU time (wall seconds and peak RSS).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v admesh >/dev/null || { echo "bench-mesh: install admesh first (apt-get install admesh)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-mesh: install GNU time first (apt-get install time)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== go benchmark"
go test -run '^$' -bench Analyze2M -benchtime 5x ./catalog/mesh/ | grep -E '^Benchmark'

echo "== fresh processes on the same file"
go build -o "$work/fabhub" ./cmd/fabhub
go test -run '^TestWriteBenchFile$' ./catalog/mesh/ -args -benchfile "$work/torus-2m.stl" > /dev/null
size_kib=$(( $(stat -c %s "$work/torus-2m.stl") / 1024 ))
for tool in fabhub admesh; do
	cmd=("$work/fabhub" mesh check "$work/torus-2m.stl")
	[ "$tool" = admesh ] && cmd=(admesh "$work/torus-2m.stl")
	best=""
	for _ in 1 2 3; do
		line=$( { /usr/bin/time -f '%e %M' "${cmd[@]}" > /dev/null; } 2>&1 | tail -1)
		if [ -z "$best" ] || awk -v a="${line% *}" -v b="${best% *}" 'BEGIN{exit !(a<b)}'; then best=$line; fi
	done
	printf '%-7s %6s s   peak %7s KiB = %.2f x file size (%s KiB)\n' "$tool" "${best% *}" "${best#* }" \
		"$(awk -v m="${best#* }" -v s="$size_kib" 'BEGIN{print m/s}')" "$size_kib"
done
