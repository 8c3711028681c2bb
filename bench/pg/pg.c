/* bench/pg/pg.c DSN N: the C libpq floor for bench/pg/run.
   fetchval: a prepared `select $1::int`, N times in a row (PQexecPrepared);
   many: 10,000 inserts in one pipeline (non-blocking, one sync).
   Prints "name seconds-per-operation" lines. */
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check(PGconn *c, PGresult *r) {
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK &&
      st != PGRES_PIPELINE_SYNC) {
    fprintf(stderr, "%s", PQerrorMessage(c));
    exit(1);
  }
}

int main(int argc, char **argv) {
  PGconn *c = PQconnectdb(argc > 1 ? argv[1] : "");
  int n = argc > 2 ? atoi(argv[2]) : 10000, i, batch = 10000, got = 0;
  char buf[32];
  const char *vals[2];
  double t0;
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "%s", PQerrorMessage(c));
    return 1;
  }
  check(c, PQprepare(c, "q", "select $1::int", 1, NULL));
  t0 = now();
  for (i = 0; i < n; i++) {
    PGresult *r;
    snprintf(buf, sizeof buf, "%d", i);
    vals[0] = buf;
    r = PQexecPrepared(c, "q", 1, vals, NULL, NULL, 0);
    check(c, r);
    if (atoi(PQgetvalue(r, 0, 0)) != i) return 1;
    PQclear(r);
  }
  printf("fetchval %.9f\n", (now() - t0) / n);

  PQclear(PQexec(c, "create temp table b (a int, t text)"));
  check(c, PQprepare(c, "ins", "insert into b values ($1, $2)", 2, NULL));
  t0 = now();
  PQsetnonblocking(c, 1);
  PQenterPipelineMode(c);
  for (i = 0; i < batch; i++) {
    snprintf(buf, sizeof buf, "%d", i);
    vals[0] = buf;
    vals[1] = "some text";
    PQsendQueryPrepared(c, "ins", 2, vals, NULL, NULL, 0);
  }
  PQpipelineSync(c);
  for (;;) {
    struct pollfd p = {PQsocket(c), POLLIN, 0};
    int fl = PQflush(c), done = 0;
    if (fl == 1) p.events |= POLLOUT;
    poll(&p, 1, -1);
    PQconsumeInput(c);
    while (!PQisBusy(c)) {
      PGresult *r = PQgetResult(c);
      if (r == NULL) continue;
      check(c, r);
      if (PQresultStatus(r) == PGRES_PIPELINE_SYNC)
        done = 1;
      else
        got++;
      PQclear(r);
      if (done) break;
    }
    if (done) break;
  }
  PQexitPipelineMode(c);
  if (got != batch) return 1;
  printf("many %.9f\n", now() - t0);
  PQfinish(c);
  return 0;
}
