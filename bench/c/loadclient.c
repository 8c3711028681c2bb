/* The tcp_echo load client: C connections to 127.0.0.1:PORT, each sending
   SIZE bytes and reading them back, R times in a row, all connections at
   once.  Each connection makes one round trip first, and the clock starts
   when all of them have (so accepting and setting up a connection is not
   timed).  Prints "RESULT <round trips per second> <seconds>".
   usage: loadclient PORT [C=100] [R=1000] [SIZE=64] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "bench.h"

typedef struct conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  int left, got;
  char rbuf[65536];
} conn;

static int nconn, rounds, size, connected, warmed, finished;
static char *payload;
static double t0;
static uv_loop_t *loop;

static void send_one(conn *c);

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf) {
  conn *c = h->data;
  (void)sz;
  *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  conn *c = s->data;
  (void)buf;
  if (n < 0) {
    fprintf(stderr, "loadclient: read: %s\n", uv_strerror((int)n));
    exit(1);
  }
  c->got += (int)n;
  if (c->got < size) return;
  if (c->got > size) {
    fprintf(stderr, "loadclient: more bytes than sent\n");
    exit(1);
  }
  c->got = 0;
  if (c->left == rounds + 1) { /* the warm-up round trip */
    c->left--;
    if (++warmed == nconn) {
      int i;
      t0 = wall_ns();
      for (i = 0; i < nconn; i++)
        send_one(&((conn *)loop->data)[i]);
    }
    return;
  }
  if (--c->left > 0)
    send_one(c);
  else {
    uv_read_stop(s);
    uv_close((uv_handle_t *)s, NULL);
    finished++;
  }
}

static void on_write(uv_write_t *req, int status) {
  (void)req;
  if (status < 0) {
    fprintf(stderr, "loadclient: write: %s\n", uv_strerror(status));
    exit(1);
  }
}

static void send_one(conn *c) {
  uv_buf_t b = uv_buf_init(payload, (unsigned)size);
  uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
}

static void on_connect(uv_connect_t *req, int status) {
  conn *c = req->data;
  if (status < 0) {
    fprintf(stderr, "loadclient: connect: %s\n", uv_strerror(status));
    exit(1);
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  connected++;
  send_one(c); /* the warm-up round trip */
}

int main(int argc, char **argv) {
  struct sockaddr_in addr;
  conn *conns;
  int i, port = argc > 1 ? atoi(argv[1]) : 7000;
  double dt;
  nconn = argc > 2 ? atoi(argv[2]) : 100;
  rounds = argc > 3 ? atoi(argv[3]) : 1000;
  size = argc > 4 ? atoi(argv[4]) : 64;
  payload = malloc(size);
  memset(payload, 'x', size);
  loop = uv_default_loop();
  conns = calloc(nconn, sizeof *conns);
  loop->data = conns;
  uv_ip4_addr("127.0.0.1", port, &addr);
  for (i = 0; i < nconn; i++) {
    conn *c = &conns[i];
    c->left = rounds + 1;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&addr,
                   on_connect);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  dt = (wall_ns() - t0) / 1e9;
  if (finished != nconn) {
    fprintf(stderr, "loadclient: %d of %d connections finished\n", finished,
            nconn);
    return 1;
  }
  printf("RESULT %.0f %.4f\n", (double)nconn * rounds / dt, dt);
  return 0;
}
