#!/bin/sh
# bench/workers/run.sh [luaio]: luaio's workers beside a C uv_async
# ping-pong and Node's worker_threads; writes bench/results/workers.md.
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$(dirname "$here")")
luaio=${1:-$root/build/luaio}
out=$root/bench/results/workers.md
tmp=$(mktemp -d)
cc -O2 -o "$tmp/uv_pingpong" "$here/uv_pingpong.c" -luv -lpthread
{
  echo "# Workers ($(date -u +%Y-%m-%d), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
  echo
  echo '```'
  for i in 1 2 3; do "$tmp/uv_pingpong" 20000; done
  "$luaio" "$here/workers.lua"
  if command -v node >/dev/null; then node "$here/node_workers.js"; fi
  echo '```'
} | tee "$out"
rm -rf "$tmp"
