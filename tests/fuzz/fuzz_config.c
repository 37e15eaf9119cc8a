/* libFuzzer target: the configuration of kefu run (SPEC §7), from all three sources.
 *
 * The input is up to three parts separated by NUL bytes: the text of a config file
 * (read with kefu_config_load_file from an in-memory file), environment entries one per
 * line ("KEFU_THRESHOLD=0.5", given to kefu_config_load_env) and --set arguments one per
 * line ("threshold=0.5", split at the first '=' as kefu run does). They are applied in
 * kefu run's order: file, environment, --set. Then what kefu run does with a
 * configuration: the processor's options (kefu_cli_options_init), the Redis endpoint
 * and --list-config (kefu_config_print, secrets redacted). */
#include <sys/mman.h>
#include <unistd.h>

#include "cli/options.h"
#include "fuzz.h"
#include "ops/config.h"

#define MAX_LINES 64

static int file_fd = -1;
static char file_path[64];
static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet_logs();
  file_fd = memfd_create("kefu-fuzz-config", 0);
  FUZZ_CHECK(file_fd >= 0);
  snprintf(file_path, sizeof file_path, "/proc/self/fd/%d", file_fd);
  devnull = fopen("/dev/null", "w");
  FUZZ_CHECK(devnull != NULL);
  return 0;
}

/* The next part of @p *p (up to @p end), which is left after the part's NUL. */
static const uint8_t *next_part(const uint8_t **p, const uint8_t *end, size_t *len) {
  const uint8_t *start = *p, *nul = start < end ? memchr(start, 0, (size_t)(end - start)) : NULL;
  *len = (size_t)((nul ? nul : end) - start);
  *p = nul ? nul + 1 : end;
  return start;
}

/* Splits @p text in place into at most MAX_LINES lines, NULL-terminated in @p lines. */
static void split_lines(char *text, char **lines) {
  int n = 0;
  char *s = text;
  while (*s && n < MAX_LINES) {
    lines[n++] = s;
    char *nl = strchr(s, '\n');
    if (!nl)
      break;
    *nl = '\0';
    s = nl + 1;
  }
  lines[n] = NULL;
}

static int load_file(kefu_config_t *c, const uint8_t *text, size_t len) {
  char errstr[768];
  FUZZ_CHECK(ftruncate(file_fd, 0) == 0);
  FUZZ_CHECK(pwrite(file_fd, text, len, 0) == (ssize_t)len);
  return kefu_config_load_file(c, file_path, errstr, sizeof errstr);
}

static int apply_sets(kefu_config_t *c, char **lines) {
  char key[256], errstr[768];
  for (int i = 0; lines[i]; i++) {
    const char *eq = strchr(lines[i], '=');
    if (!eq || (size_t)(eq - lines[i]) >= sizeof key)
      return -1; /* kefu run: "--set expects KEY=VALUE" */
    snprintf(key, sizeof key, "%.*s", (int)(eq - lines[i]), lines[i]);
    if (kefu_config_set(c, key, eq + 1, errstr, sizeof errstr) != 0)
      return -1;
  }
  return 0;
}

/* What kefu run does with a configuration it accepted. */
static void use(const kefu_config_t *c) {
  char errstr[512];
  kefu_cli_options_t opts;
  kefu_redis_endpoint_t ep;
  FUZZ_CHECK(kefu_cli_options_init(&opts, c, errstr, sizeof errstr) == 0);
  kefu_cli_options_clear(&opts);
  if (kefu_config_redis_endpoint(c, &ep, errstr, sizeof errstr) == 0)
    FUZZ_CHECK(ep.host[0] != '\0' && ep.port > 0);
  kefu_config_print(c, devnull);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *p = data, *end = data + size;
  char errstr[768], *env_lines[MAX_LINES + 1], *set_lines[MAX_LINES + 1];
  size_t file_len, env_len, set_len;
  const uint8_t *file = next_part(&p, end, &file_len);
  char *env = fuzz_strndup(next_part(&p, end, &env_len), env_len);
  char *set = fuzz_strndup(next_part(&p, end, &set_len), set_len);
  kefu_config_t *c = kefu_config_new();

  FUZZ_CHECK(c != NULL);
  split_lines(env, env_lines);
  split_lines(set, set_lines);
  if (load_file(c, file, file_len) == 0 &&
      kefu_config_load_env(c, env_lines, errstr, sizeof errstr) == 0 &&
      apply_sets(c, set_lines) == 0)
    use(c);
  kefu_config_destroy(c);
  free(env);
  free(set);
  return 0;
}
