/*
** The interactive REPL of the asynchost executable.
**
** On a terminal, GNU readline reads lines through its callback interface,
** fed by a uv_poll on stdin: the loop keeps running while the prompt
** waits, so background tasks go on (and print) while the user types.  Each
** input runs as a task of its own; when it ends, its values are printed
** and the prompt comes back.  Ctrl-C cancels the running input, or clears
** the line at the prompt.  Without a terminal (asynchost -i < file) lines
** are read with fgets between inputs, as lua.c does without readline.
**
** Output of tasks while the prompt is shown goes through wrappers of
** print, io.write and file:write that clear the prompt line first; the
** prompt and the line being edited are drawn again after the loop turn.
*/

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>

#include <readline/readline.h>
#include <readline/history.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "asynchost.h"             /* the internal API (bindings/) */
#include "../include/asynchost.h"
#include "host.h"


#define PROMPT   "> "
#define PROMPT2  ">> "

#define CHUNKNAME  "=stdin"

/* how a syntax error for a statement cut short ends */
#define EOFMARK  "<eof>"
#define MARKLEN  (sizeof(EOFMARK) - 1)

#define HISTFILE  ".asynchost_history"  /* in $HOME */
#define HISTMAX   1000                  /* lines kept in it */

#define REPR_DEPTH  3     /* tables deeper than this print as {...} */
#define REPR_ITEMS  100   /* entries shown per table */
#define REPR_WIDTH  76    /* a table wider than this takes a line per entry */
#define REPR_STRING 400   /* a longer string in a table is cut short */

#define EXITHINT  "(to exit, press Ctrl-C again or Ctrl-D, or type .exit)"


typedef struct repl {
  lua_State *L;             /* the main thread */
  ah_host *h;
  ah_sched *S;
  int tty;                  /* readline on a terminal, else plain lines */
  uv_poll_t input;          /* stdin is readable (tty) */
  uv_signal_t sigint, sigwinch, sigtstp;
  int nclosing;             /* handles still closing at the end */
  ah_waiter w;              /* hangs on the running input's task */
  ah_task *task;            /* that task, or NULL */
  int taskref;              /* a registry ref of it */
  int done;                 /* it has ended */
  int intref;               /* Ctrl-C cancelled it: where it was, or
                            ** LUA_NOREF */
  int ninputs;              /* inputs run, to name their tasks */
  char *chunk;              /* lines of an unfinished statement, or NULL */
  int shown;                /* the prompt is on the screen (tty) */
  int hidden;               /* cleared for output, to be drawn again */
  int endnl;                /* that output ended with a newline */
  int ctrlc;                /* Ctrl-C at an empty prompt: one more exits */
  int quit;
  char *histfile;           /* NULL: no history file */
  int fdflags;              /* stdin's file status flags, to restore */
} repl;

