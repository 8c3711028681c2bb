/*
** taskgroup.c
*/

#include "internal.h"

const luaL_Reg luaio__taskgroup_funcs[] = {{NULL, NULL}};
