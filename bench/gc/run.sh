#!/bin/sh
# bench/gc/run.sh LUAIO [RUNS]: the collector's modes under the luaio
# command, on plain-Lua workloads (binary trees, fib) and task workloads
# (bench/luaio/spawn_await.lua, sleep_gather.lua).  Each cell is the
# median of RUNS runs of the workload's CPU figure (its RESULT line: CPU
# seconds, or CPU ns per task for the task workloads).  Lower is better.
set -eu
luaio=$1 runs=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cell() { # interp setup script args...: the median CPU figure
  interp=$1 setup=$2; shift 2
  for _ in $(seq "$runs"); do
    "$interp" -e "$setup" "$@" | awk '/^RESULT/ {print ($3 != "" ? $3 : $2)}'
  done | median
}
modes='collectgarbage("incremental",200,100)
collectgarbage("generational",20,100)
collectgarbage("generational",40,100)
collectgarbage("incremental",150,100)'
printf '| setting | binary trees (s) | fib 32 (s) | spawn_await (ns/task) | sleep_gather (ns/sleep) |\n'
printf '| --- | --- | --- | --- | --- |\n'
echo "$modes" | while read -r m; do
  printf '| `%s` | %s | %s | %s | %s |\n' "$m" \
    "$(cell "$luaio" "$m" "$here/binary_trees.lua" 15)" \
    "$(cell "$luaio" "$m" "$here/fib.lua" 32)" \
    "$(cell "$luaio" "$m" "$here/../luaio/spawn_await.lua" 200000)" \
    "$(cell "$luaio" "$m" "$here/../luaio/sleep_gather.lua" 100000)"
done
printf '| stock `lua5.4` (generational, its default) | %s | %s | | |\n' \
  "$(cell lua5.4 "" "$here/binary_trees.lua" 15)" \
  "$(cell lua5.4 "" "$here/fib.lua" 32)"
