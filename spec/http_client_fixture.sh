#!/bin/sh
# spec/http_client_fixture.sh start|stop DIR: the peer of the HTTP client
# specs.  start makes a test CA and three server certificates with openssl
# (good: localhost and 127.0.0.1; expired; for another host name), starts
# spec/http_test_server.py in the background and waits until it has
# written DIR/ports (every server bound to a port the OS chose); then a
# forward proxy (DIR/proxy_port) and, when nginx is installed, an HTTP/2
# server over TLS with the good certificate (DIR/h2/port).
set -e
cmd=$1 dir=$2
here=$(cd "$(dirname "$0")" && pwd)
case $cmd in
start)
  for f in pid proxy_pid h2/nginx.pid; do
    [ -f "$dir/$f" ] && kill "$(cat "$dir/$f")" 2>/dev/null || true
  done
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
  # A forward proxy (spec/http_client_proxy.py) for proxy and trust_env.
  python3 "$here/http_client_proxy.py" "$dir" >"$dir/proxy_log" 2>&1 &
  echo $! > "$dir/proxy_pid"
  i=0
  while [ ! -f "$dir/proxy_port" ]; do
    kill -0 "$(cat "$dir/proxy_pid")" || { cat "$dir/proxy_log"; exit 1; }
    i=$((i + 1)); [ $i -lt 300 ] || { echo "no proxy_port file"; exit 1; }
    sleep 0.1
  done
  # HTTP/2 over TLS: nginx when Debian's nginx(-light) is installed.  nginx
  # cannot report a port it chose, so a free port is picked and the start
  # retried when another process took it in between.
  if command -v nginx >/dev/null 2>&1; then
    mkdir -p h2/tmp
    try=0
    while [ $try -lt 5 ]; do
      try=$((try + 1))
      port=$(python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      cat > h2/nginx.conf <<EOC
worker_processes 1;
pid $dir/h2/nginx.pid;
error_log $dir/h2/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $dir/h2/tmp/body;
  proxy_temp_path $dir/h2/tmp/proxy;
  fastcgi_temp_path $dir/h2/tmp/fastcgi;
  uwsgi_temp_path $dir/h2/tmp/uwsgi;
  scgi_temp_path $dir/h2/tmp/scgi;
  server {
    listen 127.0.0.1:$port ssl http2;
    ssl_certificate $dir/good.pem;
    ssl_certificate_key $dir/good.key;
    location / {
      default_type text/plain;
      return 200 "\$server_protocol connection \$connection\n";
    }
  }
}
EOC
      if nginx -e "$dir/h2/error.log" -p "$dir/h2" -c "$dir/h2/nginx.conf" \
          2>>"$dir/h2/start.log"; then
        echo "$port" > h2/port
        break
      fi
    done
  fi
  cat "$dir/ports"; echo
  ;;
stop)
  for f in pid proxy_pid h2/nginx.pid; do
    [ -f "$dir/$f" ] && kill "$(cat "$dir/$f")" 2>/dev/null || true
    rm -f "$dir/$f"
  done
  ;;
esac
