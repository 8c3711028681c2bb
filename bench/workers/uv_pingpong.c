/*
** uv_pingpong.c: the floor for a round trip between two threads' loops:
** two libuv loops, one uv_async_t each, bouncing a counter.
**   cc -O2 uv_pingpong.c -luv -lpthread && ./a.out [rounds]
*/

#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

static uv_loop_t loops[2];
static uv_async_t asyncs[2];
static volatile long count;
static long rounds;

static void on_a(uv_async_t *a) { /* main: the answer came */
  if (++count >= rounds) {
    uv_close((uv_handle_t *)&asyncs[0], NULL);
    uv_async_send(&asyncs[1]); /* tells the peer to stop */
    return;
  }
  uv_async_send(&asyncs[1]);
  (void)a;
}

static void on_b(uv_async_t *a) { /* peer: answer */
  if (count >= rounds) {
    uv_close((uv_handle_t *)&asyncs[1], NULL);
    return;
  }
  uv_async_send(&asyncs[0]);
  (void)a;
}

static void peer(void *arg) {
  (void)arg;
  uv_run(&loops[1], UV_RUN_DEFAULT);
}

int main(int argc, char **argv) {
  uv_thread_t t;
  uint64_t t0, t1;
  rounds = argc > 1 ? atol(argv[1]) : 20000;
  uv_loop_init(&loops[0]);
  uv_loop_init(&loops[1]);
  uv_async_init(&loops[0], &asyncs[0], on_a);
  uv_async_init(&loops[1], &asyncs[1], on_b);
  uv_thread_create(&t, peer, NULL);
  t0 = uv_hrtime();
  uv_async_send(&asyncs[1]);
  uv_run(&loops[0], UV_RUN_DEFAULT);
  t1 = uv_hrtime();
  uv_thread_join(&t);
  printf("c uv_async round trip: %.1f us\n", (double)(t1 - t0) / 1e3 / rounds);
  return 0;
}
