/*
** Plain Lua values to bytes and back, for worker threads (thread.c) and
** the fuzz target (tests/fuzz_marshal.c).  Only these two files use it.
*/
#ifndef AH_MARSHAL_H
#define AH_MARSHAL_H

#include <stddef.h>
#include "lua.h"

/* how ah_encode names a value it refuses */
enum { AH_ENC_ARGS,      /* 'bad argument #k to ...' (k is its index) */
       AH_ENC_RESULTS,   /* 'cannot return ... (result #k)' */
       AH_ENC_LENIENT }; /* a table with a metatable: its fields only */

typedef struct ah_mbuf {  /* malloc'ed bytes */
  char *p;
  size_t n, cap;
} ah_mbuf;

int ah_mbuf_add (ah_mbuf *b, const void *s, size_t n);  /* 0: no memory */
void ah_mbuf_free (ah_mbuf *b);
void ah_encode (lua_State *L, int first, int n, ah_mbuf *b, int how);
int ah_decode (lua_State *L, const char *p, size_t len);

#endif
