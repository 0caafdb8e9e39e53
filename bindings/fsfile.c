/*
** asynchost.core.fs, open files: the File that fs.open returns (read,
** lines, write, seek, sync, flush, close) and its read-ahead buffer.  The
** open itself is a request of fs.c, which hands the descriptor over to
** ah_fs_newfile.
**
** An open file (ffile) is owned the same way by its userdata and by the
** operation in flight on it (at most one).  Reads fill a read-ahead buffer
** in the ffile itself, so the data of a read whose task was cancelled is
** kept for the next read.  An operation finding an orphan still in flight
** waits for it first.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "asynchost.h"

#define FILE_MT     "asynchost.File"


/* {======================================================
** Open files
** ======================================================= */

enum { OP_READ, OP_WRITE, OP_FSYNC, OP_CLOSE };

typedef struct fop fop;

typedef struct ffile {
  uv_loop_t *loop;
  ah_sched *S;
  uv_file fd;          /* -1 once closed (or being closed) */
  char *path;          /* for error messages */
  char *buf;           /* read ahead: buf[off, off+len) is unread */
  size_t off, len, cap;
  int eof;             /* the last read found the end */
  int closed;          /* close() was called: no more operations */
  int boxed;           /* the userdata is alive */
  fop *busy;           /* the operation in flight, or NULL */
  ah_task *waiter;     /* a task waiting for an orphaned 'busy' to end */
  int res;             /* error of the last operation, for its task */
} ffile;

struct fop {
  uv_fs_t req;
  ffile *f;
  ah_task *t;          /* NULL once its task gave up */
  int kind;
  uv_file fd;          /* OP_CLOSE: the descriptor closed */
  char *data;          /* OP_WRITE: a copy of what is written */
  size_t len, done;    /* OP_READ: room offered; OP_WRITE: written */
};

/* Frees 'f' or closes its descriptor, when nothing needs them any more. */
static void settle (ffile *f) {
  if (f->busy != NULL || f->waiter != NULL) return;
  if (f->fd >= 0 && (f->closed || !f->boxed)) {
    ah_fs_closelater(f->loop, f->fd);
    f->fd = -1;
  }
  if (!f->boxed) {
    free(f->buf);
    free(f->path);
    free(f);
  }
}

static int issueop (fop *o);

static void onop (uv_fs_t *req) {
  fop *o = (fop *)req->data;
  ffile *f = o->f;
  ssize_t r = req->result;
  uv_fs_req_cleanup(req);
  if (o->kind == OP_READ) {
    if (r > 0) f->len += (size_t)r;
    else if (r == 0) f->eof = 1;
  }
  else if (o->kind == OP_WRITE && r > 0) {
    o->done += (size_t)r;
    if (o->done < o->len && o->t != NULL) {  /* a short write: go on */
      if ((r = issueop(o)) == 0) return;
    }
  }
  f->busy = NULL;
  if (o->t != NULL) {
    f->res = (r < 0) ? (int)r : 0;
    ah_wake(o->t, AH_WAKE_OK);
  }
  else if (f->waiter != NULL) {
    ah_task *w = f->waiter;
    f->waiter = NULL;
    ah_wake(w, AH_WAKE_OK);
  }
  free(o->data);
  free(o);
  settle(f);
}

static int issueop (fop *o) {
  ffile *f = o->f;
  uv_buf_t b;
  o->req.data = o;
  switch (o->kind) {
    case OP_READ:
      b = uv_buf_init(f->buf + f->off + f->len, (unsigned int)o->len);
      return uv_fs_read(f->loop, &o->req, f->fd, &b, 1, -1, onop);
    case OP_WRITE: {
      size_t n = o->len - o->done;
      b = uv_buf_init(o->data + o->done,
                      (unsigned int)(n > AH_FS_MAXIO ? AH_FS_MAXIO : n));
      return uv_fs_write(f->loop, &o->req, f->fd, &b, 1, -1, onop);
    }
    case OP_FSYNC: return uv_fs_fsync(f->loop, &o->req, f->fd, onop);
    default: return uv_fs_close(f->loop, &o->req, o->fd, onop);
  }
}

static void unop (ah_sched *S, ah_task *t) {
  fop *o = (fop *)t->waitobj;
  (void)S;
  o->t = NULL;
  if (o->kind != OP_CLOSE) uv_cancel((uv_req_t *)&o->req);
}

