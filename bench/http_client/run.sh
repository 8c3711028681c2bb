#!/bin/sh
# bench/http_client/run.sh BUILD [N]: client CPU per request, 50 in flight,
# small responses from a luaio server in another process: luaio's aio.http
# beside a plain C libcurl multi loop (the floor) and Node's http.Agent.
# Prints one line per runtime: wall ns/request, CPU ns/request.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd) n=${2:-20000}
tmp=$(mktemp -d)
trap 'kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
"$build/luaio" "$here/server.lua" "$tmp/port" & srv=$!
while [ ! -f "$tmp/port" ]; do sleep 0.05; done
url="http://127.0.0.1:$(cat "$tmp/port")/"
cc -O2 -o "$tmp/curl_multi" "$here/../c/curl_multi.c" -lcurl
for rep in 1 2 3; do
  echo "c-libcurl-multi $("$tmp/curl_multi" "$url" "$n" 50)"
  echo "luaio-aio.http  $("$build/luaio" "$here/luaio_client.lua" "$url" "$n" 50)"
  if command -v node >/dev/null; then
    echo "node-http.Agent $(node "$here/node_agent.js" "$url" "$n" 50)"
  fi
done
