/*
** combine.c
*/

#include "internal.h"

const luaL_Reg luaio__combine_funcs[] = {{NULL, NULL}};
