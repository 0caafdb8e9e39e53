/*
** asynchost.core.fs: files and directories on libuv's fs requests (they
** run on libuv's thread pool; the loop never blocks), and watchers on
** uv_fs_event.  lua/asynchost/fs.lua adds what composes these: mkdir -p,
** rmtree, tempdir, scandir's iterator, and watch() (debounce, recursion).
**
** A request outlives the task that made it: once a read runs in the
** thread pool nothing can stop it.  So a request ("job") is malloc'ed and
** has two owners, libuv (until its last callback) and the waiting frame
** (a box userdata on the task's stack, whose __gc lets go too); the last
** one frees it, closing a file it opened that nobody took.  A job may
** chain several requests in C (read_file: open, fstat, read..., close) and
** wakes its task once, at the end; a task that gave up makes the chain
** skip to its cleanup (close the file, remove the temporary one).
**
** An open file (ffile) is owned the same way by its userdata and by the
** operation in flight on it (at most one).  Reads fill a read-ahead buffer
** in the ffile itself, so the data of a read whose task was cancelled is
** kept for the next read.  An operation finding an orphan still in flight
** waits for it first.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "asynchost.h"

#define JOB_MT      "asynchost.fs.request"
#define FILE_MT     "asynchost.File"
#define WATCHER_MT  "asynchost.fs.Watcher"

#define CHUNK   (64 * 1024)       /* a read of unknown length */
#define MAXIO   (1u << 30)        /* most bytes in one read or write */
#define QMAX    65536             /* watcher: most events kept unread */

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
static void pushfserror (lua_State *L, int err, const char *path,
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

static int raisefserror (lua_State *L, int err, const char *path,
                         const char *dest) {
  pushfserror(L, err, path, dest);
  return lua_error(L);
}

/* A path argument: a string, strictly (numbers are not paths). */
static const char *checkpath (lua_State *L, int i) {
  if (lua_type(L, i) != LUA_TSTRING) luaL_typeerror(L, i, "string");
  return lua_tostring(L, i);
}

static void onclosed (uv_fs_t *req) {
  uv_fs_req_cleanup(req);
  free(req);
}

/* Closes 'fd' in the thread pool; nobody waits for it. */
static void closelater (uv_loop_t *loop, uv_file fd) {
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
  if (j->fd >= 0) closelater(j->loop, j->fd);  /* opened for nobody */
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
      b = uv_buf_init(j->buf + j->len, (unsigned int)(n > MAXIO ? MAXIO : n));
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
      b = uv_buf_init(j->buf + j->done, (unsigned int)(n > MAXIO ? MAXIO : n));
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
      if (!growbuf(j, j->size > 0 ? (size_t)size : CHUNK)) {
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

static void newfile (lua_State *L, job *j);

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
    pushfserror(L, j->err, j->path,
                (j->kind == J_RENAME || j->kind == J_COPY) ? j->path2 : NULL);
    dropjob(box);
    return lua_error(L);
  }
  switch (j->kind) {
    case J_STAT: case J_LSTAT: pushstat(L, &j->req.statbuf); n = 1; break;
    case J_EXISTS: lua_pushboolean(L, j->err == 0); n = 1; break;
    case J_MKDTEMP: lua_pushstring(L, j->req.path); n = 1; break;
    case J_SCANDIR: n = pushscandir(L, j); break;
    case J_OPEN: newfile(L, j); n = 1; break;
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
  const char *path = checkpath(L, 1);
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
  const char *path = checkpath(L, 1);
  int mode = (int)luaL_optinteger(L, 2, 0777);
  ah_task *t = ah_current(S, L, "mkdir");
  job *j = newjob(L, S, J_MKDIR, path, NULL, 0);
  j->mode = mode;
  return startjob(L, t, j, "a directory creation");
}

static int l_rename (lua_State *L) {
  ah_sched *S = getsched(L);
  const char *from = checkpath(L, 1), *to = checkpath(L, 2);
  ah_task *t = ah_current(S, L, "rename");
  job *j = newjob(L, S, J_RENAME, from, to, 0);
  return startjob(L, t, j, "a rename");
}

/* copy(src, dst [, {exclusive = bool}]) */
static int l_copy (lua_State *L) {
  ah_sched *S = getsched(L);
  const char *from = checkpath(L, 1), *to = checkpath(L, 2);
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
  const char *path = checkpath(L, 1);
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
  const char *path = checkpath(L, 1);
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
  const char *path = checkpath(L, 1);
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
    closelater(f->loop, f->fd);
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
                      (unsigned int)(n > MAXIO ? MAXIO : n));
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
  return raisefserror(L, err, f->path, NULL);
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
    if (o->kind == OP_CLOSE) closelater(f->loop, o->fd);
    free(o->data);
    free(o);
    return ah_suspend(L, k, ctx);
  }
  if ((r = issueop(o)) < 0) {
    t->unwait = NULL;
    if (o->kind == OP_CLOSE) closelater(f->loop, o->fd);
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
  *box = NULL;
  f->boxed = 0;
  f->closed = 1;
  if (f->busy != NULL) f->busy->t = NULL;  /* its task is gone too */
  f->waiter = NULL;
  settle(f);
  return 0;
}

/* Pushes a file for the descriptor job 'j' opened (taken from it). */
static void newfile (lua_State *L, job *j) {
  ffile **box = (ffile **)lua_newuserdatauv(L, sizeof(ffile *), 0);
  ffile *f;
  *box = NULL;
  luaL_setmetatable(L, FILE_MT);
  if ((f = (ffile *)calloc(1, sizeof(ffile))) == NULL ||
      (f->path = strdup(j->path)) == NULL) {
    free(f);
    luaL_error(L, "not enough memory");  /* the job closes the fd */
  }
  f->loop = j->loop;
  f->S = j->S;
  f->fd = j->fd;
  f->boxed = 1;
  j->fd = -1;
  *box = f;
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
  size_t grow = f->len > CHUNK ? f->len : CHUNK;  /* reads double */
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
        *want = (n - f->len > CHUNK) ? n - f->len : CHUNK;
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
  if (want > MAXIO) want = MAXIO;
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


/* {======================================================
** Watchers: uv_fs_event handles feeding one queue of events
** ======================================================= */

typedef struct watcher watcher;

typedef struct wnode {  /* one watched path */
  uv_fs_event_t h;
  watcher *w;          /* NULL once let go (closing) */
  int isdir;           /* events name entries of the directory */
  char path[1];        /* as given (allocated longer) */
} wnode;

typedef struct wevent {
  char *path;
  int rename;          /* UV_RENAME (else UV_CHANGE) */
} wevent;

struct watcher {
  ah_sched *S;
  wnode **nodes;
  int nnodes, capnodes;
  wevent *q;           /* ring of events not read yet */
  size_t qhead, qlen, qcap;
  ah_task *waiter;
  uv_timer_t *timer;   /* poll's timeout (malloc'ed), or NULL */
  int timedout;
  int closed;
  int err;             /* an error a handle reported, or 0 */
};

static void freehandle (uv_handle_t *h) {
  free(h);
}

static void wakewaiter (watcher *w) {
  if (w->waiter != NULL) {
    ah_task *t = w->waiter;
    w->waiter = NULL;
    ah_wake(t, AH_WAKE_OK);
  }
}

static void push (watcher *w, char *path, int rename) {
  wevent *e;
  if (w->qlen > 0) {  /* the same as the last one: once is enough */
    e = &w->q[(w->qhead + w->qlen - 1) % w->qcap];
    if (e->rename == rename && strcmp(e->path, path) == 0) {
      free(path);
      return;
    }
  }
  if (w->qlen == w->qcap) {
    size_t ncap = w->qcap ? w->qcap * 2 : 16, i;
    wevent *nq;
    if (w->qcap >= QMAX ||
        (nq = (wevent *)malloc(ncap * sizeof(wevent))) == NULL) {
      free(path);  /* nobody reads: drop it */
      return;
    }
    for (i = 0; i < w->qlen; i++) nq[i] = w->q[(w->qhead + i) % w->qcap];
    free(w->q);
    w->q = nq;
    w->qhead = 0;
    w->qcap = ncap;
  }
  e = &w->q[(w->qhead + w->qlen++) % w->qcap];
  e->path = path;
  e->rename = rename;
}

/* Is 'name' the last component of 'path'?  On Linux an event about the
** watched directory itself (deleted, moved, chmod'ed) comes with that name
** (libuv names it so); it is reported as the directory.  (An entry named as
** its directory is then mistaken for it.) */
static int isself (const char *path, size_t plen, const char *name) {
  size_t nlen = strlen(name);
  while (plen > 1 && path[plen - 1] == '/') plen--;
  return nlen > 0 && nlen <= plen &&
         memcmp(path + plen - nlen, name, nlen) == 0 &&
         (nlen == plen || path[plen - nlen - 1] == '/');
}

static void onevent (uv_fs_event_t *h, const char *name, int events,
                     int status) {
  wnode *n = (wnode *)h->data;
  watcher *w = n->w;
  size_t plen = strlen(n->path);
  char *path;
  if (w == NULL) return;
  if (status < 0) {
    if (w->err == 0) w->err = status;
    wakewaiter(w);
    return;
  }
  if (n->isdir && name != NULL && !isself(n->path, plen, name)) {
    /* "dir" + "/" + name */
    int slash = plen > 0 && n->path[plen - 1] != '/';
    if ((path = (char *)malloc(plen + slash + strlen(name) + 1)) == NULL)
      return;
    memcpy(path, n->path, plen);
    if (slash) path[plen] = '/';
    strcpy(path + plen + slash, name);
  }
  else if ((path = strdup(n->path)) == NULL)
    return;
  push(w, path, (events & UV_RENAME) != 0);
  wakewaiter(w);
}

static watcher *checkwatcher (lua_State *L, int i) {
  return (watcher *)luaL_checkudata(L, i, WATCHER_MT);
}

static void closenode (wnode *n) {
  n->w = NULL;
  uv_close((uv_handle_t *)&n->h, freehandle);
}

static void closewatcher (watcher *w) {
  int i;
  if (w->closed) return;
  w->closed = 1;
  for (i = 0; i < w->nnodes; i++) closenode(w->nodes[i]);
  free(w->nodes);
  w->nodes = NULL;
  w->nnodes = w->capnodes = 0;
  while (w->qlen > 0) {
    free(w->q[w->qhead].path);
    w->qhead = (w->qhead + 1) % w->qcap;
    w->qlen--;
  }
  free(w->q);
  w->q = NULL;
  w->qcap = 0;
  if (w->timer != NULL) {
    w->timer->data = NULL;
    uv_close((uv_handle_t *)w->timer, freehandle);
    w->timer = NULL;
  }
}

/* watcher() -> a watcher watching nothing yet */
static int l_watcher (lua_State *L) {
  watcher *w = (watcher *)lua_newuserdatauv(L, sizeof(watcher), 0);
  memset(w, 0, sizeof(*w));
  w->S = getsched(L);
  luaL_setmetatable(L, WATCHER_MT);
  return 1;
}

/* add(path, isdir): watches path (the directory's entries if isdir) */
static int w_add (lua_State *L) {
  watcher *w = checkwatcher(L, 1);
  const char *path = checkpath(L, 2);
  int isdir = lua_toboolean(L, 3), r;
  wnode *n;
  if (w->closed) return luaL_error(L, "attempt to use a closed watcher");
  if (w->nnodes == w->capnodes) {
    int ncap = w->capnodes ? w->capnodes * 2 : 4;
    wnode **nn = (wnode **)realloc(w->nodes, ncap * sizeof(wnode *));
    if (nn == NULL) return luaL_error(L, "not enough memory");
    w->nodes = nn;
    w->capnodes = ncap;
  }
  if ((n = (wnode *)malloc(sizeof(wnode) + strlen(path))) == NULL)
    return luaL_error(L, "not enough memory");
  strcpy(n->path, path);
  n->isdir = isdir;
  n->w = w;
  uv_fs_event_init(w->S->loop, &n->h);
  n->h.data = n;
  /* inotify_add_watch: no I/O, the loop does not wait */
  if ((r = uv_fs_event_start(&n->h, onevent, path, 0)) < 0) {
    closenode(n);
    return raisefserror(L, r, path, NULL);
  }
  w->nodes[w->nnodes++] = n;
  return 0;
}

/* remove(path): stops watching path and what is under it; -> count */
static int w_remove (lua_State *L) {
  watcher *w = checkwatcher(L, 1);
  size_t len;
  const char *path = luaL_checklstring(L, 2, &len);
  int i, j = 0, n = 0;
  for (i = 0; i < w->nnodes; i++) {
    wnode *x = w->nodes[i];
    if (strncmp(x->path, path, len) == 0 &&
        (x->path[len] == '\0' || x->path[len] == '/')) {
      closenode(x);
      n++;
    }
    else w->nodes[j++] = x;
  }
  w->nnodes = j;
  lua_pushinteger(L, n);
  return 1;
}

static void ontimeout (uv_timer_t *tm) {
  watcher *w = (watcher *)tm->data;
  if (w == NULL) return;
  w->timedout = 1;
  wakewaiter(w);
}

static void unpoll (ah_sched *S, ah_task *t) {
  watcher *w = (watcher *)t->waitobj;
  (void)S;
  if (w->waiter == t) w->waiter = NULL;
  if (w->timer != NULL) uv_timer_stop(w->timer);
}

static int pollk (lua_State *L, int status, lua_KContext ctx);

static int pollstep (lua_State *L, watcher *w, int timedout) {
  lua_Number timeout = luaL_optnumber(L, 2, -1);
  ah_task *t;
  if (w->qlen > 0) {
    wevent *e = &w->q[w->qhead];
    lua_pushstring(L, e->path);
    lua_pushstring(L, e->rename ? "rename" : "change");
    free(e->path);
    w->qhead = (w->qhead + 1) % w->qcap;
    w->qlen--;
    return 2;
  }
  if (w->err != 0) {
    int err = w->err;
    w->err = 0;
    return raisefserror(L, err, w->nnodes ? w->nodes[0]->path : "?", NULL);
  }
  if (w->closed || timedout || timeout == 0) return 0;
  if (w->waiter != NULL)
    return luaL_error(L, "another task is already waiting on this watcher");
  t = ah_current(w->S, L, "next");
  if (!ah_wait(t, unpoll, w, "a file watcher")) {
    w->waiter = t;
    if (timeout > 0) {
      if (w->timer == NULL) {
        if ((w->timer = (uv_timer_t *)malloc(sizeof(uv_timer_t))) == NULL) {
          ah_abortwait(w->S, t);
          return luaL_error(L, "not enough memory");
        }
        uv_timer_init(w->S->loop, w->timer);
        w->timer->data = w;
      }
      w->timedout = 0;
      uv_update_time(w->S->loop);
      uv_timer_start(w->timer, ontimeout,
                     (uint64_t)(timeout > 1e9 ? 1e12 : timeout * 1000 + 0.999),
                     0);
    }
  }
  return ah_suspend(L, pollk, 0);
}

static int pollk (lua_State *L, int status, lua_KContext ctx) {
  watcher *w = (watcher *)lua_touserdata(L, 1);
  int timedout = w->timedout;
  (void)status; (void)ctx;
  w->timedout = 0;
  if (w->timer != NULL) uv_timer_stop(w->timer);
  ah_checkwake(L, w->S->current);
  return pollstep(L, w, timedout);
}

/* poll([timeout]) -> path, "change"|"rename"; nothing when closed or
** after timeout seconds without an event */
static int w_poll (lua_State *L) {
  watcher *w = checkwatcher(L, 1);
  if (!lua_isnoneornil(L, 2))
    luaL_argcheck(L, luaL_checknumber(L, 2) >= 0, 2,
                  "non-negative number expected");
  lua_settop(L, 2);
  return pollstep(L, w, 0);
}

static int w_close (lua_State *L) {
  watcher *w = checkwatcher(L, 1);
  closewatcher(w);
  wakewaiter(w);  /* it reads nothing: the end */
  return 0;
}

static int w_gc (lua_State *L) {
  watcher *w = checkwatcher(L, 1);
  w->waiter = NULL;
  closewatcher(w);
  return 0;
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

static const luaL_Reg watchermeth[] = {
  {"add", w_add},
  {"remove", w_remove},
  {"poll", w_poll},
  {"close", w_close},
  {NULL, NULL}
};

static const luaL_Reg watchermetameth[] = {
  {"__gc", w_gc},
  {NULL, NULL}
};

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
  {"watcher", l_watcher},
  {NULL, NULL}
};

int luaopen_asynchost_core_fs (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  ah_newclass(L, S, -1, FILE_MT, filemeth, filemetameth);
  ah_newclass(L, S, -1, WATCHER_MT, watchermeth, watchermetameth);
  ah_newclass(L, S, -1, JOB_MT, noneth, jobmetameth);
  lua_newtable(L);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
  return 1;
}
