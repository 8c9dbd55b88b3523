#!/usr/bin/env bash
# The one test command. It checks formatting and vet, builds (once, then reuses) and
# starts the real servers the external suites need — MinIO and FerretDB, a
# MongoDB-wire server — on loopback with throwaway data dirs, runs `go test -race ./...`
# against them, and stops them. With CI=true a suite that skips for want of a server
# fails instead. Extra arguments go to `go test` (e.g. scripts/test.sh -run Blob).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

tools=${FAB_TOOLS_DIR:-$HOME/.cache/fabcommons/tools}
minio_version=v0.0.0-20260212201848-7aac2a2c5b7c # RELEASE.2026-02-12
mkdir -p "$tools"

say() { printf '\n== %s\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

say "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[ -z "$unformatted" ] || die "gofmt would change: $unformatted"
echo "ok"

say "go vet ./..."
go vet ./...
(cd scripts/ferretdb && go vet ./...)
echo "ok"

# --- tools from Debian the tests use: admesh (the mesh reference), PrusaSlicer (3MF made
# by a real tool), CuraEngine (agent slicing), Chromium (browser tests), curl and jq (the
# compose demo script) ------------------------------------------------------------------
missing=()
command -v admesh >/dev/null || missing+=(admesh)
# PrusaSlicer writes real 3MF files for catalog/mesh's 3MF tests; its CLI runs headless
# (about 0.1 s an export). Installing it took 11 s here, with its libraries.
command -v prusa-slicer >/dev/null || missing+=(prusa-slicer)
command -v CuraEngine >/dev/null || missing+=(cura-engine)
command -v chromium >/dev/null || missing+=(chromium)
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]} from Debian"
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	else
		echo "not root: install ${missing[*]} yourself; their tests skip (and fail under CI=true)"
	fi
fi

# Cura's printer definitions come in Debian's cura package, whose GUI we do not want:
# download the package and unpack only its resources.
cura_res=$tools/cura-resources
if [ ! -d "$cura_res/definitions" ] && [ "$(id -u)" = 0 ]; then
	say "unpacking Cura's printer definitions from Debian's cura package"
	cura_tmp=$(mktemp -d)
	(cd "$cura_tmp" && apt-get download cura >/dev/null 2>&1 && dpkg-deb -x cura_*.deb x) ||
		{ apt-get update -qq >/dev/null && (cd "$cura_tmp" && apt-get download cura >/dev/null 2>&1 && dpkg-deb -x cura_*.deb x); } ||
		die "could not download Debian's cura package for its definitions"
	rm -rf "$cura_res.tmp" && mkdir -p "$cura_res.tmp"
	cp -r "$cura_tmp/x/usr/share/cura/resources/definitions" "$cura_tmp/x/usr/share/cura/resources/extruders" "$cura_res.tmp/"
	mv "$cura_res.tmp" "$cura_res"
	rm -rf "$cura_tmp"
fi
[ -d "$cura_res/definitions" ] && export FAB_TEST_CURA_RESOURCES=$cura_res

# axe-core, the accessibility checker the browser test runs on every page it visits,
# from the npm registry, once.
axe_version=4.14.1
axe_dir=$tools/axe-core-$axe_version
if [ ! -f "$axe_dir/node_modules/axe-core/axe.min.js" ] && command -v npm >/dev/null; then
	say "installing axe-core $axe_version from npm"
	rm -rf "$axe_dir.tmp" && mkdir -p "$axe_dir.tmp"
	npm install --silent --no-audit --no-fund --prefix "$axe_dir.tmp" "axe-core@$axe_version" >/dev/null ||
		die "could not install axe-core from npm"
	rm -rf "$axe_dir" && mv "$axe_dir.tmp" "$axe_dir"
fi
[ -f "$axe_dir/node_modules/axe-core/axe.min.js" ] && export FAB_TEST_AXE=$axe_dir/node_modules/axe-core/axe.min.js

# --- test servers: built once into $tools, reused by later runs ---------------------
minio_bin=$tools/minio-$minio_version
ferret_hash=$(cat scripts/ferretdb/go.mod scripts/ferretdb/go.sum scripts/ferretdb/main.go scripts/ferretdb/build.sh | sha256sum | cut -c1-12)
ferret_bin=$tools/ferretdb-$ferret_hash

build_minio() {
	local gobin
	gobin=$(mktemp -d)
	GOBIN=$gobin go install "github.com/minio/minio@$minio_version" && mv "$gobin/minio" "$minio_bin"
	rm -rf "$gobin"
}
build_ferretdb() {
	scripts/ferretdb/build.sh "$ferret_bin"
}

pids=()
if [ ! -x "$minio_bin" ]; then
	say "building MinIO $minio_version (first run on this machine: about 3 minutes)"
	build_minio > "$tools/minio-build.log" 2>&1 &
	pids+=($!)
fi
if [ ! -x "$ferret_bin" ]; then
	say "building FerretDB v1.24.0 with its _id index fix (scripts/ferretdb/build.sh; first run: about 2 minutes)"
	build_ferretdb > "$tools/ferretdb-build.log" 2>&1 &
	pids+=($!)