/* The running REPL: readline's callbacks and the signal handler take no
** argument.  NULL when none runs (the wrappers then only pass through). */
static repl *R = NULL;

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
static int printvalues (lua_State *L) {
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
** Output while the prompt is shown
** ======================================================= */

/* Before output: takes the prompt and the line off the screen. */
static void hideprompt (repl *r) {
  if (r->shown && !r->hidden) {
    rl_clear_visible_line();
    fflush(rl_outstream);
    r->hidden = 1;
    r->endnl = 1;
  }
}

/* After the loop turn: the output on a line of its own, then the prompt
** and the line being edited, the cursor where it was. */
static void showagain (repl *r) {
  if (!r->hidden) return;
  r->hidden = 0;
  fflush(stderr);
  if (!r->endnl) fputs("\n", stdout);
  fflush(stdout);
  rl_forced_update_display();
}

/* Did the arguments from 'first' on end with a newline (-1: no text)? */
static int endsinnl (lua_State *L, int first) {
  int k;
  for (k = lua_gettop(L); k >= first; k--) {
    size_t l;
    const char *s;
    if (lua_type(L, k) == LUA_TNUMBER) return 0;
    if (lua_type(L, k) != LUA_TSTRING) continue;
    s = lua_tolstring(L, k, &l);
    if (l > 0) return s[l - 1] == '\n';
  }
  return -1;
}

/* Calls the wrapped function (upvalue 1) with the arguments. */
static int passon (lua_State *L) {
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

static int wrapprint (lua_State *L) {
  repl *r = R;
  if (r == NULL || !r->shown) return passon(L);
  hideprompt(r);
  r->endnl = 1;
  return passon(L);
}

static int wrapwrite (lua_State *L) {  /* io.write */
  repl *r = R;
  int nl;
  if (r == NULL || !r->shown) return passon(L);
  hideprompt(r);
  nl = endsinnl(L, 1);
  if (nl >= 0) r->endnl = nl;
  return passon(L);
}

static int wrapfwrite (lua_State *L) {  /* file:write */
  repl *r = R;
  luaL_Stream *p = (luaL_Stream *)luaL_testudata(L, 1, LUA_FILEHANDLE);
  int nl;
  if (r == NULL || !r->shown || p == NULL ||
      (p->f != stdout && p->f != stderr))
    return passon(L);
  hideprompt(r);
  nl = endsinnl(L, 2);
  if (nl >= 0) r->endnl = nl;
  return passon(L);
}

/* Replaces t[name] (t on top) with 'fn' wrapping it; leaves t. */
static void wrap (lua_State *L, const char *name, lua_CFunction fn) {
  if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return;
  }
  lua_pushcclosure(L, fn, 1);
  lua_setfield(L, -2, name);
}

static int wrapoutput (lua_State *L) {
  lua_pushglobaltable(L);
  wrap(L, "print", wrapprint);
  lua_pop(L, 1);
  if (lua_getglobal(L, "io") == LUA_TTABLE)
    wrap(L, "write", wrapwrite);
  lua_pop(L, 1);
  if (luaL_getmetatable(L, LUA_FILEHANDLE) == LUA_TTABLE &&
      lua_getfield(L, -1, "__index") == LUA_TTABLE)
    wrap(L, "write", wrapfwrite);
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
static char **complete (const char *text, int start, int end) {
  lua_State *L = R->L;
  char **matches = NULL;
  int top = lua_gettop(L), k;
  (void)start; (void)end;
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


/* {======================================================
** History, in ~/.asynchost_history
** ======================================================= */

static void openhistory (repl *r) {
  const char *home = getenv("HOME");
  using_history();
  history_comment_char = '#';  /* timestamps keep entries of lines whole */
  history_write_timestamps = 1;
  history_multiline_entries = 1;
  if (home == NULL || *home == '\0') return;
  r->histfile = (char *)malloc(strlen(home) + sizeof("/" HISTFILE));
  if (r->histfile == NULL) return;
  sprintf(r->histfile, "%s/%s", home, HISTFILE);
  read_history(r->histfile);  /* none yet is fine */
}

/* Adds a chunk to the history and to the file, unless it repeats. */
static void addhistory (repl *r, const char *chunk) {
  HIST_ENTRY *last;
  if (!r->tty || chunk[strspn(chunk, " \t\n")] == '\0') return;
  last = history_get(history_base + history_length - 1);
  if (last != NULL && strcmp(last->line, chunk) == 0) return;
  add_history(chunk);
  if (r->histfile != NULL && append_history(1, r->histfile) != 0)
    write_history(r->histfile);  /* no file yet */
}

static void closehistory (repl *r) {
  if (r->histfile != NULL) {
    history_truncate_file(r->histfile, HISTMAX);
    free(r->histfile);
    r->histfile = NULL;
  }
  clear_history();
}

/* }====================================================== */


/* {======================================================
** Inputs as tasks
** ======================================================= */

/* Same as main.c's: the error value on top becomes a message string. */
static const char *errmsg (lua_State *L) {
  if (!lua_isstring(L, -1)) {
    if (luaL_getmetafield(L, -1, "__tostring") != LUA_TNIL) {
      lua_pushvalue(L, -2);
      if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING) {
        lua_replace(L, -2);
        return lua_tostring(L, -1);
      }
      lua_pop(L, 1);  /* what __tostring returned, or its error */
    }
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, -1));
    lua_replace(L, -2);
  }
  return lua_tostring(L, -1);
}

/* Messages go out without the program's name, as in lua's REPL. */
static void report (lua_State *L) {
  fflush(stdout);
  fprintf(stderr, "%s\n", errmsg(L));
  fflush(stderr);
  lua_pop(L, 1);
}

/* The input's task has ended (called by the scheduler: no Lua here). */
static void ondone (ah_sched *S, ah_waiter *w, ah_future *f) {
  repl *r = (repl *)((char *)w - offsetof(repl, w));
  (void)S; (void)f;
  r->done = 1;
}

