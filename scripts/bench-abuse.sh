#!/usr/bin/env bash
# The hub under adversarial uploads, with its default settings: eight 256 MiB STL files
# in which every vertex is distinct sent at once to the anonymous mesh check, and eight
# as design uploads, while /healthz is asked every 50 ms. Prints the hub's peak RSS,
# the /healthz latency and what each request got (scripts/benchabuse). Takes a few
# minutes and about 4 GiB of memory on the machine; sends traffic to loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/fabhub" ./cmd/fabhub
go run ./scripts/benchabuse -hub "$work/fabhub" "$@"
