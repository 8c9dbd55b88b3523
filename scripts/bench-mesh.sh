#!/usr/bin/env bash
# Mesh analysis speed and memory against admesh on two generated 100 MB binary STLs:
# a closed torus (2 million facets, 1 million shared vertices) and a triangle soup
# (2 million facets, no shared vertex). Each tool runs as a fresh process under GNU
# time, RUNS times per file (admesh on the soup once, stopped after SOUP_LIMIT seconds,
# 300 unless set: on this soup it takes longer, and is then reported as over it), and the
# script prints the range of wall seconds, CPU seconds (user + sys) and peak RSS of
# `fabhub mesh check` and of `admesh`, then ours as a fraction of admesh's (best
# against best). Timings are noisy on a shared machine: the load average is printed
# before and after. The Go benchmark (in-process, torus) comes first.
#   RUNS=5 SOUP_LIMIT=1200 scripts/bench-mesh.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v admesh >/dev/null || { echo "bench-mesh: install admesh first (apt-get install admesh)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-mesh: install GNU time first (apt-get install time)" >&2; exit 1; }
runs=${RUNS:-3}
soup_limit=${SOUP_LIMIT:-300}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "== go benchmark"
go test -run '^$' -bench Analyze2M -benchtime 5x ./catalog/mesh/ | grep -E '^Benchmark'

echo "== fresh processes"
go build -o "$work/fabhub" ./cmd/fabhub
go test -run '^TestWriteBench(File|Soup)$' ./catalog/mesh/ -args \
	-benchfile "$work/torus.stl" -benchsoup "$work/soup.stl" > /dev/null

# measure TOOL FILE N [LIMIT]: N lines of "wall cpu peak-KiB"; a run stopped at LIMIT
# seconds prints "stopped".
measure() {
	local cmd=("$work/fabhub" mesh check "$2")
	[ "$1" = admesh ] && cmd=(admesh "$2")
	[ -n "${4:-}" ] && cmd=(timeout "$4" "${cmd[@]}")
	for _ in $(seq "$3"); do
		{ /usr/bin/time -f '%e %U %S %M' "${cmd[@]}" > /dev/null || true; } 2>&1 | tail -1 |
			awk -v limit="${4:-0}" 'limit > 0 && $1 >= limit - 0.5 {print "stopped"; next} {printf "%.2f %.2f %d\n", $1, $2 + $3, $4}'
	done
}

# range_of: the smallest and largest of the numbers on stdin, as "lo-hi".
range_of() { sort -g | sed -n '1p;$p' | paste -sd- | sed 's/-$//'; }

for shape in torus soup; do
	file="$work/$shape.stl"
	size_mib=$(awk -v s="$(stat -c %s "$file")" 'BEGIN{printf "%.0f", s/1048576}')
	echo "-- $shape ($size_mib MiB)"
	declare -A best=()
	for tool in fabhub admesh; do
		n=$runs limit=""
		[ "$tool:$shape" = admesh:soup ] && n=1 limit=$soup_limit
		lines=$(measure "$tool" "$file" "$n" "$limit")
		if [ "$lines" = stopped ]; then
			printf '%-7s over %s s: stopped (its exact vertex matching on a soup)\n' "$tool" "$limit"
			continue
		fi
		wall=$(cut -d' ' -f1 <<< "$lines" | range_of)
		cpu=$(cut -d' ' -f2 <<< "$lines" | range_of)
		peak=$(cut -d' ' -f3 <<< "$lines" | awk '{printf "%.0f\n", $1/1024}' | range_of)
		printf '%-7s wall %-11s s   cpu %-11s s   peak %-9s MiB   (%d runs)\n' "$tool" "$wall" "$cpu" "$peak" "$n"
		best[$tool]=$(sort -g <<< "$lines" | head -1)
		best[$tool-cpu]=$(cut -d' ' -f2 <<< "$lines" | sort -g | head -1)
		best[$tool-peak]=$(cut -d' ' -f3 <<< "$lines" | sort -g | head -1)
	done
	[ -n "${best[admesh]:-}" ] && awk -v fw="${best[fabhub]%% *}" -v aw="${best[admesh]%% *}" -v fc="${best[fabhub-cpu]}" -v ac="${best[admesh-cpu]}" \
		-v fp="${best[fabhub-peak]}" -v ap="${best[admesh-peak]}" -v size="$size_mib" \
		'BEGIN{printf "ours/admesh (best of each): wall %.2fx  cpu %.2fx  peak %.2fx (ours %.2fx the file size)\n", fw/aw, fc/ac, fp/ap, fp/1024/size}'
	unset best
done
echo "== load average $(cut -d' ' -f1-3 /proc/loadavg)"
