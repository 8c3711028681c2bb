/*
** copy.c: values copied between hosts, in a compact binary encoding.
**
** A message is a sequence of values, each a tag byte and its payload:
**   'n' nil, 'f' false, 't' true, 'z' aio.null (the light userdata NULL),
**   'i' an integer (8 bytes), 'd' a float (its 8 bytes, so bit-exact),
**   's' a string (varint length, bytes), 'F' a function (varint length,
**   lua_dump's bytes with debug info), 'S' a shared object (varint index
**   into the message's shared references), 'T' a table (varint array size
**   hint, then key/value pairs, then 'e').
** Metatables are dropped, a table reached twice is copied twice, a table
** that contains itself is refused (the tables on the path are compared),
** and so is nesting past LUAIO_COPY_DEPTH.  A function crosses only if its
** sole upvalue is _ENV: loading it in the other state binds it to that
** state's globals.  Anything else raises an error naming the path of the
** value, "args[2].conn: userdata cannot cross threads".
**
** Each state keeps one encoder, in a userdata of its registry whose __gc
** frees it, and reuses its buffer from copy to copy: a message is then one
** malloc'd block (the msg, its shared references, the bytes).  Nothing in
** a copy allocates Lua objects, so no finalizer (which could copy in turn)
** runs while the encoder is in use; the copy's own errors reset it before
** they raise, and one that still finds it in use takes a box of its own.
*/

#include <stdlib.h>
#include <string.h>

#include "worker.h"

/* The registry keys of the encoder boxes' metatable and of the state's
   encoder. */
static const char enckey = 'c';
static const char boxkey = 'b';

/* A message this long or longer takes the encoder's buffer instead of a
   copy of its bytes. */
#define OWN_BUFFER 4096

typedef struct encoder {
  unsigned char *buf;
  size_t len, cap;
  sharedref *shared;
  size_t nshared, cshared;
  int depth;
  int keys[LUAIO_COPY_DEPTH + 1];         /* stack index of each level's key */
  const void *path[LUAIO_COPY_DEPTH + 1]; /* the tables being copied */
  int first;                              /* the first value's index */
  const char *root;
  int base;  /* value i is named root[base + i]; below 0: root */
  int value; /* the value being copied, from 0 */
  int box;   /* the stack index of the encoder's box */
  int busy;  /* a copy is using it */
} encoder;

static void enc_reset(encoder *e) {
  size_t i;
  for (i = 0; i < e->nshared; i++)
    e->shared[i].ops->release(e->shared[i].p);
  free(e->buf);
  free(e->shared);
  e->buf = NULL;
  e->shared = NULL;
  e->len = e->cap = e->nshared = e->cshared = 0;
}

static int enc_gc(lua_State *L) {
  enc_reset(lua_touserdata(L, 1));
  return 0;
}

/* Push the path of the value being copied: root[2].conn[3]. */
static void push_path(lua_State *L, encoder *e, int depth) {
  luaL_Buffer b;
  int i;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, e->root);
  if (e->base >= 0) {
    lua_pushfstring(L, "[%d]", e->base + e->value);
    luaL_addvalue(&b);
  }
  for (i = 0; i < depth; i++) {
    int k = e->keys[i];
    switch (lua_type(L, k)) {
    case LUA_TSTRING: {
      size_t len, j;
      const char *s = lua_tolstring(L, k, &len);
      int ident = len > 0 && len <= 40 && !(s[0] >= '0' && s[0] <= '9');
      for (j = 0; ident && j < len; j++)
        ident = s[j] == '_' || (s[j] >= 'a' && s[j] <= 'z') ||
                (s[j] >= 'A' && s[j] <= 'Z') || (s[j] >= '0' && s[j] <= '9');
      if (ident)
        lua_pushfstring(L, ".%s", s);
      else
        lua_pushfstring(L, "[\"%s\"]", len > 40 ? "..." : s);
      break;
    }
    case LUA_TNUMBER:
      if (lua_isinteger(L, k))
        lua_pushfstring(L, "[%I]", lua_tointeger(L, k));
      else
        lua_pushfstring(L, "[%f]", lua_tonumber(L, k));
      break;
    default:
      lua_pushfstring(L, "[%s]", luaL_typename(L, k));
    }
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
}

