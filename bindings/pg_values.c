/*
** pg_values.c: PostgreSQL values to and from Lua for luaio._pg.
**
** Results arrive in text format and are decoded by column type:
** int2/int4/int8/oid to integers, float4/float8 to floats, bool to
** booleans, bytea through PQunescapeBytea, json/jsonb through aio.json,
** one-dimensional arrays of these to sequences, everything else (numeric
** included, so it stays exact) as its text.  SQL NULL is aio.null.
**
** Parameters follow the types the server declared for them: a string for a
** bytea parameter goes in binary format (every byte as it is), other
** strings as text; integers, floats and booleans as their text; a table is
** encoded by a Lua function (JSON, or an array literal for an array type).
*/

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

#define MAX_PARAMS 65535
#define NUMLEN PG_NUMLEN

enum {
  OID_BOOL = 16,
  OID_BYTEA = 17,
  OID_INT8 = 20,
  OID_INT2 = 21,
  OID_INT4 = 23,
  OID_OID = 26,
  OID_JSON = 114,
  OID_FLOAT4 = 700,
  OID_FLOAT8 = 701,
  OID_JSONB = 3802
};

static const char decodekey = 'd', encodekey = 'e';

/* The element type of a one-dimensional array type, or 0. */
static Oid element_of(Oid t) {
  switch (t) {
  case 1000:
    return OID_BOOL;
  case 1001:
    return OID_BYTEA;
  case 1005:
    return OID_INT2;
  case 1007:
    return OID_INT4;
  case 1016:
    return OID_INT8;
  case 1028:
    return OID_OID;
  case 1021:
    return OID_FLOAT4;
  case 1022:
    return OID_FLOAT8;
  case 199:
    return OID_JSON;
  case 3807:
    return OID_JSONB;
  case 1009: /* text[] */
  case 1015: /* varchar[] */
  case 1014: /* bpchar[] */
  case 1231: /* numeric[] */
  case 1002: /* char[] */
  case 1003: /* name[] */
  case 2951: /* uuid[] */
    return 25;
  default:
    return 0;
  }
}

static void push_scalar(lua_State *L, Oid t, const char *s, size_t len) {
  switch (t) {
  case OID_BOOL:
    lua_pushboolean(L, s[0] == 't');
    break;
  case OID_INT2:
  case OID_INT4:
  case OID_INT8:
  case OID_OID:
    lua_pushinteger(L, (lua_Integer)strtoll(s, NULL, 10));
    break;
  case OID_FLOAT4:
  case OID_FLOAT8:
    lua_pushnumber(L, (lua_Number)strtod(s, NULL));
    break;
  case OID_BYTEA: {
    size_t n;
    unsigned char *b = PQunescapeBytea((const unsigned char *)s, &n);
    if (b == NULL) luaL_error(L, "not enough memory");
    lua_pushlstring(L, (const char *)b, n);
    PQfreemem(b);
    break;
  }
  case OID_JSON:
  case OID_JSONB:
    lua_rawgetp(L, LUA_REGISTRYINDEX, &decodekey);
    lua_pushlstring(L, s, len);
    lua_call(L, 1, 1);
    break;
  default:
    lua_pushlstring(L, s, len);
  }
}

/* Parse the array literal s (of element type et) into a sequence; 0 when
   it is not a plain one-dimensional literal (then the text is used). */
