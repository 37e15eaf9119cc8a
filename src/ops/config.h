/* Configuration of `kefu run` and `kefu replay` (SPEC §7).
 *
 * Every key lives in ONE table, config_keys.h (name, type, default, range, secret flag,
 * help, and the field of the processor's options it fills), as librdkafka's property
 * table and Redis's static_configs[] do. The table drives parsing, validation,
 * `kefu run --list-config`, docs/CONFIG.md and the processor's options
 * (kefu_config_fill()), so adding a key is one row there and nothing else.
 *
 * Sources, later winning (the caller applies them in this order):
 *   1. kefu_config_load_file()  "key = value" lines
 *   2. kefu_config_load_env()   KEFU_* variables
 *   3. kefu_config_set()        each `--set KEY=VALUE`
 *
 * Keys starting with "kafka." are passed to librdkafka without the prefix, in the order
 * they were first set; they are checked against librdkafka's own table when set.
 *
 * Secrets (redis.password, the password of redis.url, and any key whose name contains
 * "password", "secret", "sasl.jaas" or "ssl.key") are never printed.
 *
 * Threads: a kefu_config_t is built once at start and then only read; reading it from
 * several threads is safe as long as nobody sets keys meanwhile.
 */
#ifndef KEFU_OPS_CONFIG_H
#define KEFU_OPS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/redis_url.h"

typedef struct kefu_config kefu_config_t;

/** @brief A configuration holding every key's default. NULL only when out of memory.
 *  Owned by the caller: free with kefu_config_destroy(). */
kefu_config_t *kefu_config_new(void);

/** @brief Frees @p c and every string it handed out; NULL is allowed. */
void kefu_config_destroy(kefu_config_t *c);

/** @brief Sets @p key from the string @p value, checking type, range and allowed
 *  symbols. "kafka.*" keys are checked by librdkafka and kept for
 *  kefu_config_each_kafka(). Unknown keys are an error.
 *  @returns 0, or -1 with a message naming the key in @p errstr (the value is quoted
 *  in the message only when the key is not secret). @p c is unchanged on error. */
int kefu_config_set(kefu_config_t *c, const char *key, const char *value, char *errstr,
                    size_t errlen);

/** @brief Applies the file at @p path: one "key = value" per line, blank lines and lines
 *  starting with '#' ignored, whitespace around key and value trimmed, one pair of
 *  double quotes around the value removed ("" is an empty value). A '#' after a value
 *  is part of the value (passwords may contain it).
 *  @returns 0, or -1 with "path:line: message" in @p errstr. */
int kefu_config_load_file(kefu_config_t *c, const char *path, char *errstr, size_t errlen);

/** @brief Applies every KEFU_* variable of @p envp (a NULL-terminated "NAME=value" array,
 *  normally `environ`). A name maps to the key whose upper-cased form, dots as
 *  underscores, equals it (KEFU_PROCESSING_GUARANTEE -> processing.guarantee,
 *  KEFU_BATCH_MAX_MS -> batch.max_ms); KEFU_KAFKA_X_Y maps to kafka.x.y.
 *  KEFU_* names that match no key are not configuration (KEFU_BIN...): they are skipped
 *  with one WARN line each, so a typo is visible without stopping the process.
 *  @returns 0, or -1 with "KEFU_NAME: message" in @p errstr for an invalid value. */
int kefu_config_load_env(kefu_config_t *c, char **envp, char *errstr, size_t errlen);

/* Accessors. The key must be in the table and of the accessor's type (strings and enums
 * read with _str, lists with _list). Asking for anything else is a programming error:
 * the accessor logs it once per key at ERROR and returns a zero value ("" / 0 / false /
 * an empty list) so that a typo never crashes a running processor; the unit tests read
 * every key the code uses. Returned strings are owned by @p c and stay valid until the
 * key is set again or @p c is destroyed. */

/** @brief Value of a string or enum key (an enum gives its canonical symbol).
 *  For a "kafka.*" key: the pass-through value, or NULL when it was never set. */
