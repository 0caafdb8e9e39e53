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

/* Reads, runs and prints lines from stdin until end of file (repl.c).
** Leaves the stack as it found it; returns 0. */
int ah_repl (lua_State *L);

#endif
