/*
** timeout.c
*/

#include "internal.h"

const luaL_Reg luaio__timeout_funcs[] = {{NULL, NULL}};
