#!/usr/bin/env bash
# Design uploads through the API, as whole processes on loopback: a 200 MB closed binary
# STL (a torus) posted as a new design, its mesh analysed in the same request, first
# into the local blob store, then into MinIO. Prints MB/s, the hub's CPU time and RSS
# before, at its peak during and after each of RUNS uploads (3) sent one at a time, then
# the peak RSS over eight uploads sent at once (scripts/benchupload). MinIO: the one FAB_TEST_MINIO_ENDPOINT,
# FAB_TEST_MINIO_ACCESS_KEY and FAB_TEST_MINIO_SECRET_KEY name, else one started here
# from FAB_TEST_MINIO_BIN (or `minio` on PATH), else none. Timings are noisy on a shared
# machine: the load average is printed before and after. Needs about 2 GiB of disk.
#   MB=200 RUNS=3 scripts/bench-upload.sh [-cpuprofile cpu.out -memprofile allocs.out]
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
minio_pid=""
trap '[ -n "$minio_pid" ] && kill "$minio_pid"; rm -rf "$work"' EXIT
echo "== $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
go build -o "$work/fabhub" ./cmd/fabhub
go build -o "$work/benchupload" ./scripts/benchupload

s3=""
bucket="benchupload-$(date +%s)"
if [ -n "${FAB_TEST_MINIO_ENDPOINT:-}" ]; then
	s3="s3://${FAB_TEST_MINIO_ACCESS_KEY}:${FAB_TEST_MINIO_SECRET_KEY}@${FAB_TEST_MINIO_ENDPOINT}/$bucket?tls=false"
else
	bin=${FAB_TEST_MINIO_BIN:-$(command -v minio || true)}
	if [ -n "$bin" ]; then
		port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
		MINIO_ROOT_USER=bench MINIO_ROOT_PASSWORD=bench-secret "$bin" server --quiet \
			--address "127.0.0.1:$port" --console-address 127.0.0.1:0 "$work/minio" > "$work/minio.log" 2>&1 &
		minio_pid=$!
		for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/minio/health/ready" > /dev/null && break; sleep 0.2; done
		s3="s3://bench:bench-secret@127.0.0.1:$port/$bucket?tls=false"
	else
		echo "bench-upload: no MinIO (set FAB_TEST_MINIO_ENDPOINT or FAB_TEST_MINIO_BIN): measuring the local store only" >&2
	fi
fi
"$work/benchupload" -hub "$work/fabhub" -mb "${MB:-200}" -runs "${RUNS:-3}" ${s3:+-s3 "$s3"} "$@"
echo "== load average $(cut -d' ' -f1-3 /proc/loadavg)"
