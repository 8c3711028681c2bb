/* The floor of bench/http_client: a plain C libcurl multi loop, CONC
   transfers in flight through one multi (connections reused), N small GETs
   in all.  curl_multi_poll waits; no event library.
   cc -O2 curl_multi.c -lcurl -o curl_multi; ./curl_multi URL N CONC */
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "bench.h"

static size_t sink(char *p, size_t s, size_t n, void *ud) {
  (void)p;
  (void)ud;
  return s * n;
}

static CURL *easy(const char *url) {
  CURL *e = curl_easy_init();
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  return e;
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "http://127.0.0.1:8080/";
  long n = argc > 2 ? atol(argv[2]) : 20000,
       conc = argc > 3 ? atol(argv[3]) : 50;
  long started = 0, done = 0;
  double w0, c0;
  CURLM *m;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  m = curl_multi_init();
  curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, conc);
  w0 = wall_ns();
  c0 = cpu_ns();
  for (; started < conc && started < n; started++)
    curl_multi_add_handle(m, easy(url));
  while (done < n) {
    int running, left;
    CURLMsg *msg;
    curl_multi_perform(m, &running);
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
      if (msg->msg != CURLMSG_DONE) continue;
      curl_multi_remove_handle(m, msg->easy_handle);
      curl_easy_cleanup(
          msg->easy_handle); /* a new easy per request, as luaio */
      done++;
      if (started < n) {
        curl_multi_add_handle(m, easy(url));
        started++;
      }
    }
    if (done < n) curl_multi_poll(m, NULL, 0, 1000, NULL);
  }
  printf("RESULT %.0f %.0f\n", (wall_ns() - w0) / n, (cpu_ns() - c0) / n);
  curl_multi_cleanup(m);
  return 0;
}