const char *kefu_config_str(const kefu_config_t *c, const char *key);

/** @brief Value of an int key. */
int64_t kefu_config_int(const kefu_config_t *c, const char *key);

/** @brief Value of a double key. */
double kefu_config_double(const kefu_config_t *c, const char *key);

/** @brief Value of a bool key. */
bool kefu_config_bool(const kefu_config_t *c, const char *key);

/** @brief Items of a list key: sets *@p items to an array of the returned count,
 *  followed by a NULL, and returns the count. The array and its strings are owned by
 *  @p c: read them, do not change or free them. */
size_t kefu_config_list(const kefu_config_t *c, const char *key, const char ***items);

/* Where a key's value goes in a caller's struct: the field's offset and C type. Only the
 * caller knows its struct, so it builds the bindings (cli/options.c, from the FIELD()
 * column of config_keys.h); ops/ never sees the struct. */
typedef enum kefu_config_ctype {
  KEFU_CONFIG_C_NONE,   /* no field: the caller reads the key itself */
  KEFU_CONFIG_C_INT,    /* int, from an int key whose range fits an int */
  KEFU_CONFIG_C_INT64,  /* int64_t, from an int key */
  KEFU_CONFIG_C_DOUBLE, /* double, from a double key */
  KEFU_CONFIG_C_BOOL,   /* bool, from a bool key */
  KEFU_CONFIG_C_STR,    /* const char *, from a string or enum key; owned by the config */
  KEFU_CONFIG_C_LIST    /* const char *const *, NULL-terminated; owned by the config */
} kefu_config_ctype_t;

typedef struct kefu_config_binding {
  const char *key;
  size_t offset; /* of the field in the caller's struct */
  kefu_config_ctype_t ctype;
} kefu_config_binding_t;

/** @brief Copies the value of each bound key into its field of @p base, the struct the
 *  @p n @p bindings describe; rows of KEFU_CONFIG_C_NONE are skipped. Strings and lists
 *  point into @p c, which must outlive @p base.
 *  @returns 0, or -1 with @p errstr naming the first binding whose key is unknown or
 *  whose C type cannot hold the key's values (@p base may then be partly filled). */
int kefu_config_fill(const kefu_config_t *c, void *base, const kefu_config_binding_t *bindings,
                     size_t n, char *errstr, size_t errlen);

/** @brief Calls @p fn for each "kafka.*" pair, in first-set order, with the key without
 *  its "kafka." prefix. The strings are owned by @p c. */
void kefu_config_each_kafka(const kefu_config_t *c,
                            void (*fn)(const char *k, const char *v, void *arg), void *arg);

/** @brief True when a key's value must never be printed or logged: redis.password, and
 *  any key (kefu's or kafka.*) whose name contains "password", "secret", "sasl.jaas" or
 *  "ssl.key". (redis.url is printed with its password part as "***".) */
bool kefu_config_is_secret(const char *key);

/** @brief Writes the table for `kefu run --list-config`: key, type, current value
 *  (secrets as "[redacted]", redis.url as redis://user:***@host...), default and help
 *  with the allowed range or symbols, then the kafka.* pass-through pairs. */
void kefu_config_print(const kefu_config_t *c, FILE *out);

/** @brief Writes docs/CONFIG.md, the whole document: a unit test keeps the checked-in
 *  file equal to this output. */
void kefu_config_print_markdown(FILE *out);

/** @brief Parses redis.url (redis://[user[:password]@]host[:port][/db], parts
 *  %-decoded, port default 6379, db default 0) and applies redis.user/redis.password.
 *  @returns 0, or -1 with @p errstr (which never contains the password). */
int kefu_config_redis_endpoint(const kefu_config_t *c, kefu_redis_endpoint_t *out, char *errstr,
                               size_t errlen);

/** @brief Copies @p url into @p out with its password part replaced by "***"
 *  (redis://u:***@h:1/0); URLs without a password are copied unchanged. */
void kefu_config_redact_url(const char *url, char *out, size_t outlen);

#endif
