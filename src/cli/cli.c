/* Helpers shared by the subcommands (see cli.h). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#include <stdio.h>

#include "ops/config.h"

extern char **environ;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

volatile sig_atomic_t *kefu_cli_stop_on_signals(void) {
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  return &stop_requested;
}

int kefu_cli_parse_int64(const char *text, int64_t max, int64_t *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || !*text || *end || v < 0 || v > max)
    return -1;
  *out = v;
  return 0;
}

int kefu_cli_temp_dir(const char *name, char *out, size_t outlen, char *errstr, size_t errlen) {
  const char *tmp = getenv("TMPDIR");
  if (snprintf(out, outlen, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name) >= (int)outlen ||
      !mkdtemp(out)) {
    snprintf(errstr, errlen, "cannot create a temporary directory: %s", strerror(errno));
    out[0] = '\0';
    return -1;
  }
  return 0;
}

int kefu_cli_load_config(kefu_config_t *cfg, const char *file, char *errstr, size_t errlen) {
  if (file && kefu_config_load_file(cfg, file, errstr, errlen))
    return -1;
  return kefu_config_load_env(cfg, environ, errstr, errlen);
}

int kefu_cli_set_pair(kefu_config_t *cfg, const char *pair, char *errstr, size_t errlen) {
  char key[256];
  const char *eq = strchr(pair, '=');
  if (!eq || (size_t)(eq - pair) >= sizeof key) {
    snprintf(errstr, errlen, "--set expects KEY=VALUE, got '%s'", pair);
    return -1;
  }
  snprintf(key, sizeof key, "%.*s", (int)(eq - pair), pair);
  return kefu_config_set(cfg, key, eq + 1, errstr, errlen);
}