static void unfwait (ah_sched *S, ah_task *t) {
  ffile *f = (ffile *)t->waitobj;
  (void)S;
  if (f->waiter == t) f->waiter = NULL;
  settle(f);
}

static int raisefile (lua_State *L, ffile *f, int err) {
  return ah_fs_raiseerror(L, err, f->path, NULL);
}

static ffile *tofile (lua_State *L, int i) {
  return *(ffile **)luaL_checkudata(L, i, FILE_MT);
}

static ffile *checkfile (lua_State *L, int i) {
  ffile *f = tofile(L, i);
  if (f == NULL || f->closed)
    luaL_error(L, "attempt to use a closed file");
  return f;
}

/* After a wait on 'f': raises if the task was cancelled or the file was
** closed meanwhile. */
static ffile *resumefile (lua_State *L) {
  ffile *f = *(ffile **)lua_touserdata(L, 1);
  ah_checkwake(L, f->S->current);
  if (f->closed) luaL_error(L, "attempt to use a closed file");
  return f;
}

/* Makes the running task wait until the orphaned operation in flight on
** 'f' ends; then k(ctx) goes on.  Two tasks may not use a file at once. */
static int waitidle (lua_State *L, ffile *f, lua_KFunction k,
                     lua_KContext ctx) {
  ah_task *t = ah_current(f->S, L, "a file method");
  if (f->busy->t != NULL || f->waiter != NULL)
    return luaL_error(L, "another task is using this file");
  f->res = 0;
  if (!ah_wait(t, unfwait, f, "a file")) f->waiter = t;
  return ah_suspend(L, k, ctx);
}

/* Starts operation 'o' on 'f' for task 't'; k(ctx) goes on after. */
static int startop (lua_State *L, ah_task *t, ffile *f, fop *o,
                    lua_KFunction k, lua_KContext ctx, const char *what) {
  int r;
  f->res = 0;
  o->f = f;
  if (ah_wait(t, unop, o, what)) {  /* cancelled already */
    if (o->kind == OP_CLOSE) ah_fs_closelater(f->loop, o->fd);
    free(o->data);
    free(o);
    return ah_suspend(L, k, ctx);
  }
  if ((r = issueop(o)) < 0) {
    t->unwait = NULL;
    if (o->kind == OP_CLOSE) ah_fs_closelater(f->loop, o->fd);
    free(o->data);
    free(o);
    return raisefile(L, f, r);
  }
  o->t = t;
  f->busy = o;
  return ah_suspend(L, k, ctx);
}

static fop *newop (lua_State *L, int kind) {
  fop *o = (fop *)calloc(1, sizeof(fop));
  if (o == NULL) luaL_error(L, "not enough memory");
  o->kind = kind;
  return o;
}

static int filegc (lua_State *L) {
  ffile **box = (ffile **)lua_touserdata(L, 1);
  ffile *f = *box;
  if (f == NULL) return 0;
  if (!f->closed && f->S->trace)
    ah_trace_unclosed(L, f->S, 1);  /* debug mode: say it leaked */
  *box = NULL;
  f->boxed = 0;
  f->closed = 1;
  if (f->busy != NULL) f->busy->t = NULL;  /* its task is gone too */
  f->waiter = NULL;
  settle(f);
  return 0;
}

/* Pushes a file for descriptor 'fd', opened on 'path', and takes 'fd';
** when it raises (no memory) the caller still owns 'fd'. */
void ah_fs_newfile (lua_State *L, ah_sched *S, uv_file fd,
                    const char *path) {
  ffile **box = (ffile **)lua_newuserdatauv(L, sizeof(ffile *), 0);
  ffile *f;
  *box = NULL;
  luaL_setmetatable(L, FILE_MT);
  if ((f = (ffile *)calloc(1, sizeof(ffile))) == NULL ||
      (f->path = strdup(path)) == NULL) {
    free(f);
    luaL_error(L, "not enough memory");  /* the caller closes the fd */
  }
  f->loop = S->loop;
  f->S = S;
  f->fd = fd;
  f->boxed = 1;
  *box = f;
  if (S->trace)  /* debug mode: where it was opened, if it leaks */
    ah_trace_track(L, S, -1, "file", 1);
}


/* Reading */

