/* bench/sqlite/point.c N [ROWS]: the same as point.lua with SQLite
   called directly (synchronous, one thread): the floor. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sqlite3.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20000,
      rows = argc > 2 ? atoi(argv[2]) : 100000;
  sqlite3 *db;
  sqlite3_stmt *st;
  double t0;
  int i;
  sqlite3_open(":memory:", &db);
  sqlite3_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", 0, 0, 0);
  sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?, ?)", -1, &st, 0);
  for (i = 1; i <= 1000; i++) {
    char v[32];
    snprintf(v, sizeof v, "value%d", i);
    sqlite3_bind_int(st, 1, i);
    sqlite3_bind_text(st, 2, v, -1, SQLITE_TRANSIENT);
    sqlite3_step(st);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db, "SELECT v FROM t WHERE id = ?", -1, &st, 0);
  t0 = now();
  for (i = 0; i < n; i++) {
    sqlite3_bind_int(st, 1, i % 1000 + 1);
    if (sqlite3_step(st) == SQLITE_ROW) (void)sqlite3_column_text(st, 0);
    sqlite3_reset(st);
  }
  printf("point %.3e\n", (now() - t0) / n);
  /* one thread has no concurrency to use: the same loop is the floor */
  t0 = now();
  for (i = 0; i < n; i++) {
    sqlite3_bind_int(st, 1, i % 1000 + 1);
    if (sqlite3_step(st) == SQLITE_ROW) (void)sqlite3_column_text(st, 0);
    sqlite3_reset(st);
  }
  printf("concurrent %.3e\n", (now() - t0) / n);
  sqlite3_finalize(st);
  sqlite3_exec(db,
               "CREATE TABLE big(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)", 0,
               0, 0);
  t0 = now();
  sqlite3_exec(db, "BEGIN", 0, 0, 0);
  sqlite3_prepare_v2(db, "INSERT INTO big VALUES (?, ?, ?)", -1, &st, 0);
  for (i = 1; i <= rows; i++) {
    sqlite3_bind_int(st, 1, i);
    sqlite3_bind_int(st, 2, i * 2);
    sqlite3_bind_text(st, 3, "row", 3, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_exec(db, "COMMIT", 0, 0, 0);
  printf("insert %.3e\n", (now() - t0) / rows);
  sqlite3_close(db);
  return 0;
}
