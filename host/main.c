/*
** The asynchost executable: the standalone 'lua' interpreter, with the
** same options and 'arg' table (lua/lua lua.c), except that every chunk
** runs as a task on the libuv loop.  It is the first program that embeds
** asynchost through its public API (include/asynchost.h): a host with a
** loop of its own, ah_host_call for every chunk, ah_host_close at the end.
*/

#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "../include/asynchost.h"
#include "asynchost.h"  /* the internal one: ah_trace_open */
#include "host.h"


#ifndef AH_VERSION_STRING
#define AH_VERSION_STRING "0.1.0"
#endif

#define AH_PROGNAME "asynchost"  /* when argv[0] is missing or empty */

#define INITVAR   "LUA_INIT"
#define INITVARV  INITVAR LUA_VERSUFFIX  /* LUA_INIT_5_4, tried first */

/* what the options ask for: bits of the result of 'scanargs' */
#define OPT_ERROR    1   /* a bad option; then no other bit is set */
#define OPT_INTER    2   /* -i */
#define OPT_VERSION  4   /* -v, and -i */
#define OPT_EXEC     8   /* -e */
#define OPT_NOENV    16  /* -E */


static const char *progname = AH_PROGNAME;

/* --trace FILE, --top, -X debug (bindings/trace.c) */
static const char *tracefile = NULL;
static int traceflags = 0;


static void message (const char *pname, const char *msg) {
  if (pname != NULL)
    fprintf(stderr, "%s: ", pname);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}


static void usage (const char *badopt, const char *next) {
  if (badopt[1] == 'X' && (badopt[2] != '\0' || next != NULL))
    fprintf(stderr, "%s: unknown mode '-X %s' (known: -X debug)\n", progname,
            badopt[2] != '\0' ? badopt + 2 : next);
  else if (badopt[1] == 'e' || badopt[1] == 'l' || badopt[1] == 'X' ||
      strcmp(badopt, "--trace") == 0)
    fprintf(stderr, "%s: '%s' needs argument\n", progname, badopt);
  else
    fprintf(stderr, "%s: unrecognized option '%s'\n", progname, badopt);
  fprintf(stderr,
    "usage: %s [options] [script [args]]\n"
    "Available options are:\n"
    "  -e stat   execute string 'stat'\n"
    "  -i        enter interactive mode after executing 'script'\n"
    "  -l mod    require library 'mod' into global 'mod'\n"
    "  -l g=mod  require library 'mod' into global 'g'\n"
    "  -v        show version information\n"
    "  -E        ignore environment variables\n"
    "  -W        turn warnings on\n"
    "  --        stop handling options\n"
    "  -         stop handling options and execute stdin\n"
    "  --trace FILE  write a trace of the tasks (.json, or .html)\n"
    "  --top     a live dashboard of the tasks on stderr\n"
    "  -X debug  debug mode (slow steps, leaks; see docs/tracing.md)\n",
    progname);
  fflush(stderr);
}


/*
** Replaces the error value on top with a string.  ah_runtask already
** made one of most errors (message and traceback); for the rest, do what
** lua.c's msghandler does: __tostring, or name the type.
*/
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


/* If 'status' is an error, prints and pops the error value on top. */
static int report (lua_State *L, int status) {
  if (status != LUA_OK) {
    message(progname, errmsg(L));
    lua_pop(L, 1);
  }
  return status;
}


static void version (void) {
  printf("asynchost %s (libuv %s)\n", AH_VERSION_STRING, uv_version_string());
  printf("%s\n", LUA_COPYRIGHT);
  fflush(stdout);
}


/*
** The global 'arg': the script's name at index 0, what follows it at
** 1..n, and the interpreter and its options at negative indices.  With no
** script ('script' == 0), the interpreter's name is at 0.
*/
static void makearg (lua_State *L, char **argv, int argc, int script) {
  int narg = argc - script - 1;  /* positive indices */
  int i;
  lua_createtable(L, narg > 0 ? narg : 0, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}


/* Runs the chunk just loaded, if it loaded, as a task. */
static int dochunk (lua_State *L, int status) {
  if (status == LUA_OK)
    status = ah_host_call(ah_host_of(L), 0, 0);
  return report(L, status);
}


static int dofile (lua_State *L, const char *name) {
  return dochunk(L, luaL_loadfile(L, name));  /* NULL is stdin */
}


static int dostring (lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}


/* -l mod: global mod = require("mod"); -l g=mod: global g = ... */
static int dolib (lua_State *L, const char *spec) {
  const char *eq = strchr(spec, '=');
  int status;
  if (eq != NULL) {
    lua_pushlstring(L, spec, eq - spec);  /* the global's name */
    spec = eq + 1;  /* the module's */
  }
  else
    lua_pushstring(L, spec);
  lua_getglobal(L, "require");
  lua_pushstring(L, spec);
  status = ah_host_call(ah_host_of(L), 1, 1);  /* name, result or error */
  if (status == LUA_OK)
    lua_setglobal(L, lua_tostring(L, -2));
  else
    report(L, status);
  lua_pop(L, 1);  /* the name */
  return status;
}


/* Pushes arg[1] .. arg[#arg], which may have changed since 'makearg'. */
static int pushargs (lua_State *L) {
  int i, n;
  if (lua_getglobal(L, "arg") != LUA_TTABLE)
    luaL_error(L, "'arg' is not a table");
  n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (i = 1; i <= n; i++)
    lua_rawgeti(L, -i, i);
  lua_remove(L, -n - 1);  /* the table */
  return n;
}


/* 'argv' starts at the script's name; '-' is stdin unless after '--' */
static int doscript (lua_State *L, char **argv) {
  const char *fname = argv[0];
  int status;
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0)
    fname = NULL;
  status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = pushargs(L);
    status = ah_host_call(ah_host_of(L), n, 0);
  }
  return report(L, status);
}


