/*
** ptyrun: runs a command on a new pseudo-terminal, types what a script
** says, and prints what the terminal shows.  The REPL's specs drive
** asynchost with it (spec/repl_spec.lua).
**
**   ptyrun [-t secs] [-e secs] [-c cols] [-r rawfile] script -- command
**          [args...]
**
** The script has one step a line (TEXT takes C escapes: \n \r \t \e \\
** \xHH):
**   send TEXT      types TEXT
**   ctrl-c         types Ctrl-C (ctrl-d: Ctrl-D)
**   expect TEXT    waits until the output since the last match holds
**                  TEXT (escape sequences and carriage returns removed)
**   sleep SECS     waits, reading the output
**   wait           waits for the command to end (also done at the end)
**   # ...          a comment
**
** Prints the screen's lines as a terminal would show them (escape
** sequences applied: carriage returns, line clearing, cursor moves), then
** "[exit N]" or "[signal N]".  Exits 0 if every expect matched and the
** command ended within -t seconds (default 30), 1 if not (the transcript
** says what was waited for), 2 on a usage or system error.  An expect
** gives up after -e seconds (default 10).  -r saves the raw output.
*/
#define _DEFAULT_SOURCE
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROWS  40

static int master = -1;
static pid_t child = -1;
static int childstatus, ended, eof;
static int cols = 200;
static double deadline;  /* of the whole run */
static double expecttime = 10;
static FILE *raw;  /* -r */

/* what came out, without escape sequences and carriage returns */
static char *plain;
static size_t nplain, capplain, mark;

/* the screen: lines, each a string, and the cursor */
static char **lines;
static size_t *lens;
static int nlines, caplines, row, col;

/* the escape sequence being read */
static int esc;            /* 0 none, 1 after ESC, 2 CSI, 3 OSC, 4 one more */
static char params[64];
static size_t nparams;


static void die (const char *what) {
  fprintf(stderr, "ptyrun: %s: %s\n", what, strerror(errno));
  if (child > 0) kill(-child, SIGKILL);
  exit(2);
}

static void *xrealloc (void *p, size_t n) {
  p = realloc(p, n);
  if (p == NULL) die("realloc");
  return p;
}

static double now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}


/* {======================================================
** The screen
** ======================================================= */

static void ensurerow (int r) {
  while (nlines <= r) {
    if (nlines == caplines) {
      caplines = caplines ? caplines * 2 : 64;
      lines = xrealloc(lines, caplines * sizeof(char *));
      lens = xrealloc(lens, caplines * sizeof(size_t));
    }
    lines[nlines] = xrealloc(NULL, cols + 1);
    lens[nlines++] = 0;
  }
}

static void putch (char c) {
  if (col >= cols) {  /* wrap */
    row++;
    col = 0;
  }
  ensurerow(row);
  while ((int)lens[row] < col) lines[row][lens[row]++] = ' ';
  lines[row][col] = c;
  if ((int)lens[row] <= col) lens[row] = col + 1;
  col++;
}

static int param (int k, int dflt) {  /* the k-th number of a CSI */
  const char *p = params;
  int v;
  params[nparams] = '\0';
  while (*p == '?' || *p == '>') p++;
  while (k-- > 0 && (p = strchr(p, ';')) != NULL) p++;
  if (p == NULL || *p < '0' || *p > '9') return dflt;
  v = atoi(p);
  return v == 0 ? dflt : v;
}

static void csi (char final) {
  int n = param(0, 1), k;
  ensurerow(row);
  switch (final) {
    case 'A': row = row >= n ? row - n : 0; break;
    case 'B': row += n; break;
    case 'C': col += n; break;
    case 'D': col = col >= n ? col - n : 0; break;
    case 'G': col = n - 1; break;
    case 'H': {
      int top = nlines > ROWS ? nlines - ROWS : 0;
      row = top + n - 1;
      col = param(1, 1) - 1;
      break;
    }
    case 'K':
      switch (param(0, 0)) {
        case 0: if ((int)lens[row] > col) lens[row] = col; break;
        case 1:
          for (k = 0; k <= col && k < (int)lens[row]; k++) lines[row][k] = ' ';
          break;
        default: lens[row] = 0;
      }
      break;
    case 'J':
      if (param(0, 0) == 0) {
        if ((int)lens[row] > col) lens[row] = col;
        for (k = row + 1; k < nlines; k++) lens[k] = 0;
      }
      else
        for (k = 0; k < nlines; k++) lens[k] = 0;
      break;
    case 'P':  /* delete n characters */
      if (col < (int)lens[row]) {
        int m = (int)lens[row] - col;
        if (n > m) n = m;
        memmove(lines[row] + col, lines[row] + col + n, m - n);
        lens[row] -= n;
      }
      break;
    case '@':  /* insert n blanks */
      if (col < (int)lens[row]) {
        int m = (int)lens[row] - col;
        if (col + n + m > cols) m = cols - col - n;
        if (m > 0) {
          memmove(lines[row] + col + n, lines[row] + col, m);
          memset(lines[row] + col, ' ', n);
          lens[row] = col + n + m;
        }
      }
      break;
    default:  /* modes, colours: nothing on the text */
      break;
  }
}