static int spawninput (lua_State *L) {  /* name, function -> task */
  ah_spawn(ah_sched_get(L), L, 2, 0);
  ah_settaskname(L, 2, lua_tostring(L, 1));
  return 1;
}

/* Starts the function on top as the input's task. */
static void startinput (repl *r) {
  lua_State *L = r->L;
  lua_pushcfunction(L, spawninput);
  lua_pushfstring(L, "input %d", ++r->ninputs);
  lua_rotate(L, -3, 2);  /* spawninput, name, function */
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    report(L);
    return;
  }
  r->task = (ah_task *)lua_touserdata(L, -1);
  r->done = 0;
  ah_addwaiter(&r->task->f.waiters, &r->w);
  r->taskref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* task, where Ctrl-C found it (or nil) -> prints its results */
static int outcome (lua_State *L) {
  ah_future *f = (ah_future *)lua_touserdata(L, 1);
  if (f->state == AH_CANCELLED && lua_isstring(L, 2)) {
    lua_settop(L, 2);
    return lua_error(L);  /* "interrupted!" and where */
  }
  lua_settop(L, 1);
  if (ah_taskoutcome(L, 1, LUA_MULTRET, 0) != LUA_OK)
    return lua_error(L);  /* the message, with its traceback */
  lua_remove(L, 1);
  if (lua_gettop(L) == 0) return 0;
  lua_pushcfunction(L, printvalues);
  lua_insert(L, 1);
  if (lua_pcall(L, lua_gettop(L) - 1, 0, 0) != LUA_OK)
    luaL_error(L, "error printing the results (%s)", errmsg(L));
  return 0;
}

/* The input's task has ended: its values or its error. */
static void finishinput (repl *r) {
  lua_State *L = r->L;
  lua_pushcfunction(L, outcome);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->taskref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->intref);
  luaL_unref(L, LUA_REGISTRYINDEX, r->taskref);
  luaL_unref(L, LUA_REGISTRYINDEX, r->intref);
  r->taskref = r->intref = LUA_NOREF;
  r->task = NULL;
  r->done = 0;
  if (lua_pcall(L, 2, 0, 0) != LUA_OK)
    report(L);
}

/* Every task waits and nothing can wake them: the input's await fails
** with a DeadlockError naming what each waits on (as sched.c does for
** the main task). */
static int pushdeadlock (lua_State *L) {
  ah_pushtaskdump(L, "deadlock: every task waits and nothing can wake them");
  ah_pusherror(L, "DeadlockError", lua_tostring(L, -1));
  return 1;
}

static void deadlock (repl *r) {
  lua_State *L = r->L;
  ah_task *t = r->task;
  if (t->unwait == NULL) return;
  lua_pushcfunction(L, pushdeadlock);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    report(L);
    ah_cancel(r->S, t, "deadlock");
    return;
  }
  ah_setextra(L, t, "wakeerror");  /* pops the error */
  t->unwait(r->S, t);
  t->unwait = NULL;
  t->wake = AH_WAKE_ERROR;
  ah_ready(r->S, t);
}

/* Is the load error on top that of a statement that is not finished? */
static int incomplete (lua_State *L, int status) {
  size_t l;
  const char *msg;
  if (status != LUA_ERRSYNTAX)
    return 0;
  msg = lua_tolstring(L, -1, &l);
  return l >= MARKLEN && strcmp(msg + l - MARKLEN, EOFMARK) == 0;
}

static const char help[] =
  "Each input runs as a task on the event loop: it may await (async.sleep(1),\n"
  "http.get(url)...) while tasks started earlier keep running.\n"
  "  expression       prints its values ('=expr' works too)\n"
  "  statements       run; an unfinished statement continues at '>>'\n"
  "  async, await     pre-bound: async = require \"asynchost\", await = "
  "async.await\n"
  "  .tasks           the live tasks: what each waits on, and where\n"
  "  .help            this text\n"
  "  .exit            leaves, as Ctrl-D does (pending tasks are cancelled)\n"
  "Ctrl-C cancels the running input; at the prompt it clears the line, and\n"
  "twice on an empty line it leaves.  Tab completes names and fields\n"
  "(async.ga<Tab>, t:ca<Tab>).  History is kept in ~/" HISTFILE ".\n";

