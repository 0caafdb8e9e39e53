/*
** asynchost.core.fs: files and directories on libuv's fs requests (they
** run on libuv's thread pool; the loop never blocks).  This file holds the
** requests, the path functions and the whole-file operations; open files
** are in fsfile.c, watchers on uv_fs_event in fswatch.c.
** lua/asynchost/fs.lua adds what composes these: mkdir -p, rmtree,
** tempdir, scandir's iterator, and watch() (debounce, recursion).
**
** A request outlives the task that made it: once a read runs in the
** thread pool nothing can stop it.  So a request ("job") is malloc'ed and
** has two owners, libuv (until its last callback) and the waiting frame
** (a box userdata on the task's stack, whose __gc lets go too); the last
** one frees it, closing a file it opened that nobody took.  A job may
** chain several requests in C (read_file: open, fstat, read..., close) and
** wakes its task once, at the end; a task that gave up makes the chain
** skip to its cleanup (close the file, remove the temporary one).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include "asynchost.h"

#define JOB_MT      "asynchost.fs.request"

#define getsched(L)  ((ah_sched *)lua_touserdata(L, lua_upvalueindex(1)))


/* {======================================================
** Errors
** ======================================================= */

static const char *errclass (int err) {
  switch (err) {
    case UV_ENOENT: return "FileNotFoundError";
    case UV_EEXIST: return "FileExistsError";
    case UV_EACCES: case UV_EPERM: return "PermissionError";
    case UV_ENOTDIR: return "NotADirectoryError";
    case UV_EISDIR: return "IsADirectoryError";
    default: return "OSError";
  }
}

/* Pushes the OSError (or subclass) of libuv error 'err' on 'path' (and
** 'dest' for two-path operations):
** "ENOENT: no such file or directory: data/x.txt". */
void ah_pushoserror (lua_State *L, int err, const char *path,
                     const char *dest) {
  if (dest != NULL)
    lua_pushfstring(L, "%s: %s: %s -> %s", uv_err_name(err), uv_strerror(err),
                    path, dest);
  else
    lua_pushfstring(L, "%s: %s: %s", uv_err_name(err), uv_strerror(err),
                    path);
  ah_pusherror(L, errclass(err), lua_tostring(L, -1));
  lua_remove(L, -2);
  lua_pushstring(L, uv_err_name(err));
  lua_setfield(L, -2, "code");
  lua_pushinteger(L, err);
  lua_setfield(L, -2, "errno");
  lua_pushstring(L, path);
  lua_setfield(L, -2, "path");
  if (dest != NULL) {
    lua_pushstring(L, dest);
    lua_setfield(L, -2, "dest");
  }
}

int ah_fs_raiseerror (lua_State *L, int err, const char *path,
                         const char *dest) {
  ah_pushoserror(L, err, path, dest);
  return lua_error(L);
}

/* A path argument: a string, strictly (numbers are not paths). */
const char *ah_fs_checkpath (lua_State *L, int i) {
  if (lua_type(L, i) != LUA_TSTRING) luaL_typeerror(L, i, "string");
  return lua_tostring(L, i);
}

static void onclosed (uv_fs_t *req) {
  uv_fs_req_cleanup(req);
  free(req);
}

/* Closes 'fd' in the thread pool; nobody waits for it. */
void ah_fs_closelater (uv_loop_t *loop, uv_file fd) {
  uv_fs_t *req = (uv_fs_t *)malloc(sizeof(uv_fs_t));
  if (req == NULL || uv_fs_close(loop, req, fd, onclosed) < 0) {
    uv_fs_t sync;  /* no memory: close it here rather than leak it */
    free(req);
    uv_fs_close(loop, &sync, fd, NULL);
    uv_fs_req_cleanup(&sync);
  }
}

/* }====================================================== */


/* {======================================================
** Jobs: path operations, one or several requests chained in C
** ======================================================= */

