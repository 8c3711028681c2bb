/* bench/sqlite/starve.c: why aio.sqlite gives each connection a thread.
   Eight SQLite connections each run a long query as a uv_queue_work job
   on libuv's thread pool (4 threads unless UV_THREADPOOL_SIZE says
   otherwise), then a file read is queued: it completes only when a pool
   thread is free.  Prints how long the read took and how long one query
   takes. */
#include <stdio.h>
#include <stdlib.h>
#include <sqlite3.h>
#include <uv.h>

#define N 8
static const char *q = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT "
                       "x + 1 FROM r WHERE x < 3000000) SELECT count(*) FROM r";
static uint64_t t0, tq;
static uv_fs_t open_req, read_req;
static char buf[64];

static void work(uv_work_t *w) {
  sqlite3 *db;
  uint64_t s = uv_hrtime();
  sqlite3_open(":memory:", &db);
  sqlite3_exec(db, q, NULL, NULL, NULL);
  sqlite3_close(db);
  if (w->data == NULL) tq = uv_hrtime() - s;
}
static void after(uv_work_t *w, int status) {
  (void)w;
  (void)status;
}
static void on_read(uv_fs_t *r) {
  printf("file read done after %.2f s\n", (uv_hrtime() - t0) / 1e9);
  uv_fs_req_cleanup(r);
}
static void on_open(uv_fs_t *r) {
  uv_buf_t b = uv_buf_init(buf, sizeof buf);
  uv_fs_read(uv_default_loop(), &read_req, (uv_file)r->result, &b, 1, 0,
             on_read);
  uv_fs_req_cleanup(r);
}

int main(void) {
  uv_work_t w[N];
  int i;
  t0 = uv_hrtime();
  for (i = 0; i < N; i++) {
    w[i].data = i == 0 ? NULL : &w[i];
    uv_queue_work(uv_default_loop(), &w[i], work, after);
  }
  uv_fs_open(uv_default_loop(), &open_req, "/etc/hostname", 0, 0, on_open);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  printf("one query: %.2f s; all done after %.2f s\n", tq / 1e9,
         (uv_hrtime() - t0) / 1e9);
  return 0;
}
