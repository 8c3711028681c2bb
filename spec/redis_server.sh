#!/bin/sh
# spec/redis_server.sh start|restart|stop DIR: a redis-server for the specs,
# listening on 127.0.0.1 at a port it publishes in DIR/port and on the Unix
# socket DIR/r.sock, never Debian's own service or port.  start picks a
# random port and tries another when that one is taken; restart starts it
# again on the port of DIR/port; stop kills it by its pid file.
cmd=$1 dir=$2

stop() {
  [ -f "$dir/redis.pid" ] || return 0
  pid=$(cat "$dir/redis.pid")
  kill "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  rm -f "$dir/redis.pid"
}

# Start on port $1; 0 once it answers on our socket, 1 if it did not start.
try_port() {
  rm -f "$dir/redis.pid" "$dir/r.sock" "$dir/redis.log"
  redis-server --port "$1" --bind 127.0.0.1 --unixsocket "$dir/r.sock" \
    --save '' --appendonly no --daemonize yes --pidfile "$dir/redis.pid" \
    --dir "$dir" --logfile "$dir/redis.log" || return 1
  i=0
  while [ $i -lt 100 ]; do
    if redis-cli -s "$dir/r.sock" ping 2>/dev/null | grep -q PONG; then
      echo "$1" >"$dir/port"
      return 0
    fi
    # Taken by someone else: the server logged it and exited.
    if grep -q "Address already in use\|Could not create server" \
        "$dir/redis.log" 2>/dev/null; then
      stop
      return 1
    fi
    sleep 0.1
    i=$((i + 1))
  done
  stop
  return 1
}

case $cmd in
start)
  mkdir -p "$dir"
  stop
  for try in 1 2 3 4 5 6 7 8 9 10; do
    r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    port=$((20000 + r % 40000))
    try_port "$port" && exit 0
  done
  echo "redis_server.sh: could not start redis-server" >&2
  exit 1
  ;;
restart)
  for try in 1 2 3 4 5 6 7 8 9 10; do
    try_port "$(cat "$dir/port")" && exit 0
    sleep 0.2
  done
  exit 1
  ;;
stop)
  stop
  ;;
esac
