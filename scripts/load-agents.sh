#!/usr/bin/env bash
# Load test of the agent protocol on one hub with embedded storage: N simulated agents
# over loopback HTTP while jobs arrive at a fixed rate. Prints cycles per second,
# enqueue-to-receipt p50/p99, double assignments, hub memory, and the CPU the hub and the
# load generator each used.
# Usage: scripts/load-agents.sh [-agents 1000] [-rate 1000] [-duration 20s]
#        scripts/load-agents.sh -rate 0 -backlog 1000   (the most the hub sustains)
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./scripts/loadagents "$@"