/* One byte of output: on the screen, and in 'plain' unless escaped. */
static void feed (unsigned char c) {
  switch (esc) {
    case 1:
      esc = (c == '[') ? 2 : (c == ']') ? 3 :
            (c == '(' || c == ')' || c == '#') ? 4 : 0;
      nparams = 0;
      return;
    case 2:
      if (c >= 0x40 && c <= 0x7e) {
        esc = 0;
        csi((char)c);
      }
      else if (c >= 0x30 && c <= 0x3f && nparams < sizeof(params) - 1)
        params[nparams++] = (char)c;
      return;
    case 3:
      if (c == 7) esc = 0;
      else if (c == 0x1b) esc = 4;  /* ESC \ ends it */
      return;
    case 4:
      esc = 0;
      return;
  }
  if (c == 0x1b) {
    esc = 1;
    return;
  }
  if (c >= 32 || c == '\n' || c == '\t') {  /* no \r, \b, bell... */
    if (nplain + 1 >= capplain) {
      capplain = capplain ? capplain * 2 : 4096;
      plain = xrealloc(plain, capplain);
    }
    plain[nplain++] = (char)c;
    plain[nplain] = '\0';
  }
  switch (c) {
    case '\r': col = 0; break;
    case '\n': row++; ensurerow(row); break;
    case '\b': if (col > 0) col--; break;
    case '\t': col = (col / 8 + 1) * 8; break;
    default:
      if (c >= 32 && c != 127) putch((char)c);
  }
}

static void printscreen (void) {
  int k;
  for (k = 0; k < nlines; k++) {
    size_t l = lens[k];
    while (l > 0 && lines[k][l - 1] == ' ') l--;
    fwrite(lines[k], 1, l, stdout);
    fputc('\n', stdout);
  }
}

/* }====================================================== */


/* {======================================================
** The command
** ======================================================= */

static void reap (int block) {
  if (!ended && waitpid(child, &childstatus, block ? 0 : WNOHANG) == child)
    ended = 1;
}

