/*
** A plain read-eval-print loop, as the standalone 'lua' has without
** readline: lines come from stdin by fgets, each chunk runs as a task.
*/

#include <stdio.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "../include/asynchost.h"
#include "host.h"


#define PROMPT   "> "
#define PROMPT2  ">> "

#define CHUNKNAME  "=stdin"

/* how a syntax error for a statement cut short ends */
#define EOFMARK  "<eof>"
#define MARKLEN  (sizeof(EOFMARK) - 1)


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
  fprintf(stderr, "%s\n", errmsg(L));
  fflush(stderr);
  lua_pop(L, 1);
}


/* Shows _PROMPT (or _PROMPT2), through tostring, or the default. */
static void prompt (lua_State *L, int first) {
  if (lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2") == LUA_TNIL)
    fputs(first ? PROMPT : PROMPT2, stdout);
  else {
    fputs(luaL_tolstring(L, -1, NULL), stdout);
    lua_pop(L, 1);  /* the string */
  }
  lua_pop(L, 1);  /* the global */
  fflush(stdout);
}


/*
** Prompts and pushes the next line, without its newline, however long.
** A first line '=exp' becomes 'return exp'.  Returns 0, pushing nothing,
** at end of file.
*/
static int pushline (lua_State *L, int first) {
  char buf[512];
  luaL_Buffer b;
  int got = 0;
  prompt(L, first);
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
  if (!got) {
    lua_pop(L, 1);
    return 0;
  }
  if (first && *lua_tostring(L, -1) == '=') {
    lua_pushfstring(L, "return %s", lua_tostring(L, -1) + 1);
    lua_remove(L, -2);
  }
  return 1;
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


/*
** Reads and compiles one chunk: a line as 'return <line>;' if that
** compiles, else as statements, reading more lines while they are cut
** short.  Leaves the function or the error on top; -1 at end of file.
*/
static int loadchunk (lua_State *L) {
  int status;
  size_t l;
  const char *s;
  if (!pushline(L, 1))
    return -1;
  s = lua_pushfstring(L, "return %s;", lua_tostring(L, -1));
  status = luaL_loadbuffer(L, s, strlen(s), CHUNKNAME);
  if (status == LUA_OK) {  /* line, return line, function */
    lua_replace(L, -3);
    lua_pop(L, 1);
    return LUA_OK;
  }
  lua_pop(L, 2);  /* line */
  for (;;) {
    s = lua_tolstring(L, -1, &l);
    status = luaL_loadbuffer(L, s, l, CHUNKNAME);
    if (!incomplete(L, status) || !pushline(L, 0))
      break;  /* a function, an error, or no more input for the error */
    lua_remove(L, -2);  /* the error: lines, next line */
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
  lua_remove(L, -2);  /* the source */
  return status;
}


/* Prints, with the global 'print', what the chunk returned. */
static void printresults (lua_State *L, int base) {
  int n = lua_gettop(L) - base;
  if (n > 0) {
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getglobal(L, "print");
    lua_insert(L, base + 1);
    if (lua_pcall(L, n, 0, 0) != LUA_OK) {
      fprintf(stderr, "error calling 'print' (%s)\n", errmsg(L));
      fflush(stderr);
    }
  }
}


int ah_repl (lua_State *L) {
  int base = lua_gettop(L);  /* keep what the caller has */
  int status;
  while ((status = loadchunk(L)) != -1) {
    if (status == LUA_OK)
      status = ah_host_call(ah_host_of(L), 0, LUA_MULTRET);
    if (status == LUA_OK)
      printresults(L, base);
    else
      report(L);
    lua_settop(L, base);
  }
  fputs("\n", stdout);
  fflush(stdout);
  return 0;
}
