/*
** What the REPL of the asynchost executable shows and completes: the
** values of an input as text (strings quoted, tables as constructors,
** bounded in depth, entries and width, cycles marked) and readline's
** completion of globals, fields and methods.  The REPL itself, readline's
** wiring, Ctrl-C and history are in repl.c.
*/

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <readline/readline.h>

#include "lua.h"
#include "lauxlib.h"

#include "host.h"


#define REPR_DEPTH  3     /* tables deeper than this print as {...} */
#define REPR_ITEMS  100   /* entries shown per table */
#define REPR_WIDTH  76    /* a table wider than this takes a line per entry */
#define REPR_STRING 400   /* a longer string in a table is cut short */


static const char *const keywords[] = {
  "and", "break", "do", "else", "elseif", "end", "false", "for",
  "function", "goto", "if", "in", "local", "nil", "not", "or", "repeat",
  "return", "then", "true", "until", "while", NULL
};


/* {======================================================
** Values as text: what an expression at the prompt prints
** ======================================================= */

static int iskeyword (const char *s, size_t l) {
  int i;
  for (i = 0; keywords[i] != NULL; i++)
    if (strlen(keywords[i]) == l && memcmp(keywords[i], s, l) == 0)
      return 1;
  return 0;
}

/* Can 's' be written as a field name, t.s? */
static int isname (const char *s, size_t l) {
  size_t i;
  if (l == 0 || !(s[0] == '_' || ((s[0] | 32) >= 'a' && (s[0] | 32) <= 'z')))
    return 0;
  for (i = 1; i < l; i++) {
    char c = s[i];
    if (!(c == '_' || (c >= '0' && c <= '9') || ((c | 32) >= 'a' &&
          (c | 32) <= 'z')))
      return 0;
  }
  return !iskeyword(s, l);
}

/* Pushes the string at 'i' quoted as a Lua literal; long ones cut short. */
static void pushquoted (lua_State *L, int i) {
  size_t l, k, n;
  const char *s = lua_tolstring(L, i, &l);
  luaL_Buffer b;
  n = l > REPR_STRING ? REPR_STRING : l;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '"');
  for (k = 0; k < n; k++) {
    unsigned char c = (unsigned char)s[k];
    switch (c) {
      case '"': luaL_addstring(&b, "\\\""); break;
      case '\\': luaL_addstring(&b, "\\\\"); break;
      case '\n': luaL_addstring(&b, "\\n"); break;
      case '\r': luaL_addstring(&b, "\\r"); break;
      case '\t': luaL_addstring(&b, "\\t"); break;
      default:
        if (c < 32 || c == 127) {
          char esc[8];
          snprintf(esc, sizeof(esc), (k + 1 < n && s[k + 1] >= '0' &&
                   s[k + 1] <= '9') ? "\\%03d" : "\\%d", c);
          luaL_addstring(&b, esc);
        }
        else
          luaL_addchar(&b, c);
    }
  }
  luaL_addchar(&b, '"');
  if (n < l) {
    char more[48];
    snprintf(more, sizeof(more), "... (%lu bytes)", (unsigned long)l);
    luaL_addstring(&b, more);
  }
  luaL_pushresult(&b);
}

/* Keys other than the sequence's, in the order they print: strings
** alphabetically, then numbers, then the others as 'next' gives them. */
typedef struct key {
  int rank;       /* 0 string, 1 number, 2 other */
  const char *s;  /* anchored in the keys' table */
  size_t l;
  lua_Number n;
  int k;          /* index in the keys' table */
} key;

static int keycmp (const void *a, const void *b) {
  const key *x = (const key *)a, *y = (const key *)b;
  if (x->rank != y->rank) return x->rank - y->rank;
  if (x->rank == 0) {
    int c = memcmp(x->s, y->s, x->l < y->l ? x->l : y->l);
    if (c != 0) return c;
    return (x->l > y->l) - (x->l < y->l);
  }
  if (x->rank == 1 && x->n != y->n) return (x->n > y->n) - (x->n < y->n);
  return x->k - y->k;
}

