/* sleep_gather floor: N libuv timers of 1 ms started at once; the time until
   the last one fired, per timer.  Prints "RESULT <wall ns> <CPU ns>". */
#include <stdlib.h>
#include <uv.h>
#include "bench.h"

static int left;

static void on_timer(uv_timer_t *t) {
  (void)t;
  left--;
}

static void round_(uv_loop_t *loop, int n) {
  uv_timer_t *ts = malloc(sizeof *ts * n);
  int i;
  left = n;
  for (i = 0; i < n; i++) {
    uv_timer_init(loop, &ts[i]);
    uv_timer_start(&ts[i], on_timer, 1, 0);
  }
  while (left > 0)
    uv_run(loop, UV_RUN_ONCE);
  for (i = 0; i < n; i++)
    uv_close((uv_handle_t *)&ts[i], NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  free(ts);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 100000;
  uv_loop_t *loop = uv_default_loop();
  double w0, c0;
  round_(loop, getenv("BENCH_WARM") ? n : 2000);
  w0 = wall_ns();
  c0 = cpu_ns();
  round_(loop, n);
  /* the closes are not part of a sleep: only the time to the last fire */
  printf("RESULT %.1f %.1f\n", (wall_ns() - w0) / n, (cpu_ns() - c0) / n);
  return 0;
}