enum { J_STAT, J_LSTAT, J_EXISTS, J_MKDIR, J_RMDIR, J_UNLINK, J_REMOVE,
       J_RENAME, J_COPY, J_MKDTEMP, J_SCANDIR, J_OPEN, J_READ, J_WRITE,
       J_ATOMIC };

/* steps; S_ONE is the single request of the simple kinds */
enum { S_ONE, S_OPEN, S_FSTAT, S_READ, S_STATDEST, S_TMPOPEN, S_FCHMOD,
       S_WRITE, S_FSYNC, S_CLOSE, S_RENAME, S_UNLINKTMP, S_RMDIR, S_DONE };

typedef struct job {
  uv_fs_t req;
  uv_loop_t *loop;
  ah_sched *S;
  ah_task *t;          /* to wake at the end; NULL once it gave up */
  int kind, step;
  int refs;            /* libuv (while running) + the frame's box */
  int err;             /* the first libuv error, or 0 */
  int flags, mode;     /* of open or mkdir; copy: its flags */
  uv_file fd;          /* open during a chain, or opened for the task */
  char *path, *path2;  /* owned copies; path2: the destination or the
                          temporary file of an atomic write */
  char *buf;           /* read: the contents; write: a copy of the data */
  size_t len, cap;     /* read: bytes read, room; write: bytes to write */
  size_t done;         /* write: bytes written */
  int64_t size;        /* read: the size fstat gave, or -1 */
  int hasdest;         /* atomic: the target exists ('mode' is its mode) */
  int tries;           /* atomic: temporary names tried */
  int errdir;          /* remove: unlink's error, while rmdir is tried */
} job;

static void onreq (uv_fs_t *req);

static void unref (job *j) {
  if (--j->refs > 0) return;
  if (j->fd >= 0) ah_fs_closelater(j->loop, j->fd);  /* opened for nobody */
  uv_fs_req_cleanup(&j->req);
  free(j->buf);
  free(j->path);
  free(j->path2);
  free(j);
}

/* The frame lets go of its job (box at 'box'). */
static void dropjob (job **box) {
  job *j = *box;
  if (j == NULL) return;
  *box = NULL;
  j->t = NULL;
  unref(j);
}

static int jobgc (lua_State *L) {
  dropjob((job **)lua_touserdata(L, 1));
  return 0;
}

static int growbuf (job *j, size_t cap) {
  char *b = (char *)realloc(j->buf, cap ? cap : 1);
  if (b == NULL) return 0;
  j->buf = b;
  j->cap = cap;
  return 1;
}

/* The name of an atomic write's temporary file: ".name.XXXXXX.tmp" in the
** target's directory (a rename stays on one file system). */
static void tmpname (job *j) {
  const char *slash = strrchr(j->path, '/');
  int dirlen = slash ? (int)(slash - j->path) + 1 : 0;
  unsigned int r = (unsigned int)(uv_hrtime() ^ ((uintptr_t)j >> 4) ^
                                  ((unsigned int)j->tries * 0x9e3779b9u));
  sprintf(j->path2, "%.*s.%s.%08x.tmp", dirlen, j->path, j->path + dirlen, r);
}

