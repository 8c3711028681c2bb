# Worker threads (bindings/worker.c, channel.c, copy.c): each worker is an
# OS thread with a host of its own.
find_package(Threads REQUIRED)
list(APPEND LUAIO_DEPS Threads::Threads)
# dladdr/dlopen: the first thread pins the code it runs (worker.c pin_code)
list(APPEND LUAIO_DEPS ${CMAKE_DL_LIBS})
string(APPEND LUAIO_PC_LIBS_PRIVATE " -lpthread -l${CMAKE_DL_LIBS}")