static void pushrepr (lua_State *L, int i, int level, int seen);

/* Pushes "key = value" for the key at 'k' of table 't'. */
static void pushentry (lua_State *L, int t, int k, int level, int seen) {
  size_t l;
  const char *s;
  if (lua_type(L, k) == LUA_TSTRING && (s = lua_tolstring(L, k, &l)) &&
      isname(s, l))
    lua_pushvalue(L, k);
  else {
    lua_pushliteral(L, "[");
    pushrepr(L, k, level + 1, seen);
    lua_pushliteral(L, "]");
    lua_concat(L, 3);
  }
  lua_pushliteral(L, " = ");
  lua_pushvalue(L, k);
  lua_rawget(L, t);
  pushrepr(L, lua_gettop(L), level + 1, seen);
  lua_remove(L, -2);  /* the value */
  lua_concat(L, 3);
}

/* Pushes the table at 't' as a constructor, entries being the strings
** in the array at 'e' (n of them): on one line if short, else one per
** line. */
static void pushjoined (lua_State *L, int e, int n, int level) {
  luaL_Buffer b;
  size_t width = 2 + 2 * level;
  int k, lines = 0;
  for (k = 1; k <= n; k++) {
    size_t l;
    const char *s;
    lua_rawgeti(L, e, k);
    s = lua_tolstring(L, -1, &l);
    width += l + 2;
    if (memchr(s, '\n', l) != NULL) lines = 1;
    lua_pop(L, 1);
  }
  lines = lines || width > REPR_WIDTH;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '{');
  for (k = 1; k <= n; k++) {
    if (lines) {
      int j;
      luaL_addstring(&b, k > 1 ? ",\n" : "\n");
      for (j = 0; j <= level; j++) luaL_addstring(&b, "  ");
    }
    else if (k > 1)
      luaL_addstring(&b, ", ");
    lua_rawgeti(L, e, k);
    luaL_addvalue(&b);
  }
  if (lines) {
    int j;
    luaL_addchar(&b, '\n');
    for (j = 0; j < level; j++) luaL_addstring(&b, "  ");
  }
  luaL_addchar(&b, '}');
  luaL_pushresult(&b);
}