static int issue (job *j) {
  uv_loop_t *loop = j->loop;
  uv_fs_t *req = &j->req;
  uv_buf_t b;
  req->data = j;
  switch (j->step) {
    case S_ONE:
      switch (j->kind) {
        case J_LSTAT: return uv_fs_lstat(loop, req, j->path, onreq);
        case J_MKDIR: return uv_fs_mkdir(loop, req, j->path, j->mode, onreq);
        case J_RMDIR: return uv_fs_rmdir(loop, req, j->path, onreq);
        case J_UNLINK: case J_REMOVE:
          return uv_fs_unlink(loop, req, j->path, onreq);
        case J_RENAME:
          return uv_fs_rename(loop, req, j->path, j->path2, onreq);
        case J_COPY:
          return uv_fs_copyfile(loop, req, j->path, j->path2, j->flags,
                                onreq);
        case J_MKDTEMP: return uv_fs_mkdtemp(loop, req, j->path, onreq);
        case J_SCANDIR: return uv_fs_scandir(loop, req, j->path, 0, onreq);
        case J_OPEN:
          return uv_fs_open(loop, req, j->path, j->flags, 0666, onreq);
        default: return uv_fs_stat(loop, req, j->path, onreq);
      }
    case S_OPEN:
      return uv_fs_open(loop, req, j->path, j->flags, 0666, onreq);
    case S_FSTAT: return uv_fs_fstat(loop, req, j->fd, onreq);
    case S_READ: {
      size_t n = j->cap - j->len;
      b = uv_buf_init(j->buf + j->len,
                      (unsigned int)(n > AH_FS_MAXIO ? AH_FS_MAXIO : n));
      return uv_fs_read(loop, req, j->fd, &b, 1, -1, onreq);
    }
    case S_STATDEST: return uv_fs_stat(loop, req, j->path, onreq);
    case S_TMPOPEN:
      tmpname(j);
      return uv_fs_open(loop, req, j->path2,
                        UV_FS_O_WRONLY | UV_FS_O_CREAT | UV_FS_O_EXCL, 0666,
                        onreq);
    case S_FCHMOD: return uv_fs_fchmod(loop, req, j->fd, j->mode, onreq);
    case S_WRITE: {
      size_t n = j->len - j->done;
      b = uv_buf_init(j->buf + j->done,
                      (unsigned int)(n > AH_FS_MAXIO ? AH_FS_MAXIO : n));
      return uv_fs_write(loop, req, j->fd, &b, 1, -1, onreq);
    }
    case S_FSYNC: return uv_fs_fsync(loop, req, j->fd, onreq);
    case S_CLOSE: return uv_fs_close(loop, req, j->fd, onreq);
    case S_RENAME: return uv_fs_rename(loop, req, j->path2, j->path, onreq);
    case S_UNLINKTMP: return uv_fs_unlink(loop, req, j->path2, onreq);
    default: return uv_fs_rmdir(loop, req, j->path, onreq);  /* S_RMDIR */
  }
}

/* Records error 'r' (the first one counts); true when it is one. */
static int failed (job *j, ssize_t r) {
  if (r < 0 && j->err == 0) j->err = (int)r;
  return r < 0;
}

/* The step after the current one, which ended with 'r'. */
static int nextstep (job *j, ssize_t r) {
  int gone = (j->t == NULL);  /* the task gave up: only clean up */
  switch (j->step) {
    case S_ONE:
      if (j->kind == J_REMOVE && (r == UV_EISDIR || r == UV_EPERM) &&
          !gone) {
        j->errdir = (int)r;  /* a directory, perhaps: rmdir it */
        return S_RMDIR;
      }
      if (!failed(j, r) && j->kind == J_OPEN) j->fd = (uv_file)r;
      return S_DONE;
    case S_RMDIR:
      if (r == UV_ENOTDIR) r = j->errdir;  /* not a directory after all */
      failed(j, r);
      return S_DONE;
    case S_OPEN:
      if (failed(j, r)) return S_DONE;
      j->fd = (uv_file)r;
      if (gone) return S_CLOSE;
      if (j->kind == J_READ) return S_FSTAT;
      return j->len > 0 ? S_WRITE : S_CLOSE;
    case S_FSTAT: {
      uint64_t size = j->req.statbuf.st_size;
      int reg = S_ISREG(j->req.statbuf.st_mode);
      if (failed(j, r) || gone) return S_CLOSE;
      j->size = (reg && size > 0) ? (int64_t)size : -1;
      if (!growbuf(j, j->size > 0 ? (size_t)size : AH_FS_CHUNK)) {
        j->err = UV_ENOMEM;
        return S_CLOSE;
      }
      return S_READ;
    }
    case S_READ:
      if (failed(j, r) || gone || r == 0) return S_CLOSE;
      j->len += (size_t)r;
      if (j->size > 0 && (int64_t)j->len >= j->size) return S_CLOSE;
      if (j->len == j->cap && !growbuf(j, j->cap * 2)) {
        j->err = UV_ENOMEM;
        return S_CLOSE;
      }
      return S_READ;
    case S_STATDEST:
      if (r == 0) {  /* keep the mode of the file replaced */
        j->hasdest = 1;
        j->mode = (int)(j->req.statbuf.st_mode & 07777);
      }
      return gone ? S_DONE : S_TMPOPEN;
    case S_TMPOPEN:
      if (r == UV_EEXIST && !gone && ++j->tries < 100) return S_TMPOPEN;
      if (failed(j, r)) return S_DONE;
      j->fd = (uv_file)r;
      if (gone) return S_CLOSE;
      if (j->hasdest) return S_FCHMOD;
      return j->len > 0 ? S_WRITE : S_FSYNC;
    case S_FCHMOD:
      if (failed(j, r) || gone) return S_CLOSE;
      return j->len > 0 ? S_WRITE : S_FSYNC;
    case S_WRITE:
      if (failed(j, r) || gone) return S_CLOSE;
      j->done += (size_t)r;
      if (j->done < j->len) return S_WRITE;
      return j->kind == J_ATOMIC ? S_FSYNC : S_CLOSE;
    case S_FSYNC:
      failed(j, r);
      return S_CLOSE;
    case S_CLOSE:
      failed(j, r);
      j->fd = -1;  /* closed even when close failed */
      if (j->kind != J_ATOMIC) return S_DONE;
      return (j->err || gone) ? S_UNLINKTMP : S_RENAME;
    case S_RENAME:
      return failed(j, r) ? S_UNLINKTMP : S_DONE;
    default:  /* S_UNLINKTMP */
      return S_DONE;
  }
}

