# Worker threads (bindings/worker.c, channel.c, copy.c): each worker is an
# OS thread with a host of its own.
find_package(Threads REQUIRED)
list(APPEND LUAIO_DEPS Threads::Threads)
