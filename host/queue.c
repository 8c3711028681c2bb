/*
** queue.c
*/

#include "internal.h"

const luaL_Reg luaio__queue_funcs[] = {{NULL, NULL}};