static int dumptasks (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  if (S->nlive == 0)
    lua_pushliteral(L, "no live tasks");
  else
    ah_pushtaskdump(L, lua_pushfstring(L, "%d live task%s:", S->nlive,
                                       S->nlive == 1 ? "" : "s"));
  fputs(lua_tostring(L, -1), stdout);
  fputs("\n", stdout);
  fflush(stdout);
  return 0;
}

/* '.name' at the start of an input: runs the command, returns 1; 0 if
** 'line' is no command (Lua code: '.5' is a number). */
static int command (repl *r, const char *line) {
  lua_State *L = r->L;
  size_t n = 0;
  if (line[0] != '.' || !((line[1] | 32) >= 'a' && (line[1] | 32) <= 'z'))
    return 0;
  while (line[1 + n] != '\0' && !strchr(" \t\n", line[1 + n])) n++;
  if (line[1 + n + strspn(line + 1 + n, " \t\n")] != '\0')
    n = 0;  /* something after the word: not a command */
  if (n == 4 && strncmp(line + 1, "help", 4) == 0)
    fputs(help, stdout);
  else if (n == 5 && strncmp(line + 1, "tasks", 5) == 0) {
    lua_pushcfunction(L, dumptasks);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) report(L);
  }
  else if (n == 4 && strncmp(line + 1, "exit", 4) == 0)
    r->quit = 1;
  else {
    fflush(stdout);
    fprintf(stderr, "unknown command '%s' (.help lists them)\n", line);
    fflush(stderr);
  }
  fflush(stdout);
  return 1;
}

/*
** A line was read.  The first line of an input is a command, or an
** expression if 'return <line>;' compiles (lua.c's rule; '=exp' is
** 'return exp'), else statements, which may need more lines: then the
** lines wait in 'r->chunk' for the next one.  A complete input starts as
** a task.
*/
static void doline (repl *r, const char *line) {
  lua_State *L = r->L;
  int status;
  size_t l;
  const char *s;
  if (r->chunk == NULL) {
    if (line[strspn(line, " \t\n")] == '\0' || command(r, line))
      return;
    if (line[0] == '=')
      lua_pushfstring(L, "return %s;", line + 1);
    else
      lua_pushfstring(L, "return %s;", line);
    s = lua_tolstring(L, -1, &l);
    status = luaL_loadbuffer(L, s, l, CHUNKNAME);
    lua_remove(L, -2);
    if (status == LUA_OK) {
      addhistory(r, line);
      startinput(r);
      return;
    }
    lua_pop(L, 1);
    lua_pushstring(L, line);
  }
  else {
    lua_pushfstring(L, "%s\n%s", r->chunk, line);
    free(r->chunk);
    r->chunk = NULL;
  }
  s = lua_tolstring(L, -1, &l);
  status = luaL_loadbuffer(L, s, l, CHUNKNAME);
  if (incomplete(L, status)) {
    lua_pop(L, 1);
    r->chunk = strdup(s);
    lua_pop(L, 1);
    if (r->chunk == NULL) {
      fputs("not enough memory\n", stderr);
      fflush(stderr);
    }
    return;
  }
  addhistory(r, s);
  lua_remove(L, -2);  /* the source */
  if (status == LUA_OK)
    startinput(r);
  else
    report(L);
}

/* The prompt for the next line: _PROMPT or _PROMPT2 if a string or a
** number (read raw: no code runs at the prompt), else the default. */
static const char *pushprompt (repl *r) {
  lua_State *L = r->L;
  int t;
  lua_pushglobaltable(L);
  lua_pushstring(L, r->chunk == NULL ? "_PROMPT" : "_PROMPT2");
  t = lua_rawget(L, -2);
  lua_remove(L, -2);
  if (t != LUA_TSTRING && t != LUA_TNUMBER) {
    lua_pop(L, 1);
    lua_pushstring(L, r->chunk == NULL ? PROMPT : PROMPT2);
  }
  return lua_tostring(L, -1);
}

/* }====================================================== */


/* {======================================================
** The terminal: readline on the loop
** ======================================================= */

static void onreadable (uv_poll_t *p, int status, int events);
static void online (char *line);

/* Shows the prompt and reads the next line. */
static void showprompt (repl *r) {
  using_history();  /* history browsing starts from the end again */
  rl_callback_handler_install(pushprompt(r), online);
  lua_pop(r->L, 1);
  r->shown = 1;
  r->hidden = 0;
  uv_poll_start(&r->input, UV_READABLE, onreadable);
}