/* The job ended: wake its task, and libuv lets go. */
static void finish (job *j) {
  ah_task *t = j->t;
  j->t = NULL;
  if (t != NULL) ah_wake(t, AH_WAKE_OK);
  unref(j);
}

/* Issues the current step; a request refused at once counts as failed. */
static void run (job *j) {
  while (j->step != S_DONE) {
    int r = issue(j);
    if (r >= 0) return;
    j->step = nextstep(j, r);
    uv_fs_req_cleanup(&j->req);
  }
  finish(j);
}

static void onreq (uv_fs_t *req) {
  job *j = (job *)req->data;
  int single = (j->step == S_ONE);
  j->step = nextstep(j, req->result);
  /* a single request keeps its results (stat, names, path) for the task */
  if (!single || j->step != S_DONE) uv_fs_req_cleanup(req);
  run(j);
}

/* Steps whose request may be dropped from the thread pool's queue when the
** task gives up; closing and removing the temporary file must happen. */
static int cancellable (int step) {
  return step != S_CLOSE && step != S_UNLINKTMP;
}

static void unjob (ah_sched *S, ah_task *t) {
  job *j = (job *)t->waitobj;
  (void)S;
  j->t = NULL;
  if (cancellable(j->step)) uv_cancel((uv_req_t *)&j->req);
}

/* Pushes a box owning a new job of 'kind' on 'path' (and 'path2').  'extra'
** more bytes are allocated for path2 (the atomic write's temporary name). */
static job *newjob (lua_State *L, ah_sched *S, int kind, const char *path,
                    const char *path2, size_t extra) {
  job **box = (job **)lua_newuserdatauv(L, sizeof(job *), 0);
  job *j;
  *box = NULL;
  luaL_setmetatable(L, JOB_MT);
  if ((j = (job *)calloc(1, sizeof(job))) == NULL)
    luaL_error(L, "not enough memory");
  *box = j;
  j->refs = 1;
  j->fd = -1;
  j->size = -1;
  j->kind = kind;
  j->step = S_ONE;
  j->S = S;
  j->loop = S->loop;
  j->path = strdup(path);
  if (path2 != NULL) j->path2 = strdup(path2);
  else if (extra > 0) j->path2 = (char *)malloc(strlen(path) + extra);
  if (j->path == NULL || ((path2 != NULL || extra > 0) && j->path2 == NULL))
    luaL_error(L, "not enough memory");
  return j;
}

