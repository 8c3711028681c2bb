#!/bin/sh
# spec/http_client_fixture.sh start|stop DIR: the peer of the HTTP client
# specs.  start makes a test CA and three server certificates with openssl
# (good: localhost and 127.0.0.1; expired; for another host name), starts
# spec/http_test_server.py in the background and waits until it has
# written DIR/ports (every server bound to a port the OS chose).
set -e
cmd=$1 dir=$2
here=$(cd "$(dirname "$0")" && pwd)
case $cmd in
start)
  [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  ossl() { openssl "$@" >/dev/null 2>&1; }
  ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem \
    -days 2 -subj /CN=luaio-test-ca
  cert() { # name days san
    ossl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" \
      -subj /CN=luaio-test
    printf 'subjectAltName=%s\n' "$3" > "$1.ext"
    ossl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
      -out "$1.pem" -days "$2" -extfile "$1.ext"
  }
  cert good 2 "DNS:localhost,IP:127.0.0.1"
  cert expired -1 "DNS:localhost,IP:127.0.0.1"
  cert wronghost 2 "DNS:wrong.example"
  python3 "$here/http_test_server.py" "$dir" >"$dir/log" 2>&1 &
  echo $! > "$dir/pid"
  i=0
  while [ ! -f "$dir/ports" ]; do
    kill -0 "$(cat "$dir/pid")" || { cat "$dir/log"; exit 1; }
    i=$((i + 1)); [ $i -lt 300 ] || { echo "no ports file"; exit 1; }
    sleep 0.1
  done
  cat "$dir/ports"; echo
  ;;
stop)
  [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
  rm -f "$dir/pid"
  ;;
esac
