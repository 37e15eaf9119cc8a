#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/redis_child.h"
#include "ops/log.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The first executable @p name in PATH, then the usual Debian places. */
static int find_program(const char *name, char *out, size_t outlen) {
  const char *path = getenv("PATH");
  char dirs[4096];
  snprintf(dirs, sizeof dirs, "%s:/usr/bin:/usr/sbin:/usr/local/bin", path ? path : "");
  for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    if (*d && snprintf(out, outlen, "%s/%s", d, name) < (int)outlen && access(out, X_OK) == 0)
      return 0;
  }
  return -1;
}

static int free_port(void) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

/* The child: its own process group, so a Ctrl-C in the terminal reaches only the demo,
 * which then stops Redis after the processor; and it dies with the demo. The demo has
 * librdkafka's threads by now, so the child calls only async-signal-safe functions. */
static void redis_exec(const char *exe, char *const argv[], const char *log, pid_t parent) {
  extern char **environ;
  int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent)
    _exit(127);
  if (fd >= 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
  }
  execve(exe, argv, environ);
  _exit(127);
}

int kefu_redis_child_start(kefu_redis_child_t *r, const char *name, char *errstr, size_t errlen) {
  char exe[PATH_MAX], port[16];
  if (find_program("redis-server", exe, sizeof exe)) {
    snprintf(errstr, errlen,
             "redis-server not found in PATH or /usr/bin "
             "(Debian: apt-get install redis-server)");
    return -1;
  }
  if (kefu_cli_temp_dir(name, r->dir, sizeof r->dir, errstr, errlen))
    return -1;
  snprintf(r->log, sizeof r->log, "%s/redis.log", r->dir);
  if ((r->port = free_port()) < 0) {
    snprintf(errstr, errlen, "no free TCP port on 127.0.0.1");
    return -1;
  }
  snprintf(port, sizeof port, "%d", r->port);
  char *const argv[] = {"redis-server", "--port", port,    "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no",     "--dir", r->dir,   NULL};
  pid_t parent = getpid();
  if ((r->pid = fork()) == 0)
    redis_exec(exe, argv, r->log, parent);
  if (r->pid < 0) {
    snprintf(errstr, errlen, "fork: %s", strerror(errno));
    return -1;
  }
  return 0;
}

static bool redis_pong(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  char buf[16] = {0};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
            write(fd, "PING\r\n", 6) == 6 && read(fd, buf, sizeof buf - 1) > 0 &&
            strncmp(buf, "+PONG", 5) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

/* The last line redis-server wrote, for an error message. */
static void log_tail(const char *path, char *out, size_t outlen) {
  char line[512] = "";
  FILE *f = fopen(path, "r");
  out[0] = '\0';
  while (f && fgets(line, sizeof line, f))
    if (line[0] != '\n')
      snprintf(out, outlen, "%s", line);
  if (f)
    fclose(f);
  out[strcspn(out, "\n")] = '\0';
}

int kefu_redis_child_wait(kefu_redis_child_t *r, volatile sig_atomic_t *stop, char *errstr,
                          size_t errlen) {
  double deadline = now_s() + 10;
  while (now_s() < deadline && !*stop) {
    int status;
    if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
      char tail[300];
      r->pid = 0;
      log_tail(r->log, tail, sizeof tail);
      snprintf(errstr, errlen, "redis-server exited at start: %s", *tail ? tail : "(no output)");
      return -1;
    }
    if (redis_pong(r->port))
      return 0;
    usleep(50000);
  }
  snprintf(errstr, errlen, "redis-server did not answer PING on port %d", r->port);
  return -1;
}

void kefu_redis_child_stop(kefu_redis_child_t *r) {
  if (r->pid > 0) {
    kill(r->pid, SIGTERM);
    for (int i = 0; i < 100 && waitpid(r->pid, NULL, WNOHANG) == 0; i++)
      usleep(50000);
    if (kill(r->pid, 0) == 0) { /* still there after 5 s */
      kill(r->pid, SIGKILL);
      waitpid(r->pid, NULL, 0);
    }
    r->pid = 0;
  }
  if (r->dir[0]) {
    unlink(r->log);
    if (rmdir(r->dir) != 0)
      KEFU_WARN("redis", "could not remove %s: %s", r->dir, strerror(errno));
    r->dir[0] = '\0';
  }
}
