/* Baseline for the runtime round trip: a plain C ping-pong over a Unix stream socket with the
 * runtime protocol's framing (4-byte big-endian length + body).
 *   uds_baseline server SOCK                  echo server: answers every frame with the same bytes
 *   uds_baseline client SOCK N conn|persist BYTES
 *                                             N round trips of a BYTES-long envelope, a new
 *                                             connection per message (conn) or one kept (persist);
 *                                             prints "rate=<round trips per second>"
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench_message.h"

enum { kMaxBody = 1 << 20 };

static int ReadFull(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r == 0) return 0;
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += r;
    n -= (size_t)r;
  }
  return 1;
}

static int WriteFull(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 1;
}

/* Reads one frame into buf (header included); returns the body length or -1 on EOF/error. */
static long ReadFrame(int fd, char* buf) {
  uint32_t be;
  if (ReadFull(fd, (char*)&be, 4) <= 0) return -1;
  uint32_t n = ntohl(be);
  if (n > kMaxBody) return -1;
  memcpy(buf, &be, 4);
  if (n > 0 && ReadFull(fd, buf + 4, n) <= 0) return -1;
  return (long)n;
}

static struct sockaddr_un Addr(const char* path) {
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  return a;
}

static int Server(const char* path) {
  signal(SIGPIPE, SIG_IGN);
  unlink(path);
  int ls = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = Addr(path);
  if (bind(ls, (struct sockaddr*)&a, sizeof a) != 0 || listen(ls, 512) != 0) {
    perror("bind/listen");
    return 1;
  }
  char* buf = malloc(kMaxBody + 4);
  for (;;) {
    int c = accept(ls, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR) continue;
      perror("accept");
      return 1;
    }
    long n;
    while ((n = ReadFrame(c, buf)) >= 0) {
      if (WriteFull(c, buf, (size_t)n + 4) <= 0) break; /* one write: header + body */
    }
    close(c);
  }
}

static int Connect(const char* path) {
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = Addr(path);
  if (connect(s, (struct sockaddr*)&a, sizeof a) != 0) {
    perror("connect");
    exit(1);
  }
  return s;
}

static double Now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int Client(const char* path, long n, int persist, size_t bytes) {
  char* req = malloc(bytes + 5);
  char* resp = malloc(kMaxBody + 4);
  uint32_t be = htonl((uint32_t)bytes);
  memcpy(req, &be, 4);
  BenchMessage(req + 4, bytes, 1);
  int s = -1;
  double t0 = Now();
  for (long i = 0; i < n; i++) {
    if (s < 0) s = Connect(path);
    if (WriteFull(s, req, bytes + 4) <= 0 || ReadFrame(s, resp) < 0) {
      fprintf(stderr, "round trip %ld failed\n", i);
      return 1;
    }
    if (!persist) {
      close(s);
      s = -1;
    }
  }
  double dt = Now() - t0;
  printf("rate=%.0f us_per_rtt=%.2f\n", (double)n / dt, dt / (double)n * 1e6);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "server") == 0) return Server(argv[2]);
  if (argc == 6 && strcmp(argv[1], "client") == 0) {
    return Client(argv[2], atol(argv[3]), strcmp(argv[4], "persist") == 0, (size_t)atol(argv[5]));
  }
  fprintf(stderr, "usage: %s server SOCK | client SOCK N conn|persist BYTES\n", argv[0]);
  return 2;
}
