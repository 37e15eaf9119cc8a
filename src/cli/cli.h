/* Subcommands of the kefu binary (SPEC §7): one file each in src/cli/.
 * Each returns the process exit code: 0 ok, 1 runtime failure, 2 usage error. */
#ifndef KEFU_CLI_CLI_H
#define KEFU_CLI_CLI_H

#define KEFU_EXIT_OK 0
#define KEFU_EXIT_FAIL 1
#define KEFU_EXIT_USAGE 2

#include <signal.h>
#include <stdint.h>

/** @brief Makes SIGINT and SIGTERM set the flag it returns (0 until then): how a
 *  command that runs until told stops cleanly. */
volatile sig_atomic_t *kefu_cli_stop_on_signals(void);

/** @brief A decimal number from 0 to @p max, the whole of @p text: 0 with it in *@p out,
 *  or -1. */
int kefu_cli_parse_int64(const char *text, int64_t max, int64_t *out);

/** @brief A new directory $TMPDIR/NAME-XXXXXX (/tmp without TMPDIR) in @p out: 0, or -1
 *  with @p errstr and @p out empty. */
int kefu_cli_temp_dir(const char *name, char *out, size_t outlen, char *errstr, size_t errlen);

typedef struct kefu_config kefu_config_t;

/** @brief Loads @p file (NULL: none), then the KEFU_* environment, into @p cfg: what every
 *  command configured as `kefu run` does before it applies its flags. 0, or -1 with
 *  @p errstr. */
int kefu_cli_load_config(kefu_config_t *cfg, const char *file, char *errstr, size_t errlen);

/** @brief Applies `--set KEY=VALUE` (@p pair) to @p cfg: 0, or -1 with @p errstr. */
int kefu_cli_set_pair(kefu_config_t *cfg, const char *pair, char *errstr, size_t errlen);

int kefu_cmd_broker(int argc, char **argv);
int kefu_cmd_produce(int argc, char **argv);
int kefu_cmd_consume(int argc, char **argv);
int kefu_cmd_run(int argc, char **argv);
int kefu_cmd_demo(int argc, char **argv);
int kefu_cmd_state(int argc, char **argv);
int kefu_cmd_replay(int argc, char **argv);
/** @brief kefu replay with the caller's stop flag (kefu demo --what-if runs it in-process
 *  and keeps its own SIGINT/SIGTERM handling). */
int kefu_replay_main(int argc, char **argv, volatile sig_atomic_t *stop);
int kefu_cmd_archive(int argc, char **argv);
int kefu_cmd_status(int argc, char **argv);

#include <jansson.h>
#include <stddef.h>

/** @brief A DLQ record as `kefu consume` prints it: {"error", "source", "key",
 *  "value_base64"} (consume.c). */
/** @brief Removes @p path and everything under it (a temporary directory; replay.c). */
void kefu_cli_remove_tree(const char *path);

json_t *kefu_cli_dlq_json(const void *key, size_t key_len, const void *val, size_t len,
                          const char *error, const char *source);

#endif