static int isnumfmt (lua_State *L, int i) {
  return lua_type(L, i) == LUA_TNUMBER;
}

static void checkformats (lua_State *L, int first, int last) {
  int i;
  for (i = first; i <= last; i++) {
    if (isnumfmt(L, i)) {
      luaL_argcheck(L, luaL_checkinteger(L, i) >= 0, i,
                    "non-negative integer expected");
    }
    else {
      const char *p = luaL_checkstring(L, i);
      if (*p == '*') p++;  /* Lua 5.3 style "*l" */
      luaL_argcheck(L, *p == 'a' || *p == 'l' || *p == 'L', i,
                    "invalid format");
    }
  }
}

/* Pushes 'n' unread bytes and consumes 'n + skip'. */
static void take (lua_State *L, ffile *f, size_t n, size_t skip) {
  lua_pushlstring(L, n > 0 ? f->buf + f->off : "", n);
  f->off += n + skip;
  f->len -= n + skip;
  if (f->len == 0) f->off = 0;
}

/* Does the formats at 2..nf+1 not done yet (their results so far sit
** above them).  Returns the number of results, or -1 when *want more bytes
** must be read first. */
static int readformats (lua_State *L, ffile *f, int nf, size_t *want) {
  int i;
  size_t grow = f->len > AH_FS_CHUNK ? f->len : AH_FS_CHUNK;  /* reads double */
  for (i = lua_gettop(L) - nf - 1; i < nf; i++) {
    int arg = i + 2;
    if (isnumfmt(L, arg)) {
      size_t n = (size_t)lua_tointeger(L, arg);
      if (f->len >= n && (n > 0 || f->len > 0)) take(L, f, n, 0);
      else if (f->eof) {
        if (f->len == 0) { lua_pushnil(L); return i + 1; }
        take(L, f, f->len, 0);
      }
      else {
        *want = (n - f->len > AH_FS_CHUNK) ? n - f->len : AH_FS_CHUNK;
        return -1;
      }
    }
    else {
      const char *p = lua_tostring(L, arg);
      const char *nl;
      if (*p == '*') p++;
      if (*p == 'a') {
        if (!f->eof) { *want = grow; return -1; }
        take(L, f, f->len, 0);
      }
      else if (f->len > 0 &&
               (nl = (const char *)memchr(f->buf + f->off, '\n', f->len))
               != NULL) {
        size_t n = (size_t)(nl - (f->buf + f->off));
        if (*p == 'L') take(L, f, n + 1, 0);
        else take(L, f, n, 1);
      }
      else if (f->eof) {  /* the last line, without a newline */
        if (f->len == 0) { lua_pushnil(L); return i + 1; }
        take(L, f, f->len, 0);
      }
      else { *want = grow; return -1; }
    }
  }
  return nf;
}

static int readk (lua_State *L, int status, lua_KContext nf);

/* Reads into the buffer 'want' more bytes (at most), then readk. */
static int fill (lua_State *L, ffile *f, size_t want, int nf) {
  ah_task *t = ah_current(f->S, L, "read");
  fop *o;
  if (want > AH_FS_MAXIO) want = AH_FS_MAXIO;
  if (f->off > 0) {  /* compact */
    if (f->len > 0) memmove(f->buf, f->buf + f->off, f->len);
    f->off = 0;
  }
  if (f->cap - f->len < want) {
    char *b = (char *)realloc(f->buf, f->len + want);
    if (b == NULL) return luaL_error(L, "not enough memory");
    f->buf = b;
    f->cap = f->len + want;
  }
  o = newop(L, OP_READ);
  o->len = want;
  return startop(L, t, f, o, readk, nf, "a file read");
}

static int readstep (lua_State *L, ffile *f, int nf) {
  size_t want = 0;
  int n;
  if (f->busy != NULL) return waitidle(L, f, readk, nf);
  if ((n = readformats(L, f, nf, &want)) >= 0) return n;
  return fill(L, f, want, nf);
}

static int readk (lua_State *L, int status, lua_KContext nf) {
  ffile *f = resumefile(L);
  (void)status;
  if (f->res < 0) {
    int err = f->res;
    f->res = 0;
    return raisefile(L, f, err);
  }
  return readstep(L, f, (int)nf);
}

