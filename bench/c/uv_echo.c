/* tcp_echo floor: a libuv echo server.  Writes back whatever it reads.
   usage: uv_echo PORT; prints "READY" once it listens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct {
  uv_write_t req;
  uv_buf_t buf;
  char data[];
} wreq;

static void on_close(uv_handle_t *h) { free(h); }

/* One read buffer for the whole (single-threaded) server; what is read is
   copied into a write request of its exact size. */
static char rbuf[65536];

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)h;
  (void)size;
  *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_write(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  (void)status;
  free(w);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  if (n > 0) {
    wreq *w = malloc(sizeof *w + (size_t)n);
    memcpy(w->data, rbuf, (size_t)n);
    w->buf = uv_buf_init(w->data, (unsigned)n);
    uv_write(&w->req, s, &w->buf, 1, on_write);
    return;
  }
  if (n < 0) uv_close((uv_handle_t *)s, on_close);
}

static void on_conn(uv_stream_t *server, int status) {
  uv_tcp_t *c;
  if (status < 0) return;
  c = malloc(sizeof *c);
  uv_tcp_init(server->loop, c);
  if (uv_accept(server, (uv_stream_t *)c) == 0) {
    uv_tcp_nodelay(c, 1);
    uv_read_start((uv_stream_t *)c, on_alloc, on_read);
  } else
    uv_close((uv_handle_t *)c, on_close);
}

int main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  int r;
  uv_ip4_addr("127.0.0.1", argc > 1 ? atoi(argv[1]) : 7000, &addr);
  uv_tcp_init(loop, &server);
  uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if ((r = uv_listen((uv_stream_t *)&server, 1024, on_conn)) != 0) {
    fprintf(stderr, "listen: %s\n", uv_strerror(r));
    return 1;
  }
  printf("READY\n");
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