static void hideinput (repl *r) {
  rl_callback_handler_remove();  /* the terminal as it was */
  r->shown = r->hidden = 0;
  uv_poll_stop(&r->input);
}

/* readline has read a line (NULL at end of file, Ctrl-D). */
static void online (char *line) {
  repl *r = R;
  const char *bp = rl_variable_value("enable-bracketed-paste");
  hideinput(r);
  if (line == NULL) {
    if (bp == NULL || strcmp(bp, "on") != 0)
      fputs("\n", stdout);  /* else readline went to a new line */
    fflush(stdout);
    r->quit = 1;
    return;
  }
  doline(r, line);
  free(line);
  if (r->task == NULL && !r->quit)
    showprompt(r);
}

static void onreadable (uv_poll_t *p, int status, int events) {
  repl *r = (repl *)p->data;
  (void)events;
  if (status < 0) {  /* stdin is gone */
    online(NULL);
    return;
  }
  r->ctrlc = 0;
  rl_callback_read_char();
}

/* Ctrl-C at the prompt: the line and any unfinished input are dropped; on
** an empty prompt, the first says how to exit and the second exits. */
static void interruptprompt (repl *r) {
  int empty = (rl_end == 0 && r->chunk == NULL);
  rl_free_line_state();
  rl_callback_sigcleanup();  /* a search or key sequence cut short */
  rl_point = rl_end;
  rl_redisplay();
  fputs("^C\n", stdout);  /* before readline's "\r" in hideinput */
  fflush(stdout);
  hideinput(r);
  free(r->chunk);
  r->chunk = NULL;
  if (empty && r->ctrlc) {
    r->quit = 1;
    fflush(stdout);
    return;
  }
  if (empty) fputs(EXITHINT "\n", stdout);
  r->ctrlc = empty;
  fflush(stdout);
  showprompt(r);
}

static void onwinch (uv_signal_t *h, int signum) {
  repl *r = (repl *)h->data;
  (void)signum;
  if (r->shown) rl_resize_terminal();
  else rl_reset_screen_size();
}

/* Ctrl-Z: the terminal as it was while stopped; back, the prompt and the
** line being edited again (readline's own handler does this when it has
** the signals, which the loop has here). */
static void onstop (uv_signal_t *h, int signum) {
  repl *r = (repl *)h->data;
  struct sigaction dfl, old;
  char *text = NULL;
  int point = rl_point, shown = r->shown;
  if (shown) {
    text = rl_copy_text(0, rl_end);
    fputs("\n", stdout);
    hideinput(r);
  }
  fflush(stdout);
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigaction(signum, &dfl, &old);
  raise(signum);  /* stopped here until continued */
  sigaction(signum, &old, NULL);
  if (shown) {
    showprompt(r);
    if (text != NULL) {
      rl_insert_text(text);
      rl_point = point <= rl_end ? point : rl_end;
      rl_redisplay();
    }
  }
  free(text);
}

/* }====================================================== */


/* {======================================================
** Ctrl-C
** ======================================================= */

/*
** libuv's handler makes the loop call 'onsigint' on its next turn; ours,
** chained before it, sees when a Ctrl-C comes while an earlier one is
** still unseen: the loop is stuck in code that never awaits (a busy
** loop).  The running task then gets an 'interrupted!' error at its next
** instruction (a hook, as lua.c does); a third such Ctrl-C ends the
** process as the default action would.
*/
static struct sigaction uvsigint;  /* libuv's handler, which we chain */
static volatile sig_atomic_t unseen = 0;  /* Ctrl-C the loop hasn't seen */
static volatile sig_atomic_t handled = 0;  /* of those, how many the hook
                                          ** answered */
static pthread_t mainthread;
static struct termios ttymodes;  /* as the REPL found the terminal */
static volatile sig_atomic_t ttysaved = 0;

static void stophook (lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (R != NULL) hideprompt(R);
  fputs("\n", stdout);  /* after the terminal's ^C */
  fflush(stdout);
  luaL_error(L, "interrupted!");
}