/* Pushes the plain table at 't': its sequence, then its other keys. */
static void pushtable (lua_State *L, int t, int level, int seen) {
  int top = lua_gettop(L), e, ks, n = 0, nseq = 0, nkeys = 0, k;
  key *keys;
  lua_pushvalue(L, t);
  if (lua_rawget(L, seen) != LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushliteral(L, "<cycle>");
    return;
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  if (lua_next(L, t) == 0) {
    lua_pushliteral(L, "{}");
    return;
  }
  lua_settop(L, top);
  if (level >= REPR_DEPTH) {
    lua_pushliteral(L, "{...}");
    return;
  }
  lua_pushvalue(L, t);
  lua_pushboolean(L, 1);
  lua_rawset(L, seen);
  lua_newtable(L);
  e = lua_gettop(L);  /* the entries, as strings */
  while (lua_rawgeti(L, t, nseq + 1) != LUA_TNIL) {
    nseq++;
    if (n < REPR_ITEMS) {
      pushrepr(L, lua_gettop(L), level + 1, seen);
      lua_rawseti(L, e, ++n);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_newtable(L);
  ks = lua_gettop(L);  /* the other keys, anchored */
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    lua_pop(L, 1);
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 &&
        lua_tointeger(L, -1) <= nseq)
      continue;
    lua_pushvalue(L, -1);
    lua_rawseti(L, ks, ++nkeys);
  }
  keys = (key *)lua_newuserdatauv(L, (nkeys + 1) * sizeof(key), 0);
  for (k = 0; k < nkeys; k++) {
    lua_rawgeti(L, ks, k + 1);
    keys[k].k = k + 1;
    keys[k].s = NULL;
    keys[k].l = 0;
    keys[k].n = 0;
    switch (lua_type(L, -1)) {
      case LUA_TSTRING:
        keys[k].rank = 0;
        keys[k].s = lua_tolstring(L, -1, &keys[k].l);
        break;
      case LUA_TNUMBER:
        keys[k].rank = 1;
        keys[k].n = lua_tonumber(L, -1);
        break;
      default:
        keys[k].rank = 2;
    }
    lua_pop(L, 1);
  }
  qsort(keys, nkeys, sizeof(key), keycmp);
  for (k = 0; k < nkeys && n < REPR_ITEMS; k++) {
    lua_rawgeti(L, ks, keys[k].k);
    pushentry(L, t, lua_gettop(L), level, seen);
    lua_rawseti(L, e, ++n);
    lua_pop(L, 1);
  }
  if (nseq + nkeys > n) {
    lua_pushfstring(L, "... (%d more)", nseq + nkeys - n);
    lua_rawseti(L, e, ++n);
  }
  pushjoined(L, e, n, level);
  lua_pushvalue(L, t);
  lua_pushnil(L);
  lua_rawset(L, seen);
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}

/*
** Pushes the value at 'i' as text: strings quoted, tables without
** __tostring or __name as constructors (bounded: REPR_DEPTH levels,
** REPR_ITEMS entries each, cycles marked), anything else as tostring
** makes it (a task shows its name and state).  'seen' holds the tables
** being printed.
*/
static void pushrepr (lua_State *L, int i, int level, int seen) {
  i = lua_absindex(L, i);
  luaL_checkstack(L, 10, "table too deep to print");
  switch (lua_type(L, i)) {
    case LUA_TSTRING:
      pushquoted(L, i);
      return;
    case LUA_TTABLE:
      if (luaL_getmetafield(L, i, "__tostring") == LUA_TNIL &&
          luaL_getmetafield(L, i, "__name") == LUA_TNIL) {
        pushtable(L, i, level, seen);
        return;
      }
      lua_pop(L, 1);  /* the metafield */
      /* FALLTHROUGH */
    default:
      luaL_tolstring(L, i, NULL);
  }
}

/* Prints its arguments, as lua's REPL prints the values of an input but
** with tables readable; strings print as they are. */
int ah_printvalues (lua_State *L) {
  int n = lua_gettop(L), k, seen;
  luaL_Buffer b;
  lua_newtable(L);
  seen = lua_gettop(L);
  for (k = 1; k <= n; k++) {
    if (lua_type(L, k) == LUA_TSTRING)
      lua_pushvalue(L, k);
    else
      pushrepr(L, k, 0, seen);
  }
  luaL_buffinit(L, &b);  /* the strings are below it: join them */
  for (k = 1; k <= n; k++) {
    if (k > 1) luaL_addchar(&b, '\t');
    lua_pushvalue(L, seen + k);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  fwrite(lua_tostring(L, -1), 1, lua_rawlen(L, -1), stdout);
  fflush(stdout);
  return 0;
}

/* }====================================================== */


/* {======================================================
** Completion of globals, fields and methods
** ======================================================= */

/* Replaces the value and the key on top with the field, looked up with
** no metamethod run: raw, then through tables that are __index. */
static void rawfield (lua_State *L) {
  int depth;
  for (depth = 0; depth < 16; depth++) {
    if (lua_type(L, -2) == LUA_TTABLE) {
      lua_pushvalue(L, -1);
      if (lua_rawget(L, -3) != LUA_TNIL) {
        lua_replace(L, -3);
        lua_pop(L, 1);
        return;
      }
      lua_pop(L, 1);
    }
    if (!lua_getmetatable(L, -2)) break;
    lua_pushliteral(L, "__index");
    lua_rawget(L, -2);
    lua_remove(L, -2);  /* the metatable */
    if (lua_type(L, -1) != LUA_TTABLE) {
      lua_pop(L, 1);
      break;
    }
    lua_replace(L, -3);  /* look in __index now */
  }
  lua_pop(L, 2);
  lua_pushnil(L);
}

/* Adds to the set at 'set' prefix..name for the names of the fields of
** the value on top (its own and its __index tables') that begin with
** 'part'; functions only if 'methods'.  Pops the value. */
static void addnames (lua_State *L, int set, const char *prefix,
                      const char *part, int methods) {
  size_t lp = strlen(part);
  int depth;
  for (depth = 0; depth < 16; depth++) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_pushnil(L);
      while (lua_next(L, -2) != 0) {
        size_t l;
        const char *s;
        if (lua_type(L, -2) == LUA_TSTRING &&
            (s = lua_tolstring(L, -2, &l)) != NULL && isname(s, l) &&
            l >= lp && memcmp(s, part, lp) == 0 &&
            (!methods || lua_type(L, -1) == LUA_TFUNCTION)) {
          lua_pushfstring(L, "%s%s", prefix, s);
          lua_pushboolean(L, 1);
          lua_rawset(L, set);
        }
        lua_pop(L, 1);
      }
    }
    if (!lua_getmetatable(L, -1)) break;
    lua_pushliteral(L, "__index");
    lua_rawget(L, -2);
    lua_remove(L, -2);
    lua_remove(L, -2);  /* the value: its __index is next */
    if (lua_type(L, -1) != LUA_TTABLE) break;
  }
  lua_pop(L, 1);
}