/* Leave the copy: what it gathered is dropped (its buffer kept). */
static void enc_abort(encoder *e) {
  size_t i;
  for (i = 0; i < e->nshared; i++)
    e->shared[i].ops->release(e->shared[i].p);
  e->len = e->nshared = 0;
  e->busy = 0;
}

static int refuse(lua_State *L, encoder *e, const char *what) {
  enc_abort(e); /* before push_path allocates */
  push_path(L, e, e->depth);
  return luaL_error(L, "%s: %s cannot cross threads", lua_tostring(L, -1),
                    what);
}

static void reserve(lua_State *L, encoder *e, size_t n) {
  size_t cap;
  unsigned char *p;
  if (n <= e->cap - e->len) return;
  if (n > LUAIO_MSG_MAX || e->len + n > LUAIO_MSG_MAX)
    refuse(L, e, "a message over 64 MiB");
  cap = e->cap ? e->cap : 64;
  while (cap - e->len < n)
    cap *= 2;
  if ((p = realloc(e->buf, cap)) == NULL) {
    enc_abort(e);
    luaL_error(L, "not enough memory");
  }
  e->buf = p;
  e->cap = cap;
}

static void put_byte(lua_State *L, encoder *e, unsigned char c) {
  reserve(L, e, 1);
  e->buf[e->len++] = c;
}

static void put_varint(lua_State *L, encoder *e, size_t v) {
  reserve(L, e, 10);
  while (v >= 0x80) {
    e->buf[e->len++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  e->buf[e->len++] = (unsigned char)v;
}

static void put_bytes(lua_State *L, encoder *e, const void *p, size_t n) {
  reserve(L, e, n);
  memcpy(e->buf + e->len, p, n);
  e->len += n;
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud) {
  put_bytes(L, ud, p, n);
  return 0;
}

static void put_function(lua_State *L, encoder *e, int idx) {
  const char *up;
  size_t at;
  if (lua_iscfunction(L, idx)) refuse(L, e, "a C function");
  if ((up = lua_getupvalue(L, idx, 1)) != NULL) {
    lua_pop(L, 1);
    if (strcmp(up, "_ENV") != 0 || lua_getupvalue(L, idx, 2) != NULL)
      refuse(L, e, "a function with upvalues (a closure)");
  }
  /* the dump goes after a placeholder for its length: 5 varint bytes */
  put_byte(L, e, 'F');
  reserve(L, e, 5);
  at = e->len;
  e->len += 5;
  lua_pushvalue(L, idx);
  lua_dump(L, dump_writer, e, 0);
  lua_pop(L, 1);
  {
    size_t n = e->len - at - 5, i;
    for (i = 0; i < 5; i++) { /* a fixed 5-byte varint */
      e->buf[at + i] = (unsigned char)((n & 0x7f) | (i < 4 ? 0x80 : 0));
      n >>= 7;
    }
  }
}

static void put_shared(lua_State *L, encoder *e, const sharedops *ops,
                       void *p) {
  if (e->nshared == e->cshared) {
    size_t c = e->cshared ? e->cshared * 2 : 4;
    sharedref *s = realloc(e->shared, c * sizeof *s);
    if (s == NULL) {
      enc_abort(e);
      luaL_error(L, "not enough memory");
    }
    e->shared = s;
    e->cshared = c;
  }
  ops->retain(p);
  e->shared[e->nshared].ops = ops;
  e->shared[e->nshared].p = p;
  put_byte(L, e, 'S');
  put_varint(L, e, e->nshared++);
}

static void put_value(lua_State *L, encoder *e, int idx);

static void put_table(lua_State *L, encoder *e, int idx) {
  const void *p = lua_topointer(L, idx);
  int i, kidx;
  for (i = 0; i < e->depth; i++)
    if (e->path[i] == p) refuse(L, e, "a table that contains itself");
  if (e->depth >= LUAIO_COPY_DEPTH)
    refuse(L, e, "a table nested deeper than 200 levels");
  if (!lua_checkstack(L, 4)) refuse(L, e, "a table past the stack's room");
  e->path[e->depth] = p;
  put_byte(L, e, 'T');
  put_varint(L, e, lua_rawlen(L, idx));
  lua_pushnil(L);
  kidx = lua_gettop(L);
  while (lua_next(L, idx)) {
    e->keys[e->depth] = kidx;
    e->depth++;
    if (lua_type(L, kidx) == LUA_TTABLE) { /* a table key: its own path */
      e->depth--;
      put_value(L, e, kidx);
      e->depth++;
    } else
      put_value(L, e, kidx);
    put_value(L, e, kidx + 1);
    e->depth--;
    lua_pop(L, 1);
  }
  put_byte(L, e, 'e');
}

static void put_value(lua_State *L, encoder *e, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    put_byte(L, e, 'n');
    break;
  case LUA_TBOOLEAN:
    put_byte(L, e, lua_toboolean(L, idx) ? 't' : 'f');
    break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      lua_Integer v = lua_tointeger(L, idx);
      put_byte(L, e, 'i');
      put_bytes(L, e, &v, sizeof v);
    } else {
      lua_Number v = lua_tonumber(L, idx);
      put_byte(L, e, 'd');
      put_bytes(L, e, &v, sizeof v);
    }
    break;
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    put_byte(L, e, 's');
    put_varint(L, e, len);
    put_bytes(L, e, s, len);
    break;
  }
  case LUA_TTABLE:
    put_table(L, e, idx);
    break;
  case LUA_TFUNCTION:
    put_function(L, e, idx);
    break;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) != NULL) refuse(L, e, "a light userdata");
    put_byte(L, e, 'z');
    break;
  case LUA_TUSERDATA: {
    const sharedops *ops = NULL;
    if (lua_getmetatable(L, idx)) { /* its __luaio_shared, raw */
      lua_getiuservalue(L, e->box, 1);
      if (lua_rawget(L, -2) == LUA_TLIGHTUSERDATA) ops = lua_touserdata(L, -1);
      lua_pop(L, 2);
    }
    if (ops == NULL) refuse(L, e, "userdata");
    put_shared(L, e, ops, *(void **)lua_touserdata(L, idx));
    break;
  }
  case LUA_TTHREAD:
    refuse(L, e, "a coroutine");
    break;
  default:
    refuse(L, e, luaL_typename(L, idx));
  }
}

