#!/usr/bin/env bash
# vendor-three.sh [VERSION]: refresh web/assets/vendor/three from the npm package
# "three": the core build, STLLoader, 3MFLoader (with what it imports: the fflate build
# three ships, and BufferGeometryUtils) and OrbitControls, and the licenses (fflate's from
# its own npm package, at the version three ships). The addons import the bare specifier
# 'three', which a browser resolves only through an import map (an inline script the
# page's CSP does not allow), so it is rewritten to the file; so are their relative
# imports, as the vendored files sit in one folder.
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
for f in examples/jsm/loaders/STLLoader.js examples/jsm/loaders/3MFLoader.js examples/jsm/controls/OrbitControls.js \
	examples/jsm/utils/BufferGeometryUtils.js examples/jsm/libs/fflate.module.js; do
	sed -e "s#from 'three';#from './three.module.js';#" -e "s#from '\.\./libs/#from './#" -e "s#from '\.\./utils/#from './#" \
		"$p/$f" >"$dst/$(basename "$f")"
done
fflate=$(sed -n 's/^version \([0-9.]*\)$/\1/p' "$p/examples/jsm/libs/fflate.module.js")
(cd "$tmp" && npm pack --silent "fflate@$fflate" >/dev/null && mkdir fflate && tar xzf "fflate-$fflate.tgz" -C fflate)
cp "$tmp/fflate/package/LICENSE" "$dst/LICENSE-fflate"
printf 'three@%s\nfflate@%s (as three@%s ships it in examples/jsm/libs)\n' "$version" "$fflate" "$version" >"$dst/VERSION"
ls -l "$dst"