fi
for p in "${pids[@]}"; do
	wait "$p" || { cat "$tools"/*-build.log >&2; die "building a test server failed (log above)"; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/fabcommons-test.XXXXXX")
servers=()
cleanup() {
	for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		if port_free "$p"; then echo "$p"; return; fi
	done
	die "no free port found on 127.0.0.1"
}
wait_port() { # name port pid
	for _ in $(seq 1 300); do
		if ! port_free "$2"; then return 0; fi
		kill -0 "$3" 2>/dev/null || { cat "$work/$1.log" >&2; die "$1 exited at start (log above)"; }
		sleep 0.1
	done
	die "$1 did not listen on 127.0.0.1:$2 within 30 s"
}

say "starting MinIO and FerretDB on loopback"
minio_port=$(free_port)
minio_console=$(free_port)
minio_key=fabtest
minio_secret=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
MINIO_ROOT_USER=$minio_key MINIO_ROOT_PASSWORD=$minio_secret MINIO_BROWSER=off \
	"$minio_bin" server --quiet --address "127.0.0.1:$minio_port" --console-address "127.0.0.1:$minio_console" \
	"$work/minio" > "$work/minio.log" 2>&1 &
servers+=($!)
wait_port minio "$minio_port" "${servers[-1]}"

ferret_port=$(free_port)
mkdir -p "$work/ferretdb"
"$ferret_bin" -listen "127.0.0.1:$ferret_port" -dir "$work/ferretdb" > "$work/ferretdb.log" 2>&1 &
servers+=($!)
wait_port ferretdb "$ferret_port" "${servers[-1]}"
echo "MinIO on 127.0.0.1:$minio_port, FerretDB on 127.0.0.1:$ferret_port"

export FAB_TEST_MINIO_ENDPOINT=127.0.0.1:$minio_port
export FAB_TEST_MINIO_ACCESS_KEY=$minio_key
export FAB_TEST_MINIO_SECRET_KEY=$minio_secret
# FerretDB's SQLite backend lets concurrent writers collide and back off (SQLite's busy
# handler sleeps up to 100 ms a try): a client with a few connections gets far more
# done than one with a hundred (the 2,000-job run: 84 s with 4; with 100, writes
# averaged 250 ms and it did not finish in 5 minutes).
export FAB_TEST_MONGODB_URI="mongodb://127.0.0.1:$ferret_port/?maxPoolSize=4"
# The fault tests stop and start servers of their own (same port, same data dir), so
# they get the binaries rather than a running server (storage/externaltest.StartMinIO).
export FAB_TEST_MINIO_BIN=$minio_bin
export FAB_TEST_FERRETDB_BIN=$ferret_bin

say "go test -race ./..."
log=${TMPDIR:-/tmp}/fabcommons-test-$(date +%Y%m%d-%H%M%S).log
go build -o "$work/testsummary" ./scripts/testsummary
set +e
go test -race -count=1 -timeout 30m -json "$@" ./... > "$log" 2>&1
test_status=$?
"$work/testsummary" < "$log"
summary_status=$?
set -e
echo "full go test output: $log"
if [ "$test_status" -ne 0 ] || [ "$summary_status" -ne 0 ]; then
	die "tests failed"
fi

# The fuzz targets, a few seconds each, on a full run (long runs belong to the work:
# go test -run '^$' -fuzz '^FuzzParseBOM$' -fuzztime 10m ./catalog). A failure leaves
# its input in the package's testdata/fuzz, where it stays as a regression case.
#
# They run on Go 1.27.3, which the go command takes from the module proxy (76 MB, about
# ten seconds, once per machine): Go 1.26's coordinator fails a target with a bare
# "context deadline exceeded" when -fuzztime ends in the moment its workers are being
# stopped, having found nothing (go.dev/issue/75804, fixed in 1.27; CI failed on it).
# Where that toolchain cannot be had, the machine's own Go runs them; either way, a
# bare deadline failure that wrote no input is run once more before it counts.
# Minimizing is cut to 200 runs: each input that reaches new code is minimized before
# fuzzing goes on, for up to a minute by default, and FuzzAnalyze spent its whole 3 s
# on its first (25 inputs tried; 26,000 with the cut).
fuzz_go() { GOTOOLCHAIN=go1.27.3 go "$@"; }
if [ "$#" -eq 0 ]; then
	say "fuzzing, 3 s a target"
	if ! GOTOOLCHAIN=go1.27.3 go version > /dev/null 2>&1; then
		echo "warning: Go 1.27.3 could not be fetched; fuzzing on $(go version | cut -d' ' -f3)"
		fuzz_go() { go "$@"; }
	fi
	for target in "FuzzAnalyze ./catalog/mesh" "FuzzAnalyze3MF ./catalog/mesh" "FuzzCleanPath ./catalog" "FuzzParseBOM ./catalog" "FuzzOKHImport ./catalog/okh" "FuzzOKHArchive ./catalog/okh" "FuzzForkRules ./catalog/license" \
		"FuzzUploadMeta ./web" "FuzzAgentRequest ./web" "FuzzHubAnswer ./fabrication/agentapi" "FuzzImport ./storage/archive" "FuzzActivity ./federation" "FuzzDesignObject ./federation"; do
		name=${target% *} pkg=${target#* }
		fuzz_once() { fuzz_go test -run '^$' -fuzz "^$name\$" -fuzztime 3s -fuzzminimizetime 200x "$pkg" > "$work/fuzz.log" 2>&1; }
		if ! fuzz_once; then
			if grep -q "context deadline exceeded" "$work/fuzz.log" && ! grep -q "Failing input written" "$work/fuzz.log"; then
				echo "$name: the coordinator's deadline race (go.dev/issue/75804), no input found; once more"
				fuzz_once || { cat "$work/fuzz.log"; die "fuzzing $name failed twice"; }
			else
				cat "$work/fuzz.log"
				die "fuzzing $name found a failure; its input is in $pkg/testdata/fuzz/$name"
			fi
		fi
		echo "ok $name"
	done
fi