/*
** Subcommands: 'asynchost serve [options]' runs the test server of the
** labs (lua/asynchost/testserver.lua) until Ctrl-C; 'asynchost lab ...'
** is the learner's runner of the labs (lua/asynchost/lab.lua).  A script
** of that name in the current directory wins: 'asynchost serve' runs it,
** as 'lua serve' would.  Only asynchost's own options (--trace, --top,
** -X debug) may come before it: 'asynchost --top serve'.  Each runs as the
** main task with 'arg' holding its options, through the module's
** 'main(arg)'.
*/
static const char *const subcommands[][2] = {
  {"serve", "asynchost.testserver"},
  {"lab", "asynchost.lab"},
};

/* The module of the subcommand that 'argv' asks for, or NULL. */
static const char *subcommand (char **argv, int script) {
  size_t i;
  int k;
  FILE *f;
  if (script < 1)
    return NULL;
  for (k = 1; k < script; k++) {  /* only our own options before it */
    const char *a = argv[k];
    if (strcmp(a, "--trace") == 0 || strcmp(a, "-X") == 0)
      k++;  /* and its argument */
    else if (strcmp(a, "--top") != 0 && strncmp(a, "--trace=", 8) != 0 &&
             strncmp(a, "-X", 2) != 0)
      return NULL;
  }
  for (i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
    if (strcmp(argv[script], subcommands[i][0]) != 0)
      continue;
    f = fopen(argv[script], "r");
    if (f != NULL) {
      fclose(f);
      return NULL;
    }
    return subcommands[i][1];
  }
  return NULL;
}


/* Runs 'require(module).main(arg)' as the main task. */
static int dosubcommand (lua_State *L, const char *module) {
  int status;
  lua_pushfstring(L, "return require('%s').main(arg)", module);
  status = luaL_loadbuffer(L, lua_tostring(L, -1), lua_rawlen(L, -1),
                           "=asynchost");
  lua_remove(L, -2);
  if (status == LUA_OK) {
    status = ah_host_call(ah_host_of(L), 0, 1);
    if (status == LUA_OK) {
      int ok = lua_toboolean(L, -1);  /* false: main printed why */
      lua_pop(L, 1);
      return ok;
    }
  }
  report(L, status);
  return 0;
}


/* asynchost's own options at argv[*i]: --trace FILE, --trace=FILE, --top,
** -X debug; 0 if it is none of them (or lacks its argument). */
static int traceopt (char **argv, int *i) {
  const char *a = argv[*i];
  if (strcmp(a, "--top") == 0)
    traceflags |= AH_TRACE_TOP;
  else if (strncmp(a, "--trace=", 8) == 0 && a[8] != '\0')
    tracefile = a + 8;
  else if (strcmp(a, "--trace") == 0 && argv[*i + 1] != NULL)
    tracefile = argv[++*i];
  else if (a[1] == 'X') {
    const char *x = (a[2] != '\0') ? a + 2 : argv[*i + 1];
    if (x == NULL || strcmp(x, "debug") != 0) return 0;
    if (a[2] == '\0') ++*i;
    traceflags |= AH_TRACE_DEBUG;
  }
  else
    return 0;
  return 1;
}


/*
** Checks the options, before any Lua code runs.  Sets '*first' to the
** index of the script's name (0 if none), or of the bad option if the
** result is OPT_ERROR.
*/
static int scanargs (char **argv, int *first) {
  int opts = 0;
  int i;
  *first = 0;
  if (argv[0] == NULL)
    return 0;  /* no program name (argc == 0): no options either */
  for (i = 1; argv[i] != NULL; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || a[1] == '\0') {  /* a name, or '-' for stdin */
      *first = i;
      return opts;
    }
    switch (a[1]) {
      case '-':  /* '--': what follows, if anything, is the script */
        if (a[2] != '\0') {
          if (!traceopt(argv, &i))
            goto bad;
          continue;
        }
        if (argv[i + 1] != NULL)
          *first = i + 1;
        return opts;
      case 'E':
        opts |= OPT_NOENV;
        break;
      case 'W':
        break;  /* done by 'runargs', in order */
      case 'i':
        opts |= OPT_INTER | OPT_VERSION;
        break;
      case 'v':
        opts |= OPT_VERSION;
        break;
      case 'e':
        opts |= OPT_EXEC;
        /* FALLTHROUGH */
      case 'l':
        if (a[2] == '\0') {  /* the argument is the next word */
          if (argv[i + 1] == NULL || argv[i + 1][0] == '-')
            goto bad;
          i++;
        }
        continue;
      case 'X':
        if (!traceopt(argv, &i))
          goto bad;
        continue;
      default:
        goto bad;
    }
    if (a[2] != '\0')  /* -E, -W, -i and -v take nothing */
      goto bad;
  }
  return opts;
 bad:
  *first = i;
  return OPT_ERROR;
}