static int push_array(lua_State *L, Oid et, const char *s, size_t len) {
  const char *p = s, *end = s + len;
  char *buf;
  lua_Integer i = 0;
  if (len < 2 || *p != '{') return 0;
  buf = lua_newuserdatauv(L, len, 0); /* unquoted elements fit in it */
  lua_newtable(L);
  p++;
  if (*p == '}')
    p++;
  else
    for (;;) {
      size_t n = 0;
      int quoted = 0;
      if (p >= end || *p == '{') {
        lua_pop(L, 2);
        return 0;
      }
      if (*p == '"') {
        quoted = 1;
        for (p++; p < end && *p != '"'; p++) {
          if (*p == '\\' && p + 1 < end) p++;
          buf[n++] = *p;
        }
        if (p >= end) {
          lua_pop(L, 2);
          return 0;
        }
        p++;
      } else
        for (; p < end && *p != ',' && *p != '}'; p++) {
          if (*p == '\\' && p + 1 < end) p++;
          buf[n++] = *p;
        }
      buf[n] = '\0'; /* n < len: the literal has its braces */
      if (!quoted && n == 4 && strncmp(buf, "NULL", 4) == 0)
        lua_pushlightuserdata(L, NULL);
      else
        push_scalar(L, et, buf, n);
      lua_rawseti(L, -2, ++i);
      if (p < end && *p == ',') {
        p++;
        continue;
      }
      if (p < end && *p == '}') {
        p++;
        break;
      }
      lua_pop(L, 2);
      return 0;
    }
  if (p != end) {
    lua_pop(L, 2);
    return 0;
  }
  lua_remove(L, -2);
  return 1;
}

void luaio__pg_push_value(lua_State *L, const PGresult *r, int row, int col) {
  Oid t, et;
  const char *s;
  size_t len;
  if (PQgetisnull(r, row, col)) {
    lua_pushlightuserdata(L, NULL);
    return;
  }
  t = PQftype(r, col);
  s = PQgetvalue(r, row, col);
  len = (size_t)PQgetlength(r, row, col);
  et = element_of(t);
  if (et != 0 && push_array(L, et, s, len)) return;
  push_scalar(L, t, s, len);
}

void luaio__pg_push_rows(lua_State *L, const PGresult *r, int mode) {
  int nrows = PQntuples(r), ncols = PQnfields(r), names, i, j;
  if (mode == 3) {
    if (nrows == 0 || ncols == 0)
      lua_pushnil(L);
    else
      luaio__pg_push_value(L, r, 0, 0);
    return;
  }
  if (mode == 2 && nrows == 0) {
    lua_pushnil(L);
    return;
  }
  if (mode == 2) nrows = 1;
  luaL_checkstack(L, ncols + 4, "too many columns");
  names = lua_gettop(L) + 1;
  for (j = 0; j < ncols; j++)
    lua_pushstring(L, PQfname(r, j));
  if (mode == 1) lua_createtable(L, nrows, 0);
  for (i = 0; i < nrows; i++) {
    lua_createtable(L, 0, ncols);
    for (j = 0; j < ncols; j++) {
      lua_pushvalue(L, names + j);
      luaio__pg_push_value(L, r, i, j);
      lua_rawset(L, -3);
    }
    if (mode == 1) lua_rawseti(L, -2, i + 1);
  }
  lua_replace(L, names);
  lua_settop(L, names);
}

static void set_field(lua_State *L, const PGresult *r, int code,
                      const char *name) {
  const char *v = PQresultErrorField(r, code);
  if (v == NULL) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, name);
}

void luaio__pg_push_error(lua_State *L, const char *kind, const PGresult *r,
                          const char *msg) {
  const char *primary =
      r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *pos;
  char buf[512];
  if (primary == NULL) {
    const char *m = r ? PQresultErrorMessage(r) : msg;
    size_t n;
    if (m == NULL || *m == '\0') m = msg ? msg : "connection closed";
    n = strlen(m);
    while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' '))
      n--;
    if (n >= sizeof buf) n = sizeof buf - 1;
    memcpy(buf, m, n);
    buf[n] = '\0';
    primary = buf;
  }
  luaio__error_push(L, kind, primary);
  if (r == NULL) return;
  set_field(L, r, PG_DIAG_SQLSTATE, "sqlstate");
  set_field(L, r, PG_DIAG_SEVERITY_NONLOCALIZED, "severity");
  set_field(L, r, PG_DIAG_MESSAGE_DETAIL, "detail");
  set_field(L, r, PG_DIAG_MESSAGE_HINT, "hint");
  set_field(L, r, PG_DIAG_CONTEXT, "context");
  set_field(L, r, PG_DIAG_SCHEMA_NAME, "schema");
  set_field(L, r, PG_DIAG_TABLE_NAME, "table");
  set_field(L, r, PG_DIAG_COLUMN_NAME, "column");
  set_field(L, r, PG_DIAG_DATATYPE_NAME, "datatype");
  set_field(L, r, PG_DIAG_CONSTRAINT_NAME, "constraint");
  pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
  if (pos != NULL) {
    lua_pushinteger(L, (lua_Integer)strtol(pos, NULL, 10));
    lua_setfield(L, -2, "position");
  }
}