static int jobk (lua_State *L, int status, lua_KContext ctx);

/* Starts job 'j' (its box on top) for task 't' and suspends it. */
static int startjob (lua_State *L, ah_task *t, job *j, const char *what) {
  int box = lua_gettop(L);
  if (!ah_wait(t, unjob, j, what)) {
    j->t = t;
    j->refs++;  /* libuv's, until finish */
    run(j);
  }
  return ah_suspend(L, jobk, box);
}

static const char *modetype (uint64_t m) {
  if (S_ISREG(m)) return "file";
  if (S_ISDIR(m)) return "directory";
  if (S_ISLNK(m)) return "link";
  if (S_ISFIFO(m)) return "fifo";
  if (S_ISSOCK(m)) return "socket";
  if (S_ISCHR(m)) return "char";
  if (S_ISBLK(m)) return "block";
  return "unknown";
}

static void setnum (lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static void setint (lua_State *L, const char *k, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

static double seconds (uv_timespec_t ts) {
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pushstat (lua_State *L, const uv_stat_t *s) {
  lua_createtable(L, 0, 15);
  lua_pushstring(L, modetype(s->st_mode));
  lua_setfield(L, -2, "type");
  setint(L, "size", s->st_size);
  setint(L, "mode", s->st_mode & 07777);
  setnum(L, "mtime", seconds(s->st_mtim));
  setnum(L, "atime", seconds(s->st_atim));
  setnum(L, "ctime", seconds(s->st_ctim));
  setnum(L, "birthtime", seconds(s->st_birthtim));
  setint(L, "ino", s->st_ino);
  setint(L, "dev", s->st_dev);
  setint(L, "nlink", s->st_nlink);
  setint(L, "uid", s->st_uid);
  setint(L, "gid", s->st_gid);
  setint(L, "blksize", s->st_blksize);
  setint(L, "blocks", s->st_blocks);
}

static const char *direnttype (uv_dirent_type_t t) {
  static const char *const names[] = {"unknown", "file", "directory", "link",
                                      "fifo", "socket", "char", "block"};
  return ((unsigned)t < 8) ? names[t] : "unknown";
}

/* names (sorted by libuv), types */
static int pushscandir (lua_State *L, job *j) {
  uv_dirent_t ent;
  int i = 0;
  lua_newtable(L);
  lua_newtable(L);
  while (uv_fs_scandir_next(&j->req, &ent) != UV_EOF) {
    i++;
    lua_pushstring(L, ent.name);
    lua_rawseti(L, -3, i);
    lua_pushstring(L, direnttype(ent.type));
    lua_rawseti(L, -2, i);
  }
  return 2;
}

static int jobk (lua_State *L, int status, lua_KContext ctx) {
  job **box = (job **)lua_touserdata(L, (int)ctx);
  job *j = *box;
  ah_task *t = j->S->current;
  int n = 0;
  (void)status;
  if (t->wake != AH_WAKE_OK || t->mustcancel) {  /* given up, or too late */
    dropjob(box);
    ah_checkwake(L, t);  /* raises */
  }
  ah_checkwake(L, t);
  if (j->err != 0 && j->kind != J_EXISTS) {
    ah_pushoserror(L, j->err, j->path,
                (j->kind == J_RENAME || j->kind == J_COPY) ? j->path2 : NULL);
    dropjob(box);
    return lua_error(L);
  }
  switch (j->kind) {
    case J_STAT: case J_LSTAT: pushstat(L, &j->req.statbuf); n = 1; break;
    case J_EXISTS: lua_pushboolean(L, j->err == 0); n = 1; break;
    case J_MKDTEMP: lua_pushstring(L, j->req.path); n = 1; break;
    case J_SCANDIR: n = pushscandir(L, j); break;
    case J_OPEN:  /* if this raises, the job still closes the fd */
      ah_fs_newfile(L, j->S, j->fd, j->path);
      j->fd = -1;
      n = 1;
      break;
    case J_READ: lua_pushlstring(L, j->buf ? j->buf : "", j->len); n = 1;
                 break;
    default: break;
  }
  dropjob(box);
  return n;
}

/* }====================================================== */


/* {======================================================
** Path functions
** ======================================================= */

static int simple (lua_State *L, int kind, const char *fname,
                   const char *what) {
  ah_sched *S = getsched(L);
  const char *path = ah_fs_checkpath(L, 1);
  ah_task *t = ah_current(S, L, fname);
  job *j = newjob(L, S, kind, path, NULL, 0);
  return startjob(L, t, j, what);
}

static int l_stat (lua_State *L) {
  return simple(L, J_STAT, "stat", "a file stat");
}

static int l_lstat (lua_State *L) {
  return simple(L, J_LSTAT, "lstat", "a file stat");
}

/* exists(path): false on any error, as Python's os.path.exists */
static int l_exists (lua_State *L) {
  return simple(L, J_EXISTS, "exists", "a file stat");
}

static int l_rmdir (lua_State *L) {
  return simple(L, J_RMDIR, "rmdir", "a directory removal");
}

static int l_unlink (lua_State *L) {
  return simple(L, J_UNLINK, "unlink", "a file removal");
}

/* remove(path): a file, or an empty directory */
static int l_remove (lua_State *L) {
  return simple(L, J_REMOVE, "remove", "a file removal");
}

/* scandir(path) -> names, types */
static int l_scandir (lua_State *L) {
  return simple(L, J_SCANDIR, "scandir", "a directory listing");
}

/* mkdtemp(template) -> path */
static int l_mkdtemp (lua_State *L) {
  return simple(L, J_MKDTEMP, "tempdir", "a directory creation");
}

/* mkdir(path, mode) */
static int l_mkdir (lua_State *L) {
  ah_sched *S = getsched(L);
  const char *path = ah_fs_checkpath(L, 1);
  int mode = (int)luaL_optinteger(L, 2, 0777);
  ah_task *t = ah_current(S, L, "mkdir");
  job *j = newjob(L, S, J_MKDIR, path, NULL, 0);
  j->mode = mode;
  return startjob(L, t, j, "a directory creation");
}

static int l_rename (lua_State *L) {
  ah_sched *S = getsched(L);
  const char *from = ah_fs_checkpath(L, 1), *to = ah_fs_checkpath(L, 2);
  ah_task *t = ah_current(S, L, "rename");
  job *j = newjob(L, S, J_RENAME, from, to, 0);
  return startjob(L, t, j, "a rename");
}

/* copy(src, dst [, {exclusive = bool}]) */
static int l_copy (lua_State *L) {
  ah_sched *S = getsched(L);
  const char *from = ah_fs_checkpath(L, 1), *to = ah_fs_checkpath(L, 2);
  int flags = 0;
  ah_task *t;
  job *j;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    if (lua_getfield(L, 3, "exclusive") != LUA_TNIL && lua_toboolean(L, -1))
      flags |= UV_FS_COPYFILE_EXCL;
    lua_pop(L, 1);
  }
  t = ah_current(S, L, "copy");
  j = newjob(L, S, J_COPY, from, to, 0);
  j->flags = flags;
  return startjob(L, t, j, "a file copy");
}

static int l_readfile (lua_State *L) {
  ah_sched *S = getsched(L);
  const char *path = ah_fs_checkpath(L, 1);
  ah_task *t = ah_current(S, L, "read_file");
  job *j = newjob(L, S, J_READ, path, NULL, 0);
  j->step = S_OPEN;
  j->flags = UV_FS_O_RDONLY;
  return startjob(L, t, j, "a file read");
}

/* Writes data (at 2) to the file at 1: 'kind' J_WRITE ('flags' say how
** to open it) or J_ATOMIC. */
static int writefile (lua_State *L, int kind, int flags, const char *fname) {
  ah_sched *S = getsched(L);
  const char *path = ah_fs_checkpath(L, 1);
  size_t len;
  const char *data;
  ah_task *t;
  job *j;
  if (lua_type(L, 2) != LUA_TSTRING) luaL_typeerror(L, 2, "string");
  data = lua_tolstring(L, 2, &len);
  t = ah_current(S, L, fname);
  j = newjob(L, S, kind, path, NULL, kind == J_ATOMIC ? 32 : 0);
  if (len > 0) {  /* a copy: the string may go before the request ends */
    if ((j->buf = (char *)malloc(len)) == NULL)
      return luaL_error(L, "not enough memory");
    memcpy(j->buf, data, len);
  }
  j->len = len;
  j->flags = flags;
  j->step = (kind == J_ATOMIC) ? S_STATDEST : S_OPEN;
  return startjob(L, t, j, "a file write");
}

/* write_file(path, data [, {atomic = bool}]) */
static int l_writefile (lua_State *L) {
  int atomic = 0;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "atomic");
    atomic = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  lua_settop(L, 2);
  if (atomic) return writefile(L, J_ATOMIC, 0, "write_file");
  return writefile(L, J_WRITE,
                   UV_FS_O_WRONLY | UV_FS_O_CREAT | UV_FS_O_TRUNC,
                   "write_file");
}

static int l_appendfile (lua_State *L) {
  lua_settop(L, 2);
  return writefile(L, J_WRITE,
                   UV_FS_O_WRONLY | UV_FS_O_CREAT | UV_FS_O_APPEND,
                   "append_file");
}

/* The open flags of an io.open mode ("r", "w+", "ab", "wx"...), or -1. */
static int openflags (const char *mode) {
  int flags, plus = 0, excl = 0;
  char m = *mode++;
  if (*mode == '+') { plus = 1; mode++; }
  for (; *mode; mode++) {
    if (*mode == 'x' && m == 'w') excl = 1;
    else if (*mode != 'b') return -1;
  }
  switch (m) {
    case 'r': flags = 0; break;
    case 'w': flags = UV_FS_O_CREAT | UV_FS_O_TRUNC; break;
    case 'a': flags = UV_FS_O_CREAT | UV_FS_O_APPEND; break;
    default: return -1;
  }
  if (plus) flags |= UV_FS_O_RDWR;
  else flags |= (m == 'r') ? UV_FS_O_RDONLY : UV_FS_O_WRONLY;
  if (excl) flags |= UV_FS_O_EXCL;
  return flags;
}

/* open(path [, mode = "r"]) -> file */
static int l_open (lua_State *L) {
  ah_sched *S = getsched(L);
  const char *path = ah_fs_checkpath(L, 1);
  const char *mode = luaL_optstring(L, 2, "r");
  int flags = openflags(mode);
  ah_task *t;
  job *j;
  luaL_argcheck(L, flags >= 0, 2, "invalid mode");
  t = ah_current(S, L, "open");
  j = newjob(L, S, J_OPEN, path, NULL, 0);
  j->flags = flags;
  return startjob(L, t, j, "a file open");
}

/* }====================================================== */


static const luaL_Reg jobmetameth[] = {
  {"__gc", jobgc},
  {NULL, NULL}
};

static const luaL_Reg noneth[] = {
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"read_file", l_readfile},
  {"write_file", l_writefile},
  {"append_file", l_appendfile},
  {"open", l_open},
  {"stat", l_stat},
  {"lstat", l_lstat},
  {"exists", l_exists},
  {"scandir", l_scandir},
  {"mkdir", l_mkdir},
  {"rmdir", l_rmdir},
  {"unlink", l_unlink},
  {"remove", l_remove},
  {"rename", l_rename},
  {"copy", l_copy},
  {"mkdtemp", l_mkdtemp},
  {"watcher", ah_fs_watcher},
  {NULL, NULL}
};

int luaopen_asynchost_core_fs (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  ah_fs_fileclass(L, S);
  ah_fs_watcherclass(L, S);
  ah_newclass(L, S, -1, JOB_MT, noneth, jobmetameth);
  lua_newtable(L);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
  return 1;
}