/* Push a box for an encoder, with its metatable and its key. */
static encoder *new_box(lua_State *L) {
  encoder *e = lua_newuserdatauv(L, sizeof *e, 1);
  memset(e, 0, sizeof *e);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &enckey) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, enc_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &enckey);
  }
  lua_setmetatable(L, -2);
  lua_pushliteral(L, "__luaio_shared");
  lua_setiuservalue(L, -2, 1);
  return e;
}

/* Push the state's encoder, made on first use; a box of its own when it
   is in use. */
static encoder *push_encoder(lua_State *L) {
  encoder *e;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &boxkey) == LUA_TUSERDATA) {
    e = lua_touserdata(L, -1);
    if (!e->busy) return e;
    lua_pop(L, 1);
    return new_box(L);
  }
  lua_pop(L, 1);
  e = new_box(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &boxkey);
  return e;
}

/* The message of what e holds, one block: the msg, the shared references,
   then the bytes (or the buffer itself, when long).  e is left empty. */
static msg *finish(lua_State *L, encoder *e, int n) {
  size_t sh = e->nshared * sizeof(sharedref);
  int own = e->len >= OWN_BUFFER;
  msg *m = malloc(sizeof *m + sh + (own ? 0 : e->len));
  if (m == NULL) {
    enc_abort(e);
    luaL_error(L, "not enough memory");
  }
  m->next = NULL;
  m->shared = (sharedref *)(m + 1);
  if (sh > 0) memcpy(m->shared, e->shared, sh);
  m->nshared = e->nshared;
  m->len = e->len;
  m->nvalues = n;
  if (own) {
    m->data = e->buf;
    e->buf = NULL;
    e->cap = 0;
  } else {
    m->data = (unsigned char *)m->shared + sh;
    if (e->len > 0) memcpy(m->data, e->buf, e->len);
  }
  e->len = e->nshared = 0;
  e->busy = 0;
  return m;
}