/* Reads the output until 'until' (a time), or until 'done' says so:
** then returns 1. */
static int pump (double until, int (*done) (void)) {
  for (;;) {
    struct pollfd p;
    double left;
    if (done != NULL && done()) return 1;
    reap(0);
    if (eof && ended) return done == NULL;
    left = until - now();
    if (left > deadline - now()) left = deadline - now();
    if (left <= 0) return 0;
    if (eof) {  /* the terminal is closed: only the exit to wait for */
      usleep(10000);
      continue;
    }
    p.fd = master;
    p.events = POLLIN;
    if (poll(&p, 1, (int)(left * 1000) + 1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (p.revents) {
      unsigned char buf[4096];
      ssize_t n = read(master, buf, sizeof(buf)), k;
      if (n <= 0) {
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        eof = 1;  /* EIO: no one has the terminal open any more */
        continue;
      }
      if (raw != NULL) fwrite(buf, 1, n, raw);
      for (k = 0; k < n; k++) feed(buf[k]);
    }
  }
}

static const char *wanted;

static int found (void) {
  char *p = strstr(plain ? plain + mark : "", wanted);
  if (p == NULL) return 0;
  mark = (p - plain) + strlen(wanted);
  return 1;
}

static int exited (void) { return eof && ended; }

static void type (const char *s, size_t l) {
  while (l > 0) {
    ssize_t n = write(master, s, l);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("write");
    }
    s += n;
    l -= n;
  }
}

/* Decodes the C escapes of 's' in place; returns the new length. */
static size_t unescape (char *s) {
  char *o = s;
  const char *i = s;
  while (*i) {
    if (*i != '\\' || i[1] == '\0') {
      *o++ = *i++;
      continue;
    }
    i++;
    switch (*i) {
      case 'n': *o++ = '\n'; i++; break;
      case 'r': *o++ = '\r'; i++; break;
      case 't': *o++ = '\t'; i++; break;
      case 'e': *o++ = 0x1b; i++; break;
      case 'x': {
        char hex[3] = {0, 0, 0};
        hex[0] = i[1];
        hex[1] = hex[0] ? i[2] : 0;
        *o++ = (char)strtol(hex, NULL, 16);
        i += hex[1] ? 3 : 2;
        break;
      }
      default: *o++ = *i++;
    }
  }
  *o = '\0';
  return o - s;
}

/* }====================================================== */


static void usage (void) {
  fputs("usage: ptyrun [-t secs] [-e secs] [-c cols] [-r rawfile] script "
        "-- command [args...]\n", stderr);
  exit(2);
}

int main (int argc, char **argv) {
  double total = 30;
  int i = 1, failed = 0;
  const char *scriptname;
  FILE *script;
  char line[8192];
  struct winsize ws;
  for (; i < argc && argv[i][0] == '-' && argv[i][1] != '-'; i += 2) {
    if (i + 1 >= argc) usage();
    switch (argv[i][1]) {
      case 't': total = atof(argv[i + 1]); break;
      case 'e': expecttime = atof(argv[i + 1]); break;
      case 'c': cols = atoi(argv[i + 1]); break;
      case 'r':
        if ((raw = fopen(argv[i + 1], "wb")) == NULL) die(argv[i + 1]);
        break;
      default: usage();
    }
  }
  if (i + 2 >= argc || strcmp(argv[i + 1], "--") != 0 || cols < 20) usage();
  scriptname = argv[i];
  if ((script = fopen(scriptname, "r")) == NULL) die(scriptname);
  memset(&ws, 0, sizeof(ws));
  ws.ws_row = ROWS;
  ws.ws_col = (unsigned short)cols;
  child = forkpty(&master, NULL, NULL, &ws);
  if (child < 0) die("forkpty");
  if (child == 0) {
    execvp(argv[i + 2], argv + i + 2);
    fprintf(stderr, "ptyrun: cannot run %s: %s\n", argv[i + 2],
            strerror(errno));
    _exit(127);
  }
  deadline = now() + total;
  ensurerow(0);
  while (!failed && fgets(line, sizeof(line), script) != NULL) {
    size_t l = strlen(line);
    char *arg;
    if (l > 0 && line[l - 1] == '\n') line[--l] = '\0';
    if (line[0] == '\0' || line[0] == '#') continue;
    arg = strchr(line, ' ');
    if (arg != NULL) *arg++ = '\0';
    else arg = line + l;
    if (strcmp(line, "send") == 0) {
      l = unescape(arg);
      type(arg, l);
    }
    else if (strcmp(line, "ctrl-c") == 0)
      type("\003", 1);
    else if (strcmp(line, "ctrl-d") == 0)
      type("\004", 1);
    else if (strcmp(line, "sleep") == 0)
      pump(now() + atof(arg), NULL);
    else if (strcmp(line, "expect") == 0) {
      unescape(arg);
      wanted = arg;
      if (!pump(now() + expecttime, found)) {
        printscreen();
        printf("[ptyrun: no \"%s\" after %g s]\n", arg, expecttime);
        failed = 1;
      }
    }
    else if (strcmp(line, "wait") == 0)
      pump(deadline, exited);
    else {
      fprintf(stderr, "ptyrun: %s: unknown step '%s'\n", scriptname, line);
      kill(-child, SIGKILL);
      return 2;
    }
  }
  fclose(script);
  if (!failed) {
    pump(deadline, exited);
    if (!exited()) {
      printscreen();
      printf("[ptyrun: still running after %g s]\n", total);
      failed = 1;
    }
  }
  if (failed) {
    kill(-child, SIGKILL);
    reap(1);
  }
  else
    printscreen();
  if (ended && WIFEXITED(childstatus))
    printf("[exit %d]\n", WEXITSTATUS(childstatus));
  else if (ended && WIFSIGNALED(childstatus))
    printf("[signal %d]\n", WTERMSIG(childstatus));
  fflush(stdout);
  if (raw != NULL) fclose(raw);
  return failed;
}