/* read(...): formats as file:read's: n (bytes), "a", "l", "L"; none: "l" */
static int f_read (lua_State *L) {
  ffile *f = checkfile(L, 1);
  int nf = lua_gettop(L) - 1;
  if (nf == 0) { lua_pushliteral(L, "l"); nf = 1; }
  checkformats(L, 2, nf + 1);
  f->eof = 0;  /* try again at the end: the file may have grown */
  return readstep(L, f, nf);
}

static int linesiter (lua_State *L) {
  ffile *f = *(ffile **)lua_touserdata(L, lua_upvalueindex(1));
  int nf = (int)lua_tointeger(L, lua_upvalueindex(2)), i;
  if (f == NULL || f->closed)
    return luaL_error(L, "attempt to use a closed file");
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(1));
  for (i = 1; i <= nf; i++) lua_pushvalue(L, lua_upvalueindex(2 + i));
  f->eof = 0;
  return readstep(L, f, nf);
}

/* lines(...) -> iterator: each call reads with the formats (default "l") */
static int f_lines (lua_State *L) {
  int nf = lua_gettop(L) - 1;
  checkfile(L, 1);
  luaL_argcheck(L, nf <= 250, 252, "too many arguments");
  if (nf == 0) { lua_pushliteral(L, "l"); nf = 1; }
  checkformats(L, 2, nf + 1);
  lua_pushinteger(L, nf);
  lua_insert(L, 2);
  lua_pushcclosure(L, linesiter, nf + 2);
  return 1;
}


/* Writing, seeking, closing */

/* Drops the read-ahead, putting the descriptor's offset back where the
** reader is. */
static void unreadahead (lua_State *L, ffile *f) {
  if (f->len > 0 && lseek(f->fd, -(off_t)f->len, SEEK_CUR) < 0)
    raisefile(L, f, uv_translate_sys_error(errno));
  f->off = f->len = 0;
  f->eof = 0;
}

static int writek (lua_State *L, int status, lua_KContext ctx);

static int writestep (lua_State *L, ffile *f) {
  int i, n = lua_gettop(L);
  size_t total = 0, len;
  ah_task *t;
  fop *o;
  if (f->busy != NULL) return waitidle(L, f, writek, 0);
  for (i = 2; i <= n; i++) {
    lua_tolstring(L, i, &len);
    total += len;
  }
  if (total == 0) { lua_settop(L, 1); return 1; }
  t = ah_current(f->S, L, "write");
  unreadahead(L, f);
  o = newop(L, OP_WRITE);
  if ((o->data = (char *)malloc(total)) == NULL) {
    free(o);
    return luaL_error(L, "not enough memory");
  }
  for (i = 2; i <= n; i++) {  /* a copy: the strings may go before it ends */
    const char *s = lua_tolstring(L, i, &len);
    if (len > 0) memcpy(o->data + o->len, s, len);
    o->len += len;
  }
  return startop(L, t, f, o, writek, 1, "a file write");
}

static int writek (lua_State *L, int status, lua_KContext ctx) {
  ffile *f = resumefile(L);
  (void)status;
  if (ctx == 0) return writestep(L, f);  /* the file is free now */
  if (f->res < 0) {
    int err = f->res;
    f->res = 0;
    return raisefile(L, f, err);
  }
  lua_settop(L, 1);
  return 1;
}

/* write(...): strings or numbers, written before it returns; -> file */
static int f_write (lua_State *L) {
  ffile *f = checkfile(L, 1);
  int i, n = lua_gettop(L);
  for (i = 2; i <= n; i++) luaL_checkstring(L, i);
  return writestep(L, f);
}

static int synck (lua_State *L, int status, lua_KContext ctx);

static int syncstep (lua_State *L, ffile *f) {
  ah_task *t;
  if (f->busy != NULL) return waitidle(L, f, synck, 0);
  t = ah_current(f->S, L, "sync");
  return startop(L, t, f, newop(L, OP_FSYNC), synck, 1, "a file sync");
}

static int synck (lua_State *L, int status, lua_KContext ctx) {
  ffile *f = resumefile(L);
  (void)status;
  if (ctx == 0) return syncstep(L, f);
  if (f->res < 0) {
    int err = f->res;
    f->res = 0;
    return raisefile(L, f, err);
  }
  return 0;
}

/* sync(): fsync, the data is on the disk */
static int f_sync (lua_State *L) {
  lua_settop(L, 1);
  return syncstep(L, checkfile(L, 1));
}