static void rawsigint (int signum, siginfo_t *info, void *ctx) {
  repl *r = R;
  if (unseen++ > 0 && r != NULL && pthread_equal(pthread_self(), mainthread)) {
    if (unseen > 2) {  /* the terminal as it was, if readline had it */
      if (ttysaved) tcsetattr(0, TCSANOW, &ttymodes);
      signal(SIGINT, SIG_DFL);
      raise(SIGINT);
      return;
    }
    if (r->S->current != NULL) {
      lua_sethook(r->S->current->co, stophook,
                  LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
      handled = unseen;
    }
  }
  if (uvsigint.sa_flags & SA_SIGINFO)
    uvsigint.sa_sigaction(signum, info, ctx);
  else if (uvsigint.sa_handler != SIG_DFL && uvsigint.sa_handler != SIG_IGN)
    uvsigint.sa_handler(signum);
}

/* co -> where it waits, as lua.c reports an interrupt */
static int wherewaits (lua_State *L) {
  luaL_traceback(L, lua_tothread(L, 1), "interrupted!", 0);
  return 1;
}

/* Ctrl-C while an input runs: its task is cancelled. */
static void interruptinput (repl *r) {
  lua_State *L = r->L;
  ah_task *t = r->task;
  if (r->S->sigintusers > 0 || t->f.state != AH_PENDING)
    return;  /* async.signal("SIGINT") has it; or too late */
  if (r->intref == LUA_NOREF) {
    int ok = 0;
    if (t->started && t->unwait != NULL) {  /* suspended: where? */
      lua_pushcfunction(L, wherewaits);
      lua_rawgeti(L, LUA_REGISTRYINDEX, r->taskref);
      lua_getiuservalue(L, -1, 1);  /* its coroutine */
      lua_remove(L, -2);
      ok = (lua_pcall(L, 1, 1, 0) == LUA_OK);
      if (!ok) lua_pop(L, 1);
    }
    if (!ok) lua_pushliteral(L, "interrupted!");
    r->intref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  fputs("\n", stdout);  /* after the terminal's ^C */
  fflush(stdout);
  ah_cancel(r->S, t, "interrupted");
}

static void onsigint (uv_signal_t *h, int signum) {
  repl *r = (repl *)h->data;
  (void)signum;
  unseen = 0;
  if (handled > 0) {  /* the hook did what this Ctrl-C asked */
    handled--;
    return;
  }
  if (r->task != NULL)
    interruptinput(r);
  else if (r->shown)
    interruptprompt(r);
}

/* }====================================================== */


/* {======================================================
** The REPL
** ======================================================= */

/* Runs the loop until the input's task ends, or Ctrl-D. */
static void runloop (repl *r) {
  while (!r->quit || r->task != NULL) {
    int more = ah_host_step(r->h, 1);
    if (more < 0) break;
    if (r->hidden) showagain(r);
    if (r->done) {
      finishinput(r);
      if (r->S->rcount > 0)  /* tasks it spawned start before the prompt */
        ah_host_step(r->h, 0);
      if (r->tty && !r->quit) showprompt(r);
      if (!r->tty) return;
    }
    else if (!more && r->task != NULL)
      deadlock(r);
    else if (!r->tty && r->task == NULL)
      return;
  }
}

/* Reads a line from a stdin that is no terminal; 0 at end of file. */
static int plainline (repl *r) {
  lua_State *L = r->L;
  char buf[512];
  luaL_Buffer b;
  int got = 0;
  fputs(pushprompt(r), stdout);
  lua_pop(L, 1);
  fflush(stdout);
  luaL_buffinit(L, &b);
  while (fgets(buf, sizeof(buf), stdin) != NULL) {
    size_t l = strlen(buf);
    got = 1;
    if (l > 0 && buf[l - 1] == '\n') {
      luaL_addlstring(&b, buf, l - 1);
      break;
    }
    luaL_addlstring(&b, buf, l);  /* a part of a long line */
  }
  luaL_pushresult(&b);
  if (!got) lua_pop(L, 1);
  return got;
}

static void onclosed (uv_handle_t *h) {
  ((repl *)h->data)->nclosing--;
}

static void closehandle (repl *r, uv_handle_t *h) {
  r->nclosing++;
  uv_close(h, onclosed);
}

/* async = require "asynchost" and await = async.await, unless taken. */
static int prebind (lua_State *L) {
  if (lua_getglobal(L, "async") == LUA_TNIL) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "asynchost");
    lua_call(L, 1, 1);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "async");
  }
  if (lua_getglobal(L, "await") == LUA_TNIL && lua_istable(L, -2)) {
    lua_getfield(L, -2, "await");
    lua_setglobal(L, "await");
  }
  return 0;
}

