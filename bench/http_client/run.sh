#!/bin/sh
# bench/http_client/run.sh BUILD [N [OTHER_LUAIO]]: client CPU per request,
# 50 in flight, small responses from a luaio server in another process:
# luaio's aio.http beside a plain C libcurl multi loop (the floor), Node's
# http.Agent, aiohttp (on asyncio's loop and on uvloop) and httpx, in
# alternating rounds.  OTHER_LUAIO, another luaio binary (say, a build
# before a change), runs the same client in each round.  The Python
# clients make N/4 requests (httpx: N/10), which is enough for their cost.
# Prints one line per runtime: wall ns/request, CPU ns/request.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd) n=${2:-20000} other=${3:-}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
"$build/luaio" "$here/server.lua" "$tmp/port" & srv=$!
while [ ! -f "$tmp/port" ]; do sleep 0.05; done
url="http://127.0.0.1:$(cat "$tmp/port")/"
cc -O2 -o "$tmp/curl_multi" "$here/../c/curl_multi.c" -lcurl
has() { "$py" -c "import $1" 2>/dev/null; }
for rep in 1 2 3; do
  echo "c-libcurl-multi $("$tmp/curl_multi" "$url" "$n" 50)"
  echo "luaio-aio.http  $("$build/luaio" "$here/luaio_client.lua" "$url" "$n" 50)"
  if [ -n "$other" ]; then
    echo "luaio-other     $("$other" "$here/luaio_client.lua" "$url" "$n" 50)"
  fi
  if command -v node >/dev/null; then
    echo "node-http.Agent $(node "$here/node_agent.js" "$url" "$n" 50)"
  fi
  if has aiohttp; then
    echo "aiohttp         $("$py" "$here/aiohttp_client.py" "$url" $((n / 4)) 50)"
    if has uvloop; then
      echo "aiohttp+uvloop  $("$py" "$here/aiohttp_client.py" "$url" $((n / 4)) 50 uvloop)"
    fi
  fi
  if has httpx; then
    echo "httpx           $("$py" "$here/httpx_client.py" "$url" $((n / 10)) 50)"
  fi
done
