/* bench/redis/roundtrip.c PORT N [MODE]: the same as roundtrip.lua with hiredis
   called directly: sequential round trips, and 50 commands in flight at
   a time (redisAppendCommand, then 50 replies): the floor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <hiredis/hiredis.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  int port = atoi(argv[1]), n = argc > 2 ? atoi(argv[2]) : 20000, i, k;
  redisContext *c = redisConnect("127.0.0.1", port);
  redisReply *r;
  double t0;
  const char *mode = argc > 3 ? argv[3] : "";
  if (c == NULL || c->err) return 1;
  if (strcmp(mode, "pipelined") != 0) {
    t0 = now();
    for (i = 0; i < n / 2; i++) {
      freeReplyObject(redisCommand(c, "SET bench:k %d", i));
      freeReplyObject(redisCommand(c, "GET bench:k"));
    }
    printf("sequential %.3e\n", (now() - t0) / n);
  }
  if (strcmp(mode, "sequential") == 0) {
    redisFree(c);
    return 0;
  }
  t0 = now();
  for (i = 0; i < n / 50; i++) {
    for (k = 0; k < 25; k++) {
      redisAppendCommand(c, "SET bench:p%d %d", k, i);
      redisAppendCommand(c, "GET bench:p%d", k);
    }
    for (k = 0; k < 50; k++) {
      redisGetReply(c, (void **)&r);
      freeReplyObject(r);
    }
  }
  printf("pipelined %.3e\n", (now() - t0) / (n / 50 * 50));
  redisFree(c);
  return 0;
}