void ah_replglobals (lua_State *L) {
  lua_pushcfunction(L, prebind);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) report(L);
}

/* Readline on the terminal; 0 if stdin cannot be polled. */
static int startterminal (repl *r) {
  uv_loop_t *loop = ah_host_loop(r->h);
  int ok;
  r->fdflags = fcntl(0, F_GETFL);
  ok = (uv_poll_init(loop, &r->input, 0) == 0);
  if (r->fdflags != -1)
    fcntl(0, F_SETFL, r->fdflags);  /* blocking again: stdout may share it */
  if (!ok) return 0;
  ttysaved = (tcgetattr(0, &ttymodes) == 0);
  r->input.data = r;
  uv_signal_init(loop, &r->sigwinch);
  r->sigwinch.data = r;
  uv_signal_start(&r->sigwinch, onwinch, SIGWINCH);
  uv_unref((uv_handle_t *)&r->sigwinch);
  uv_signal_init(loop, &r->sigtstp);
  r->sigtstp.data = r;
  uv_signal_start(&r->sigtstp, onstop, SIGTSTP);
  uv_unref((uv_handle_t *)&r->sigtstp);
  rl_readline_name = "asynchost";
  rl_catch_signals = 0;   /* the loop handles them */
  rl_catch_sigwinch = 0;
  rl_change_environment = 0;  /* no LINES and COLUMNS in the environment */
  rl_attempted_completion_function = complete;
  rl_completer_word_break_characters = " \t\n\"'`@$><=;|&{(+-*/%^~#,[]}";
  rl_initialize();
  openhistory(r);
  lua_pushcfunction(r->L, wrapoutput);
  if (lua_pcall(r->L, 0, 0, 0) != LUA_OK) report(r->L);
  return 1;
}

static void endterminal (repl *r) {
  if (r->shown) hideinput(r);
  closehistory(r);
  closehandle(r, (uv_handle_t *)&r->input);
  closehandle(r, (uv_handle_t *)&r->sigwinch);
  closehandle(r, (uv_handle_t *)&r->sigtstp);
  if (r->fdflags != -1)
    fcntl(0, F_SETFL, r->fdflags);
}

/* At the end of the input, an unfinished statement is an error. */
static void endchunk (repl *r) {
  lua_State *L = r->L;
  if (r->chunk == NULL) return;
  if (luaL_loadbuffer(L, r->chunk, strlen(r->chunk), CHUNKNAME) != LUA_OK)
    report(L);
  else
    lua_pop(L, 1);
  free(r->chunk);
  r->chunk = NULL;
}

int ah_repl (lua_State *L) {
  int top = lua_gettop(L);
  struct sigaction sa;
  repl r;
  memset(&r, 0, sizeof(r));
  r.L = L;
  r.h = ah_host_of(L);
  r.S = ah_sched_get(L);
  r.taskref = r.intref = LUA_NOREF;
  r.w.fn = ondone;
  ah_replglobals(L);
  R = &r;
  uv_signal_init(ah_host_loop(r.h), &r.sigint);
  r.sigint.data = &r;
  uv_signal_start(&r.sigint, onsigint, SIGINT);
  uv_unref((uv_handle_t *)&r.sigint);
  mainthread = pthread_self();  /* chain ours before libuv's handler */
  unseen = handled = 0;
  sigaction(SIGINT, NULL, &uvsigint);
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = rawsigint;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  r.tty = (uv_guess_handle(0) == UV_TTY) && startterminal(&r);
  if (r.tty) {
    showprompt(&r);
    runloop(&r);
    endchunk(&r);
    endterminal(&r);
  }
  else {
    while (!r.quit && plainline(&r)) {
      doline(&r, lua_tostring(L, -1));
      lua_pop(L, 1);
      if (r.task != NULL) runloop(&r);
    }
    if (!r.quit) {
      fputs("\n", stdout);
      endchunk(&r);
    }
    fflush(stdout);
  }
  sigaction(SIGINT, &uvsigint, NULL);  /* libuv's alone again */
  ttysaved = 0;
  closehandle(&r, (uv_handle_t *)&r.sigint);
  while (r.nclosing > 0 && ah_host_step(r.h, 1) >= 0)
    ;
  R = NULL;
  lua_settop(L, top);
  return 0;
}

/* }====================================================== */
