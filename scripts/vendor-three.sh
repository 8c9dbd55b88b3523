#!/usr/bin/env bash
# vendor-three.sh [VERSION]: refresh web/assets/vendor/three from the npm package
# "three": the core build, STLLoader and OrbitControls, and the license. The addons
# import the bare specifier 'three', which a browser resolves only through an import map
# (an inline script the page's CSP does not allow), so it is rewritten to the file.
set -euo pipefail
version=${1:-0.187.0}
cd "$(dirname "$0")/.."
dst=web/assets/vendor/three
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "three@$version" >/dev/null && tar xzf "three-$version.tgz")
p=$tmp/package
rm -rf "$dst" && mkdir -p "$dst"
cp "$p/build/three.module.js" "$p/build/three.core.js" "$p/LICENSE" "$dst/"
for f in examples/jsm/loaders/STLLoader.js examples/jsm/controls/OrbitControls.js; do
	sed "s#from 'three';#from './three.module.js';#" "$p/$f" >"$dst/$(basename "$f")"
done
echo "three@$version" >"$dst/VERSION"
ls -l "$dst"
