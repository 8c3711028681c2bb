/* bench/sqlite/hop.c N: the floor of aio.sqlite's thread hop on this
   machine, without SQLite or Lua: a round trip from the main thread to a
   worker and back, N times, the worker sleeping on a condition variable
   and the main thread on a pipe-like eventfd in epoll (what the loop
   does), then sleeping on a semaphore (what aio.sqlite does), then with
   both spinning.  Prints "cond", "sem" and "spin" <s/op>. */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int job, efd, n;
static atomic_int req, rep;
static sem_t sem;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *sleeper(void *arg) {
  int i;
  uint64_t one = 1;
  (void)arg;
  for (i = 0; i < n; i++) {
    pthread_mutex_lock(&mu);
    while (!job)
      pthread_cond_wait(&cond, &mu);
    job = 0;
    pthread_mutex_unlock(&mu);
    if (write(efd, &one, sizeof one) < 0) abort();
  }
  return NULL;
}

static void *sem_sleeper(void *arg) {
  int i;
  uint64_t one = 1;
  (void)arg;
  for (i = 0; i < n; i++) {
    while (sem_wait(&sem) != 0) {
    }
    if (write(efd, &one, sizeof one) < 0) abort();
  }
  return NULL;
}

static void *spinner(void *arg) {
  int i;
  (void)arg;
  for (i = 1; i <= n; i++) {
    while (atomic_load(&req) != i) {
    }
    atomic_store(&rep, i);
  }
  return NULL;
}

int main(int argc, char **argv) {
  pthread_t th;
  struct epoll_event ev = {EPOLLIN, {0}}, out;
  uint64_t v;
  double t0;
  int i, ep;
  n = argc > 1 ? atoi(argv[1]) : 20000;
  efd = eventfd(0, EFD_NONBLOCK);
  ep = epoll_create1(0);
  epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
  pthread_create(&th, NULL, sleeper, NULL);
  t0 = now();
  for (i = 0; i < n; i++) {
    pthread_mutex_lock(&mu);
    job = 1;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
    while (epoll_wait(ep, &out, 1, -1) != 1) {
    }
    if (read(efd, &v, sizeof v) < 0) abort();
  }
  printf("cond %.3e\n", (now() - t0) / n);
  pthread_join(th, NULL);
  sem_init(&sem, 0, 0);
  pthread_create(&th, NULL, sem_sleeper, NULL);
  t0 = now();
  for (i = 0; i < n; i++) {
    sem_post(&sem);
    while (epoll_wait(ep, &out, 1, -1) != 1) {
    }
    if (read(efd, &v, sizeof v) < 0) abort();
  }
  printf("sem %.3e\n", (now() - t0) / n);
  pthread_join(th, NULL);
  pthread_create(&th, NULL, spinner, NULL);
  t0 = now();
  for (i = 1; i <= n; i++) {
    atomic_store(&req, i);
    while (atomic_load(&rep) != i) {
    }
  }
  printf("spin %.3e\n", (now() - t0) / n);
  pthread_join(th, NULL);
  return 0;
}
