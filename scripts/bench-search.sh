#!/usr/bin/env bash
# Search, pages, start and idle at the size of a real commons (issue 17, goals 3 and 5):
# seeds an embedded store with 100,000 designs (forks up to 50 deep, 10,000 owners) and
# a lab with 100,000 jobs of history, starts a hub on it, and prints the time to serve,
# p50/p95 of search and pages, and the hub's idle memory.
# Usage: scripts/bench-search.sh [-designs 100000] [-owners 10000] [-jobs 100000] [-requests 200]
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./scripts/benchsearch "$@"
