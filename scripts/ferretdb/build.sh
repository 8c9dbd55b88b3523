#!/usr/bin/env bash
# Builds the MongoDB-wire test server: FerretDB v1.24.0 (SQLite backend) from
# scripts/ferretdb, with one fix applied to its source.
#
# The fix: FerretDB's SQLite backend creates each collection's unique _id index on the
# expression  _ferretdb_sjson->"_id"  but looks documents up by _id with
# _ferretdb_sjson->'$._id'. SQLite uses an expression index only for the same
# expression, so every lookup, replace and delete by _id read the whole table
# (EXPLAIN QUERY PLAN: "SCAN", not "SEARCH ... USING INDEX"): a 2,000-job run spent
# its time parsing every job's JSON for each write. The two expressions name the same
# value; the patched one matches the index. Upstream has the same class of bug filed
# for PostgreSQL (FerretDB/FerretDB#4646); v1 is no longer developed.
#
# usage: scripts/ferretdb/build.sh OUTPUT
set -euo pipefail
out=${1:?usage: build.sh OUTPUT}
cd "$(dirname "$0")"
src=$(go mod download -json github.com/FerretDB/FerretDB | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || { echo "build.sh: FerretDB source not found in the module cache" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
cp -r "$src" "$tmp/ferretdb"
chmod -R u+w "$tmp/ferretdb"
meta=$tmp/ferretdb/internal/backends/sqlite/metadata/metadata.go
sed -i "s|IDColumn = DefaultColumn + \"->'\\\$._id'\"|IDColumn = DefaultColumn + \"->'_id'\"|" "$meta"
grep -q "IDColumn = DefaultColumn + \"->'_id'\"" "$meta" || { echo "build.sh: the _id index fix no longer applies to $meta" >&2; exit 1; }
cp go.mod go.sum "$tmp/"
go mod edit -modfile="$tmp/go.mod" -replace "github.com/FerretDB/FerretDB=$tmp/ferretdb"
go build -modfile="$tmp/go.mod" -o "$out.tmp" .
mv "$out.tmp" "$out"