/*
** The candidates for the word 'text' (argument 1): a name, or a path of
** names 'a.b.c' or 'a.b:c' to complete the last one.  Returns them as an
** array.
*/
static int candidates (lua_State *L) {
  const char *text = luaL_checkstring(L, 1);
  const char *sep = NULL, *p, *e;
  int set, k, n = 0;
  lua_newtable(L);
  set = lua_gettop(L);
  for (p = text; *p; p++)
    if (*p == '.' || *p == ':') sep = p;
  if (sep == NULL) {
    size_t l = strlen(text);
    for (k = 0; keywords[k] != NULL; k++)
      if (strncmp(keywords[k], text, l) == 0) {
        lua_pushboolean(L, 1);
        lua_setfield(L, set, keywords[k]);
      }
    lua_pushglobaltable(L);
    addnames(L, set, "", text, 0);
  }
  else {
    lua_pushlstring(L, text, sep + 1 - text);  /* the prefix */
    lua_pushglobaltable(L);
    for (p = text; p <= sep; p = e + 1) {  /* the value before 'sep' */
      for (e = p; *e != '.' && *e != ':'; e++)
        ;
      if (!isname(p, e - p) || (*e == ':' && e != sep)) {
        lua_pop(L, 1);
        lua_pushnil(L);
        break;
      }
      lua_pushlstring(L, p, e - p);
      rawfield(L);
    }
    addnames(L, set, lua_tostring(L, set + 1), sep + 1, *sep == ':');
    lua_pop(L, 1);  /* the prefix */
  }
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, set) != 0) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, ++n);
  }
  return 1;
}

static char **cands = NULL;  /* what 'nextcand' hands to readline */
static int ncands, icand;

static char *nextcand (const char *text, int state) {
  (void)text;
  if (state == 0) icand = 0;
  return icand < ncands ? cands[icand++] : NULL;
}

/* readline's completion: our candidates, never file names. */
char **ah_replcomplete (lua_State *L, const char *text) {
  char **matches = NULL;
  int top = lua_gettop(L), k;
  rl_attempted_completion_over = 1;
  rl_completion_suppress_append = 1;
  lua_pushcfunction(L, candidates);
  lua_pushstring(L, text);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
    ncands = (int)lua_rawlen(L, -1);
    cands = (char **)calloc(ncands + 1, sizeof(char *));
    for (k = 0; cands != NULL && k < ncands; k++) {
      lua_rawgeti(L, -1, k + 1);
      cands[k] = strdup(lua_tostring(L, -1));
      lua_pop(L, 1);
      if (cands[k] == NULL) ncands = k;
    }
    if (cands != NULL && ncands > 0)
      matches = rl_completion_matches(text, nextcand);
    for (k = icand; cands != NULL && k < ncands; k++)
      free(cands[k]);  /* none, unless readline stopped early */
    free(cands);
    cands = NULL;
    ncands = icand = 0;
  }
  lua_settop(L, top);
  return matches;
}

/* }====================================================== */
