#!/bin/sh
# bench/http_hello/nginx.sh: the hello world from nginx + Lua
# (libnginx-mod-http-lua's content_by_lua_block), one nginx process
# (master_process off) so its CPU is the server's; prints the port, serves
# until killed.  Its files live in a temporary folder.
set -e
dir=$(mktemp -d /tmp/luaio-nginx.XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mods=/usr/lib/nginx/modules
cat >"$dir/nginx.conf" <<CONF
load_module $mods/ndk_http_module.so;
load_module $mods/ngx_http_lua_module.so;
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$port;
    location / {
      default_type text/plain;
      content_by_lua_block { ngx.print("Hello, World!") }
    }
  }
}
CONF
echo "$port"
exec nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log"
