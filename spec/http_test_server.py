#!/usr/bin/python3
"""The HTTP peer of spec/http_client_spec.lua (Python's standard library).

http_test_server.py DIR: serves HTTP on 127.0.0.1 and, with the certificates
that spec/http_client_fixture.sh made in DIR, HTTPS three times (a good
certificate, an expired one, one for another host name).  Every server binds
port 0; once all listen, the ports go to DIR/ports (written to a temporary
name, then renamed), so a reader never sees half of it.
"""

import gzip
import http.server
import json
import os
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

seen = {}  # X-Key header -> client (host, port)s: connection reuse
seen_lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body=b"", ctype="text/plain", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts), True
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n), False

    def chunked(self, chunks, headers=()):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        for c in chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
        self.wfile.write(b"0\r\n\r\n")

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        parts = url.path.strip("/").split("/")
        key = self.headers.get("X-Key")
        if key:
            with seen_lock:
                seen.setdefault(key, set()).add(self.client_address)
        body, was_chunked = self.read_body()
        head = parts[0]
        if head == "echo":
            out = {
                "method": self.command, "path": url.path, "query": url.query,
                "args": q, "body": body.decode("latin-1"),
                "chunked": was_chunked,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
            self.send(200, json.dumps(out).encode(), "application/json")
        elif head == "status":
            code = int(parts[1])
            nobody = code in (204, 304) or code < 200
            self.send(code, b"" if nobody else b"status %d" % code)
        elif head == "redirect":  # /redirect/N: N hops, then /echo
            n = int(parts[1])
            code = int(q.get("code", "302"))
            to = "/echo" if n <= 1 else "/redirect/%d?code=%d" % (n - 1, code)
            self.send(code, b"", headers=[("Location", to)])
        elif head == "redirect-to":
            self.send(int(q.get("code", "302")), b"",
                      headers=[("Location", q["url"])])
        elif head == "slow":
            time.sleep(float(q.get("delay", "1")))
            self.send(200, b"slow")
        elif head == "stall":  # the head, a little body, then nothing
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(float(q.get("delay", "5")))
        elif head == "bytes":
            self.send(200, b"b" * int(q["n"]), "application/octet-stream")
        elif head == "stream":  # size bytes by a generator, chunked
            size, chunk = int(q["size"]), int(q.get("chunk", "65536"))
            block = b"s" * chunk

            def gen():
                left = size
                while left > 0:
                    yield block[:min(left, chunk)]
                    left -= chunk
            self.chunked(gen())
        elif head == "gzip":
            data = b"hello gzip " * 1000
            self.send(200, gzip.compress(data), "text/plain",
                      [("Content-Encoding", "gzip")])
        elif head == "bomb":  # 100 MiB of zeros in about 100 KiB
            self.send(200, gzip.compress(b"\0" * (100 << 20), 9),
                      "application/octet-stream",
                      [("Content-Encoding", "gzip")])
        elif head == "repeat":
            self.send(200, b"x", headers=[("X-Multi", "a"), ("X-Multi", "b")])
        elif head == "conns":  # connections seen for ?key=
            with seen_lock:
                n = len(seen.get(q.get("key"), ()))
            self.send(200, str(n).encode())
        elif head == "garbage":
            self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
            self.close_connection = True
        elif head == "close":  # the head promises more than comes
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"short")
            self.close_connection = True
        else:
            self.send(404, b"not found")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def https(d, name):
    srv = Server(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, name + ".pem"),
                        os.path.join(d, name + ".key"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    return srv


def main():
    d = sys.argv[1]
    servers = {"http": Server(("127.0.0.1", 0), Handler)}
    for name in ("good", "expired", "wronghost"):
        servers[name] = https(d, name)
    for s in servers.values():
        threading.Thread(target=s.serve_forever, daemon=True).start()
    ports = {k: s.server_address[1] for k, s in servers.items()}
    tmp = os.path.join(d, "ports.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(ports))
    os.rename(tmp, os.path.join(d, "ports"))
    threading.Event().wait()


if __name__ == "__main__":
    main()