msg *luaio__copy_encode(lua_State *L, int first, int n, const char *root,
                        int base) {
  encoder *e;
  msg *m;
  int i, top;
  first = lua_absindex(L, first);
  luaL_checkstack(L, 8, "copying values");
  e = push_encoder(L);
  top = lua_gettop(L);
  e->busy = 1;
  e->box = top;
  e->root = root;
  e->base = base;
  e->first = first;
  for (i = 0; i < n; i++) {
    e->value = i;
    e->depth = 0;
    put_value(L, e, first + i);
    lua_settop(L, top);
  }
  m = finish(L, e, n);
  lua_pop(L, 1);
  return m;
}

void luaio__msg_free(msg *m) {
  size_t i;
  if (m == NULL) return;
  for (i = 0; i < m->nshared; i++)
    if (m->shared[i].p != NULL) m->shared[i].ops->release(m->shared[i].p);
  if (m->data != (unsigned char *)(m->shared + m->nshared)) free(m->data);
  free(m);
}

/* Decoding: the message was made by the encoder, so it is trusted. */

typedef struct decoder {
  const unsigned char *p, *end;
  msg *m;
} decoder;

static size_t get_varint(decoder *d) {
  size_t v = 0;
  int shift = 0;
  while (d->p < d->end) {
    unsigned char c = *d->p++;
    v |= (size_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) break;
    shift += 7;
  }
  return v;
}

static void get_value(lua_State *L, decoder *d) {
  unsigned char tag = *d->p++;
  switch (tag) {
  case 'n':
    lua_pushnil(L);
    break;
  case 'f':
  case 't':
    lua_pushboolean(L, tag == 't');
    break;
  case 'z':
    lua_pushlightuserdata(L, NULL);
    break;
  case 'i': {
    lua_Integer v;
    memcpy(&v, d->p, sizeof v);
    d->p += sizeof v;
    lua_pushinteger(L, v);
    break;
  }
  case 'd': {
    lua_Number v;
    memcpy(&v, d->p, sizeof v);
    d->p += sizeof v;
    lua_pushnumber(L, v);
    break;
  }
  case 's': {
    size_t len = get_varint(d);
    lua_pushlstring(L, (const char *)d->p, len);
    d->p += len;
    break;
  }
  case 'F': {
    size_t len = get_varint(d);
    if (luaL_loadbufferx(L, (const char *)d->p, len, "=(copied function)",
                         "b") != LUA_OK)
      lua_error(L);
    d->p += len;
    break;
  }
  case 'S': {
    size_t i = get_varint(d);
    sharedref *s = &d->m->shared[i];
    void *p = s->p;
    s->p = NULL; /* the pushed object takes the reference */
    s->ops->push(L, p);
    break;
  }
  case 'T': {
    size_t narr = get_varint(d);
    luaL_checkstack(L, 4, "copying a table");
    lua_createtable(L, narr > 1u << 20 ? 1 << 20 : (int)narr, 0);
    while (*d->p != 'e') {
      if (*d->p == 'i') { /* an integer key: set without pushing it */
        lua_Integer k;
        memcpy(&k, d->p + 1, sizeof k);
        d->p += 1 + sizeof k;
        get_value(L, d);
        lua_rawseti(L, -2, k);
        continue;
      }
      get_value(L, d);
      get_value(L, d);
      lua_rawset(L, -3);
    }
    d->p++;
    break;
  }
  default:
    luaL_error(L, "corrupt message (tag %d)", tag);
  }
}

int luaio__copy_decode(lua_State *L, msg *m) {
  decoder d;
  int i, n = m->nvalues;
  luaL_checkstack(L, n + 8, "too many values");
  d.p = m->data;
  d.end = m->data + m->len;
  d.m = m;
  for (i = 0; i < n; i++)
    get_value(L, &d);
  luaio__msg_free(m);
  return n;
}
