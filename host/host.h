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

#endif
