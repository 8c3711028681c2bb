/*
** sync.c
*/

#include "internal.h"

const luaL_Reg luaio__sync_funcs[] = {{NULL, NULL}};