static void number_text(char *buf, lua_State *L, int idx) {
  if (lua_isinteger(L, idx)) {
    snprintf(buf, NUMLEN, LUA_INTEGER_FMT, lua_tointeger(L, idx));
  } else {
    lua_Number d = lua_tonumber(L, idx);
    if (isnan(d))
      strcpy(buf, "NaN");
    else if (isinf(d))
      strcpy(buf, d > 0 ? "Infinity" : "-Infinity");
    else
      snprintf(buf, NUMLEN, "%.17g", (double)d);
  }
}

void luaio__pg_params(lua_State *L, int first, int n, int ptypes, pgparams *p) {
  int i;
  if (n > MAX_PARAMS) luaL_error(L, "too many parameters (%d)", n);
  p->n = n;
  if (n <= PG_SMALL) {
    p->values = p->small_values;
    p->lengths = p->small_lengths;
    p->formats = p->small_formats;
    p->nums = p->small_nums;
  } else {
    char *scratch = lua_newuserdatauv(
        L, (size_t)n * (sizeof(char *) + 2 * sizeof(int) + NUMLEN), 0);
    p->values = (const char **)(void *)scratch;
    p->lengths = (int *)(void *)(scratch + (size_t)n * sizeof(char *));
    p->formats = p->lengths + n;
    p->nums = (char *)(p->formats + n);
  }
  for (i = 0; i < n; i++) {
    int idx = first + i;
    Oid t = 0;
    char *num = p->nums + (size_t)i * NUMLEN;
    if (ptypes) {
      lua_rawgeti(L, ptypes, i + 1);
      t = (Oid)lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
    p->lengths[i] = 0;
    p->formats[i] = 0;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
      p->values[i] = NULL;
      break;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) != NULL)
        luaL_argerror(L, idx, "a value of SQL expected");
      p->values[i] = NULL;
      break;
    case LUA_TBOOLEAN:
      p->values[i] = lua_toboolean(L, idx) ? "t" : "f";
      break;
    case LUA_TNUMBER:
      number_text(num, L, idx);
      p->values[i] = num;
      break;
    case LUA_TTABLE:
      lua_rawgetp(L, LUA_REGISTRYINDEX, &encodekey);
      lua_pushvalue(L, idx);
      lua_pushinteger(L, (lua_Integer)t);
      lua_call(L, 2, 1);
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_argerror(L, idx, "table cannot be encoded");
      lua_replace(L, idx);
      /* fall through: now a string */
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      if (len > 0x3fffffff) luaL_argerror(L, idx, "string too long");
      p->values[i] = s;
      p->lengths[i] = (int)len;
      if (t == OID_BYTEA)
        p->formats[i] = 1;
      else if (memchr(s, '\0', len) != NULL)
        luaL_argerror(L, idx,
                      "a zero byte in a text parameter (bytea "
                      "takes any byte)");
      break;
    }
    default:
      luaL_argerror(L, idx,
                    lua_pushfstring(L, "%s cannot be a parameter",
                                    luaL_typename(L, idx)));
    }
  }
}

int luaio__pg_setup(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &decodekey);
  lua_pushvalue(L, 2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &encodekey);
  return 0;
}
