#!/usr/bin/env bash
# Soak test (not in CI): a hub on the embedded store with 200 fabagent processes on sim
# printers, orders and uploads arriving, agents SIGKILLed at random and the hub
# restarted (SIGKILL and SIGTERM in turn), for 30 minutes by default. Prints jobs
# printed twice, jobs lost and uploads damaged (each must be 0) and the hub's RSS.
# Usage: scripts/soak.sh [-duration 30m] [-agents 200] [-hub-restart-every 2m] [-agent-kill-every 10s]
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./scripts/soak "$@"
