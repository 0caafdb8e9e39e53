/*
** What the files of the asynchost executable (host/) share.
*/
#ifndef AH_HOST_H
#define AH_HOST_H

#include "lua.h"

/* Opens the standard libraries and asynchost's modules (host.c). */
void ah_openlibs (lua_State *L);

/* Makes asynchost's modules loadable by require (host.c). */
void ah_openmodules (lua_State *L);

/* Reads, runs and prints lines from stdin until end of file (repl.c):
** with readline on the loop when stdin is a terminal, each input as a
** task.  Leaves the stack as it found it; returns 0. */
int ah_repl (lua_State *L);

/* Sets the globals 'async' (the module) and 'await', unless set: the
** REPL's, also given to a piped stdin (repl.c). */
void ah_replglobals (lua_State *L);

/* What the REPL shows and completes (replshow.c). */

/* Prints its arguments, as lua's REPL prints the values of an input but
** with tables readable (bounded, cycles marked); a lua_CFunction. */
int ah_printvalues (lua_State *L);

/* readline's completion of the word 'text': globals, fields and methods,
** never file names.  NULL if none; runs no metamethod. */
char **ah_replcomplete (lua_State *L, const char *text);

#endif
