/*
** pg.h: what the two halves of luaio._pg share (pg.c: the connection on
** the loop; pg_values.c: PostgreSQL values to and from Lua).
*/
#ifndef LUAIO_PG_H
#define LUAIO_PG_H

#include <libpq-fe.h>

#include "internal.h"

#define PG_SMALL 16 /* parameters encoded without allocating */
#define PG_NUMLEN 32

/* Parameters of one statement, ready for PQsendQueryPrepared. */
typedef struct pgparams {
  int n;
  const char **values;
  int *lengths, *formats;
  char *nums;
  const char *small_values[PG_SMALL];
  int small_lengths[PG_SMALL], small_formats[PG_SMALL];
  char small_nums[PG_SMALL * PG_NUMLEN];
} pgparams;

/* Encode the n Lua values from index first for a statement whose parameter
   types are the integers of the table at ptypes (0: none known).  Pushes a
   scratch userdata past PG_SMALL parameters, and replaces table arguments
   by their encoding, all of which must stay on the stack until the
   statement is sent.  Raises on a
   value that cannot be a parameter. */
void luaio__pg_params(lua_State *L, int first, int n, int ptypes, pgparams *p);

/* Push the value of row, col of r (aio.null for SQL NULL). */
void luaio__pg_push_value(lua_State *L, const PGresult *r, int row, int col);

/* Push the rows of r: mode 1 all (an array), 2 the first row or nil, 3
   the first value or nil. */
void luaio__pg_push_rows(lua_State *L, const PGresult *r, int mode);

/* Push a luaio error of kind with the fields of the failed result r (r
   may be NULL: then msg is the message). */
void luaio__pg_push_error(lua_State *L, const char *kind, const PGresult *r,
                          const char *msg);

/* luaio._pg.setup(json_decode, encode_table): the Lua functions the values
   need, kept in the registry. */
int luaio__pg_setup(lua_State *L);

#endif