/* Does -e, -l and -W in order, up to argv[n]; 0 if some code failed. */
static int runargs (lua_State *L, char **argv, int n) {
  int i;
  for (i = 1; i < n; i++) {
    const char *a = argv[i];
    if (a[1] == 'e' || a[1] == 'l') {
      const char *extra = (a[2] != '\0') ? a + 2 : argv[++i];
      int status = (a[1] == 'e')
                   ? dostring(L, extra, "=(command line)")
                   : dolib(L, extra);
      if (status != LUA_OK)
        return 0;
    }
    else if (a[1] == 'W')
      lua_warning(L, "@on", 0);
    else if (strcmp(a, "--trace") == 0 || strcmp(a, "-X") == 0)
      i++;  /* and its argument */
  }
  return 1;
}


/* LUA_INIT_5_4, or else LUA_INIT: some code, or '@' and a file name */
static int doinit (lua_State *L) {
  const char *name = "=" INITVARV;
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=" INITVAR;
    init = getenv(name + 1);
  }
  if (init == NULL)
    return LUA_OK;
  else if (init[0] == '@')
    return dofile(L, init + 1);
  else
    return dostring(L, init, name);
}


/*
** Everything, in protected mode.  Errors are reported where they happen;
** returns true if all went well.
*/
static int pmain (lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script, opts;
  const char *sub;
  luaL_checkversion(L);
  if (argv[0] != NULL && argv[0][0] != '\0')
    progname = argv[0];
  opts = scanargs(argv, &script);
  if (opts == OPT_ERROR) {
    usage(argv[script], argv[script + 1]);
    return 0;
  }
  if (opts & OPT_VERSION)
    version();
  /* the libraries are open already (ah_host_new, honouring -E) */
  makearg(L, argv, argc, script);
  lua_gc(L, LUA_GCRESTART);  /* stopped by 'main' */
  lua_gc(L, LUA_GCGEN, 0, 0);
  ah_trace_sigquit(L);  /* Ctrl-\ prints the tasks */
  if ((tracefile || traceflags & AH_TRACE_DEBUG) &&
      !ah_trace_open(L, tracefile, (tracefile ? AH_TRACE_RECORD : 0) |
                                   (traceflags & AH_TRACE_DEBUG))) {
    message(progname, lua_tostring(L, -1));
    return 0;
  }
  if (!(opts & OPT_NOENV) && doinit(L) != LUA_OK)
    return 0;
  if (!runargs(L, argv, (script > 0) ? script : argc))
    return 0;
  if ((traceflags & AH_TRACE_TOP) && script == 0)
    message(progname, "--top needs a script: no dashboard");
  else if ((traceflags & AH_TRACE_TOP) &&
           !ah_trace_open(L, NULL, AH_TRACE_TOP)) {
    message(progname, lua_tostring(L, -1));  /* the script's dashboard */
    return 0;
  }
  if ((sub = subcommand(argv, script)) != NULL) {
    if (!dosubcommand(L, sub))
      return 0;
  }
  else if (script > 0 && doscript(L, argv + script) != LUA_OK)
    return 0;
  if (opts & OPT_INTER)
    ah_repl(L);
  else if (script == 0 && !(opts & (OPT_EXEC | OPT_VERSION))) {
    if (uv_guess_handle(0) == UV_TTY) {
      version();
      ah_repl(L);
    }
    else {  /* stdin, as 'asynchost -', with the REPL's globals */
      ah_replglobals(L);
      if (dofile(L, NULL) != LUA_OK)
        return 0;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}


int main (int argc, char **argv) {
  int status, ok, script;
  int opts = scanargs(argv, &script);  /* -E must be known before the host */
  ah_host *h = ah_host_new(NULL, (opts != OPT_ERROR && (opts & OPT_NOENV))
                                 ? AH_NOENV : 0);
  lua_State *L;
  if (h == NULL) {  /* EINVAL: ah_host_new said why */
    message(argv[0], errno == EINVAL ? "cannot create state"
                                     : "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  L = ah_host_state(h);
  lua_gc(L, LUA_GCSTOP);  /* until the arguments are in place */
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  status = lua_pcall(L, 2, 1, 0);
  ok = (status == LUA_OK && lua_toboolean(L, -1));
  report(L, status);  /* an error that escaped pmain */
  ah_host_close(h, 5000, NULL, NULL);  /* pending tasks, handles, state */
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
