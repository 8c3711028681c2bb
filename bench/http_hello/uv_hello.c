/* bench/http_hello: the C floor, a libuv server that answers every
   request of a keep-alive connection with a fixed response (it counts
   "\r\n\r\n" to find request ends; GETs without bodies only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static const char resp[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 13\r\n\r\nHello, World!";

typedef struct conn {
  uv_tcp_t tcp;
  int match; /* how much of "\r\n\r\n" was seen */
  char buf[65536];
} conn;

static void on_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  conn *c = (conn *)h;
  (void)n;
  *b = uv_buf_init(c->buf, sizeof c->buf);
}

static void on_close(uv_handle_t *h) { free(h); }

static void on_write(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  conn *c = (conn *)s;
  int count = 0;
  ssize_t i;
  if (n < 0) {
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  for (i = 0; i < n; i++) {
    char ch = b->base[i];
    if (ch == "\r\n\r\n"[c->match]) {
      if (++c->match == 4) {
        count++;
        c->match = 0;
      }
    } else
      c->match = ch == '\r';
  }
  while (count-- > 0) {
    uv_buf_t out = uv_buf_init((char *)resp, sizeof resp - 1);
    if (uv_try_write(s, &out, 1) != (int)out.len) {
      uv_write_t *w = malloc(sizeof *w);
      uv_write(w, s, &out, 1, on_write);
    }
  }
}

static void on_conn(uv_stream_t *srv, int status) {
  conn *c = calloc(1, sizeof *c);
  (void)status;
  uv_tcp_init(srv->loop, &c->tcp);
  if (uv_accept(srv, (uv_stream_t *)&c->tcp) == 0)
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  else
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

int main(void) {
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t srv;
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_tcp_init(loop, &srv);
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_bind(&srv, (struct sockaddr *)&a, 0);
  uv_listen((uv_stream_t *)&srv, 511, on_conn);
  uv_tcp_getsockname(&srv, (struct sockaddr *)&ss, &len);
  printf("%d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
