# spec/http_client_proxy.py DIR: a tiny forward proxy for the HTTP client's
# specs: absolute-form requests (plain http) and CONNECT tunnels (https).
# Any host under "proxied.invalid" means 127.0.0.1, so a request to such a
# name succeeds only when it went through this proxy: no resolver knows
# it.  Asked directly for /reset, it sends a head and part of a body,
# then resets the connection.  Writes its port to DIR/proxy_port once
# listening.
import http.client, os, select, socket, struct, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

def target(host):
    return "127.0.0.1" if host.endswith("proxied.invalid") else host

class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_CONNECT(self):
        host, _, port = self.path.rpartition(":")
        try:
            up = socket.create_connection((target(host), int(port)))
        except OSError:
            self.send_error(502)
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        me = self.connection
        try:
            while True:
                r, _, _ = select.select([me, up], [], [])
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (up if s is me else me).sendall(data)
        finally:
            up.close()
            self.close_connection = True

    def reset(self):
        # origin-form GET /reset: a head, part of the body, then a reset
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n"
                         b"\r\n" + b"x" * 1000)
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        # closed here, without the server's shutdown (a FIN) first
        os.close(self.connection.detach())
        self.close_connection = True

    def forward(self):
        if self.path == "/reset":
            return self.reset()
        u = urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("proxy-connection", "connection")}
        try:
            c = http.client.HTTPConnection(target(u.hostname), u.port or 80)
            c.request(self.command, (u.path or "/") +
                      ("?" + u.query if u.query else ""), body, headers)
            r = c.getresponse()
            data = r.read()
        except OSError:
            self.send_error(502)
            return
        self.send_response(r.status, r.reason)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection",
                                 "content-length"):
                self.send_header(k, v)
        self.send_header("Via", "1.1 luaio-test-proxy")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        c.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

def main():
    d = sys.argv[1]
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    srv.daemon_threads = True
    tmp = os.path.join(d, "proxy_port.tmp")
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, os.path.join(d, "proxy_port"))
    srv.serve_forever()

main()
