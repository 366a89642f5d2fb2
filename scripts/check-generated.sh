#!/usr/bin/env bash
# Regenerates the protos into a scratch copy and fails if the committed
# proto/gen/go differs, so generated code never drifts from its sources.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$root/proto/." "$tmp/"
rm -rf "$tmp/gen"
(cd "$tmp" && PATH="$root/bin:$PATH" buf lint && PATH="$root/bin:$PATH" buf generate)
if ! diff -r "$root/proto/gen" "$tmp/gen" >/dev/null; then
  echo "proto/gen/go is stale: run 'make generate' and commit the result." >&2
  diff -r "$root/proto/gen" "$tmp/gen" | head -20 >&2
  exit 1
fi
echo "generated code is current"
