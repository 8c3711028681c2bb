#!/bin/sh
# spec/pg_server.sh start|stop|restart|kill DIR: a PostgreSQL 15 server for
# the specs, on 127.0.0.1 (a free port, retried if another process took it
# first) and on a Unix socket in DIR.  DIR/port holds the port, DIR/env
# what the specs read.  Without the server binaries `start` writes
# DIR/skip and succeeds, so the specs report themselves skipped.  As root
# the server runs as the postgres user.
set -e
cmd=$1 dir=$2
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac # -k needs an absolute path
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
as() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + $$ % 20000))
}
ctl() { as "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" "$@"; }
start() {
  port=$(cat "$dir/port")
  ctl -w -t 30 -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60" start >/dev/null
}
env_file() { # what the specs and benchmarks read
  printf 'PGPORT=%s\nPGSOCKET=%s\nPGBIN=%s\n' "$(cat "$dir/port")" "$dir" "$bin" >"$dir/env"
}
case $cmd in
start)
  rm -rf "$dir"
  mkdir -p "$dir"
  if [ ! -x "$bin/initdb" ]; then
    echo "no PostgreSQL server in $bin" >"$dir/skip"
    exit 0
  fi
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  as "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
  for attempt in 1 2 3 4 5 6 7 8; do
    free_port >"$dir/port"
    if start; then
      env_file
      exit 0
    fi
    tail -3 "$dir/log" >&2 || true
  done
  echo "PostgreSQL did not start" >&2
  exit 1
  ;;
stop)
  [ -f "$dir/data/postmaster.pid" ] && ctl -m immediate stop >/dev/null || true
  ;;
kill) # the server dies: every connection is cut
  ctl -m immediate stop >/dev/null
  ;;
restart) # after kill: the same port and socket
  start
  ;;
esac