/* flush(): nothing to do (writes are not buffered); -> file */
static int f_flush (lua_State *L) {
  checkfile(L, 1);
  lua_settop(L, 1);
  return 1;
}

static int seekk (lua_State *L, int status, lua_KContext ctx);

static int seekstep (lua_State *L, ffile *f) {
  static const int mode[] = {SEEK_SET, SEEK_CUR, SEEK_END};
  static const char *const modenames[] = {"set", "cur", "end", NULL};
  int op = luaL_checkoption(L, 2, "cur", modenames);
  lua_Integer off = luaL_optinteger(L, 3, 0);
  off_t pos;
  if (f->busy != NULL) return waitidle(L, f, seekk, 0);
  /* lseek does no I/O: it only sets the descriptor's offset */
  if (op == 1 && off == 0) {  /* where are we? (keeps the read-ahead) */
    if ((pos = lseek(f->fd, 0, SEEK_CUR)) < 0)
      return raisefile(L, f, uv_translate_sys_error(errno));
    lua_pushinteger(L, (lua_Integer)pos - (lua_Integer)f->len);
    return 1;
  }
  if (op == 1) off -= (lua_Integer)f->len;
  if ((pos = lseek(f->fd, (off_t)off, mode[op])) < 0)
    return raisefile(L, f, uv_translate_sys_error(errno));
  f->off = f->len = 0;
  f->eof = 0;
  lua_pushinteger(L, (lua_Integer)pos);
  return 1;
}

static int seekk (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return seekstep(L, resumefile(L));
}

/* seek([whence = "cur" [, offset = 0]]) -> position, as file:seek */
static int f_seek (lua_State *L) {
  return seekstep(L, checkfile(L, 1));
}

static int closek (lua_State *L, int status, lua_KContext ctx);

static int closestep (lua_State *L, ffile *f) {
  ah_sched *S = f->S;
  fop *o;
  ah_task *t;
  if (S->current == NULL || !lua_isyieldable(L) || f->waiter != NULL ||
      (f->busy != NULL && f->busy->t != NULL)) {
    settle(f);  /* closes in the background, now or after 'busy' */
    return 0;
  }
  if (f->busy != NULL) {  /* an orphan: wait for it, then close */
    t = S->current;
    if (!ah_wait(t, unfwait, f, "a file")) f->waiter = t;
    return ah_suspend(L, closek, 0);
  }
  if (f->fd < 0) return 0;
  t = S->current;
  o = newop(L, OP_CLOSE);
  o->fd = f->fd;
  f->fd = -1;
  return startop(L, t, f, o, closek, 1, "a file close");
}

static int closek (lua_State *L, int status, lua_KContext ctx) {
  ffile *f = *(ffile **)lua_touserdata(L, 1);
  (void)status;
  ah_checkwake(L, f->S->current);
  if (ctx == 0) return closestep(L, f);
  if (f->res < 0) {
    int err = f->res;
    f->res = 0;
    return raisefile(L, f, err);
  }
  return 0;
}

/* close(): waits for the close; again on a closed file: nothing.  Outside
** a task (or where it cannot wait) the file closes in the background. */
static int f_close (lua_State *L) {
  ffile *f = tofile(L, 1);
  if (f == NULL || f->closed) return 0;
  f->closed = 1;
  lua_settop(L, 1);
  return closestep(L, f);
}

static int f_tostring (lua_State *L) {
  ffile *f = tofile(L, 1);
  if (f == NULL || f->closed) lua_pushliteral(L, "File (closed)");
  else lua_pushfstring(L, "File (%s)", f->path);
  return 1;
}

/* }====================================================== */


static const luaL_Reg filemeth[] = {
  {"read", f_read},
  {"lines", f_lines},
  {"write", f_write},
  {"seek", f_seek},
  {"sync", f_sync},
  {"flush", f_flush},
  {"close", f_close},
  {NULL, NULL}
};

static const luaL_Reg filemetameth[] = {
  {"__tostring", f_tostring},
  {"__close", f_close},
  {"__gc", filegc},
  {NULL, NULL}
};

/* Makes the class of files (for luaopen_asynchost_core_fs). */
void ah_fs_fileclass (lua_State *L, ah_sched *S) {
  ah_newclass(L, S, -1, FILE_MT, filemeth, filemetameth);
}
