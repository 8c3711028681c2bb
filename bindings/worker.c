/*
** worker.c: aio.worker, aio.to_thread and aio.workers.
*/

#include "worker.h"

void luaio__worker_open(lua_State *L, luaio *h) {
  luaio__channel_open(L, h);
}
