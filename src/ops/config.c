/* Configuration: one table of keys, and the few functions that read it.
 *
 * ops/config_keys.h is the only place a key is described; it expands into cfg_keys[]
 * below (and, in cli/options.c, into where each value goes). kefu_config_new() parses
 * every default through the same code path as a user's value, so a default that would
 * not validate is caught by the unit tests, and --list-config and docs/CONFIG.md are both
 * printed from the table, so they cannot disagree with it.
 *
 * Values are parsed once, when set: the accessors only return what was stored. Each
 * value also keeps a canonical text form (enums and lists with their canonical symbols,
 * booleans as true/false) for printing.
 *
 * "kafka.*" keys are not in the table: librdkafka has its own table, and we ask it to
 * validate each value on a throw-away rd_kafka_conf_t so a typo is reported with its
 * file and line instead of when the first client is created.
 */
#include "ops/config.h"

#include "ops/http.h"
#include "ops/log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum cfg_type { CFG_STRING, CFG_INT, CFG_DOUBLE, CFG_BOOL, CFG_ENUM, CFG_LIST } cfg_type_t;

static const char *const cfg_type_names[] = {"string", "int", "double", "bool", "enum", "list"};

/* Extra validation of a string value: 0, or -1 with a reason in @p why. */
typedef int (*cfg_check_fn)(const char *value, char *why, size_t whylen);

typedef struct cfg_key {
  const char *name;
  cfg_type_t type;
  const char *def;            /* default, written as a user would write it */
  double min, max;            /* int and double */
  int decimals;               /* double: most decimal places allowed, -1 any */
  const char *const *symbols; /* enum: the symbols; list: the allowed items */
  bool secret;
  cfg_check_fn check;  /* string: extra validation, or NULL */
  const char *allowed; /* string: what check accepts, in words */
  const char *help;
} cfg_key_t;

static int check_topic_prefix(const char *v, char *why, size_t whylen);
static int check_id(const char *v, char *why, size_t whylen);
static int check_instance_id(const char *v, char *why, size_t whylen);
static int check_nonempty(const char *v, char *why, size_t whylen);
static int check_registry_url(const char *v, char *why, size_t whylen);
static int check_redis_url(const char *v, char *why, size_t whylen);
static int check_listen(const char *v, char *why, size_t whylen);

#define SYMS(...) ((const char *const[]){__VA_ARGS__, NULL})
/* Row macros of config_keys.h for cfg_keys[]; the field column (f) is options.c's. */
#define KEY_STR(n, d, chk, what, f, h)                                                             \
  { .name = n, .type = CFG_STRING, .def = d, .check = chk, .allowed = what, .help = h }
#define KEY_SECRET(n, d, f, h)                                                                     \
  { .name = n, .type = CFG_STRING, .def = d, .secret = true, .help = h }
#define KEY_INT(n, d, lo, hi, f, h)                                                                \
  { .name = n, .type = CFG_INT, .def = d, .min = lo, .max = hi, .help = h }
#define KEY_DBL(n, d, lo, hi, dec, f, h)                                                           \
  { .name = n, .type = CFG_DOUBLE, .def = d, .min = lo, .max = hi, .decimals = dec, .help = h }
#define KEY_BOOL(n, d, f, h)                                                                       \
  { .name = n, .type = CFG_BOOL, .def = d, .help = h }
#define KEY_ENUM(n, d, syms, f, h)                                                                 \
  { .name = n, .type = CFG_ENUM, .def = d, .symbols = syms, .help = h }
#define KEY_LIST(n, d, syms, f, h)                                                                 \
  { .name = n, .type = CFG_LIST, .def = d, .symbols = syms, .help = h }

static const cfg_key_t cfg_keys[] = {
#include "ops/config_keys.h"
};

#define CFG_NKEYS (sizeof cfg_keys / sizeof cfg_keys[0])
#define KAFKA_PREFIX "kafka."
#define KAFKA_PREFIX_LEN (sizeof KAFKA_PREFIX - 1)
#define ENV_PREFIX "KEFU_"
#define ENV_PREFIX_LEN (sizeof ENV_PREFIX - 1)

typedef struct cfg_value {
  char *text; /* canonical text form, owned */
  int64_t i;
  double d;
  bool b;
  char **items; /* list: owned strings, NULL-terminated */
  size_t nitems;
} cfg_value_t;

typedef struct kafka_pair {
  char *key; /* without "kafka." */
  char *value;
} kafka_pair_t;

struct kefu_config {
  cfg_value_t vals[CFG_NKEYS];
  kafka_pair_t *kafka;
  size_t nkafka, capkafka;
};

/* ---------------------------------------------------------------------------------- */
/* Small helpers                                                                       */

static const cfg_key_t *find_key(const char *name, size_t *idx) {
  for (size_t i = 0; i < CFG_NKEYS; i++) {
    if (strcmp(cfg_keys[i].name, name) == 0) {
      if (idx)
        *idx = i;
      return &cfg_keys[i];
    }
  }
  return NULL;
}

static void value_free(cfg_value_t *v) {
  free(v->text);
  for (size_t i = 0; i < v->nitems; i++)
    free(v->items[i]);
  free(v->items);
  memset(v, 0, sizeof *v);
}

/* Shortest "%g" form that reads back as the same double. */
static void format_double(char *buf, size_t len, double v) {
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, len, "%.*g", prec, v);
    if (strtod(buf, NULL) == v)
      return;
  }
}

/* Cuts blanks from both ends of @p s, in place. */
static char *trim(char *s) {
  while (isspace((unsigned char)*s))
    s++;
  for (char *e = s + strlen(s); e > s && isspace((unsigned char)e[-1]);)
    *--e = '\0';
  return s;
}

static bool is_id_char(int ch) {
  return isalnum(ch) || ch == '.' || ch == '_' || ch == '-';
}

static bool all_id_chars(const char *v) {
  for (; *v; v++)
    if (!is_id_char((unsigned char)*v))
      return false;
  return true;
}

/* Writes "key = "value": why" to errstr; the value of a secret is never written and a
 * URL shows without its password. A value with an '@' but no "://" is a mistyped URL
 * ("redis:/kefu:pw@host"): all before its last '@' may be a password, so it is hidden. */
static void value_error(char *errstr, size_t errlen, const char *key, const char *value,
                        const char *why) {
  char shown[512];
  const char *at = strrchr(value, '@');
  if (kefu_config_is_secret(key))
    snprintf(shown, sizeof shown, "[redacted]");
  else if (strstr(value, "://"))
    kefu_config_redact_url(value, shown, sizeof shown);
  else if (at)
    snprintf(shown, sizeof shown, "***%s", at);
  else
    snprintf(shown, sizeof shown, "%s", value);
  snprintf(errstr, errlen, "%s = \"%s\": %s", key, shown, why);
}

/* ---------------------------------------------------------------------------------- */
/* Validators of string keys                                                           */

static int check_topic_prefix(const char *v, char *why, size_t whylen) {
  if (strlen(v) > 200 || !all_id_chars(v)) {
    snprintf(why, whylen, "a topic prefix is at most 200 of [A-Za-z0-9._-]");
    return -1;
  }
  return 0;
}

static int check_id(const char *v, char *why, size_t whylen) {
  if (!*v || strlen(v) > 64 || !all_id_chars(v)) {
    snprintf(why, whylen, "must be 1 to 64 of [A-Za-z0-9._-]");
    return -1;
  }
  return 0;
}

static int check_instance_id(const char *v, char *why, size_t whylen) {
  return *v ? check_id(v, why, whylen) : 0;
}

static int check_nonempty(const char *v, char *why, size_t whylen) {
  if (!*v) {
    snprintf(why, whylen, "must not be empty");
    return -1;
  }
  return 0;
}

static int check_registry_url(const char *v, char *why, size_t whylen) {
  if (!*v)
    return 0;
  const char *rest = NULL;
  if (strncmp(v, "http://", 7) == 0)
    rest = v + 7;
  else if (strncmp(v, "https://", 8) == 0)
    rest = v + 8;
  if (!rest || !*rest || *rest == '/') {
    snprintf(why, whylen, "expected http://host[:port][/path] or https://...");
    return -1;
  }
  return 0;
}

static int check_redis_url(const char *v, char *why, size_t whylen) {
  kefu_redis_endpoint_t ep;
  int rc = kefu_redis_url_parse(v, &ep, why, whylen);
  memset(&ep, 0, sizeof ep); /* it held the password */
  return rc;
}

static int check_listen(const char *v, char *why, size_t whylen) {
  char host[256];
  int port;
  if (!*v)
    return 0;
  return kefu_http_parse_listen(v, host, sizeof host, &port, why, whylen);
}

/* ---------------------------------------------------------------------------------- */
/* Parsing one value of a table key                                                    */

static int parse_int(const cfg_key_t *k, const char *s, cfg_value_t *out, char *why,
                     size_t whylen) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (!*s || isspace((unsigned char)*s) || *end || errno) {
    snprintf(why, whylen, "not an integer");
    return -1;
  }
  if ((double)v < k->min || (double)v > k->max) {
    snprintf(why, whylen, "out of range %.0f..%.0f", k->min, k->max);
    return -1;
  }
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", v);
  out->i = v;
  out->text = strdup(buf);
  return 0;
}

static int parse_double(const cfg_key_t *k, const char *s, cfg_value_t *out, char *why,
                        size_t whylen) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (!*s || isspace((unsigned char)*s) || *end || errno || !isfinite(v)) {
    snprintf(why, whylen, "not a number");
    return -1;
  }
  if (v < k->min || v > k->max) {
    snprintf(why, whylen, "out of range %g..%g", k->min, k->max);
    return -1;
  }
  /* The rules compare exactly in units of 10^-decimals (RATE-6), so more digits than
   * that would be silently rounded away: refuse them instead. */
  if (k->decimals >= 0) {
    double scaled = v * pow(10, k->decimals);
    if (fabs(scaled - round(scaled)) > 1e-6) {
      snprintf(why, whylen, "more than %d decimals", k->decimals);
      return -1;
    }
  }
  char buf[40];
  format_double(buf, sizeof buf, v);
  out->d = v;
  out->text = strdup(buf);
  return 0;
}

static int parse_bool(const char *s, cfg_value_t *out, char *why, size_t whylen) {
  static const char *const yes[] = {"true", "1", "yes", "on", NULL};
  static const char *const no[] = {"false", "0", "no", "off", NULL};
  for (int i = 0; yes[i]; i++) {
    if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
      out->b = strcasecmp(s, yes[i]) == 0;
      out->text = strdup(out->b ? "true" : "false");
      return 0;
    }
  }
  snprintf(why, whylen, "not a boolean (true/false, 1/0, yes/no, on/off)");
  return -1;
}

/* The canonical symbol matching @p s (case-insensitive), or NULL. */
static const char *find_symbol(const char *const *symbols, const char *s) {
  for (int i = 0; symbols[i]; i++)
    if (strcasecmp(symbols[i], s) == 0)
      return symbols[i];
  return NULL;
}

static void symbols_text(const char *const *symbols, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; symbols && symbols[i] && used < len; i++)
    used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", symbols[i]);
}

static int parse_enum(const cfg_key_t *k, const char *s, cfg_value_t *out, char *why,
                      size_t whylen) {
  const char *sym = find_symbol(k->symbols, s);
  if (!sym) {
    char all[256];
    symbols_text(k->symbols, all, sizeof all);
    snprintf(why, whylen, "must be one of: %s", all);
    return -1;
  }
  out->text = strdup(sym);
  return 0;
}

/* Adds canonical item @p sym to out->items unless it is already there. */
static int list_add(cfg_value_t *out, size_t *cap, const char *sym, char *why, size_t whylen) {
  for (size_t i = 0; i < out->nitems; i++) {
    if (strcmp(out->items[i], sym) == 0) {
      snprintf(why, whylen, "\"%s\" is listed twice", sym);
      return -1;
    }
  }
  if (out->nitems == *cap) {
    char **grown = realloc(out->items, (2 * *cap + 1) * sizeof *grown);
    if (!grown)
      return -1;
    out->items = grown;
    *cap *= 2;
  }
  if (!(out->items[out->nitems] = strdup(sym)))
    return -1;
  out->items[++out->nitems] = NULL;
  return 0;
}

/* out->text: the items joined with commas. */
static void list_join(cfg_value_t *out) {
  size_t len = 1;
  for (size_t i = 0; i < out->nitems; i++)
    len += strlen(out->items[i]) + 1;
  if (!(out->text = calloc(1, len)))
    return;
  for (size_t i = 0; i < out->nitems; i++) {
    if (i)
      strcat(out->text, ",");
    strcat(out->text, out->items[i]);
  }
}

/* Splits @p s at commas into out->items, trimming blanks around each item. "" (or only
 * blanks) is the empty list; an empty item, an unknown one or a repeat is an error. */
static int parse_list(const cfg_key_t *k, const char *s, cfg_value_t *out, char *why,
                      size_t whylen) {
  char *copy = strdup(s), *rest = copy, *tok;
  size_t cap = 8;
  int rc = -1;
  out->items = calloc(cap + 1, sizeof *out->items);
  if (!copy || !out->items)
    goto done;
  bool blank = strspn(s, " \t") == strlen(s);
  while (!blank && (tok = strsep(&rest, ",")) != NULL) {
    tok = trim(tok);
    const char *sym = k->symbols ? find_symbol(k->symbols, tok) : tok;
    if (!*tok) {
      snprintf(why, whylen, "empty item");
      goto done;
    }
    if (!sym) {
      char all[256];
      symbols_text(k->symbols, all, sizeof all);
      snprintf(why, whylen, "unknown item \"%s\" (allowed: %s)", tok, all);
      goto done;
    }
    if (list_add(out, &cap, sym, why, whylen) != 0)
      goto done;
  }
  list_join(out);
  rc = 0;
done:
  free(copy);
  return rc;
}

static int parse_string(const cfg_key_t *k, const char *s, cfg_value_t *out, char *why,
                        size_t whylen) {
  if (k->check && k->check(s, why, whylen) != 0)
    return -1;
  out->text = strdup(s);
  return 0;
}

/* Parses @p s for key @p k into @p out (zeroed first). 0, or -1 with errstr. */
static int parse_value(const cfg_key_t *k, const char *s, cfg_value_t *out, char *errstr,
                       size_t errlen) {
  char why[384] = "out of memory";
  int rc = -1;
  memset(out, 0, sizeof *out);
  switch (k->type) {
  case CFG_STRING: rc = parse_string(k, s, out, why, sizeof why); break;
  case CFG_INT: rc = parse_int(k, s, out, why, sizeof why); break;
  case CFG_DOUBLE: rc = parse_double(k, s, out, why, sizeof why); break;
  case CFG_BOOL: rc = parse_bool(s, out, why, sizeof why); break;
  case CFG_ENUM: rc = parse_enum(k, s, out, why, sizeof why); break;
  case CFG_LIST: rc = parse_list(k, s, out, why, sizeof why); break;
  }
  if (rc == 0 && !out->text) {
    snprintf(why, sizeof why, "out of memory");
    rc = -1;
  }
  if (rc != 0) {
    value_free(out);
    value_error(errstr, errlen, k->name, s, why);
  }
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Life cycle and setting                                                              */

kefu_config_t *kefu_config_new(void) {
  kefu_config_t *c = calloc(1, sizeof *c);
  char err[512];
  if (!c)
    return NULL;
  for (size_t i = 0; i < CFG_NKEYS; i++) {
    if (parse_value(&cfg_keys[i], cfg_keys[i].def, &c->vals[i], err, sizeof err) != 0) {
      /* A default that does not validate is a bug in cfg_keys[]. */
      KEFU_ERROR("config", "bad default: %s", err);
      kefu_config_destroy(c);
      return NULL;
    }
  }
  return c;
}

void kefu_config_destroy(kefu_config_t *c) {
  if (!c)
    return;
  for (size_t i = 0; i < CFG_NKEYS; i++)
    value_free(&c->vals[i]);
  for (size_t i = 0; i < c->nkafka; i++) {
    free(c->kafka[i].key);
    free(c->kafka[i].value);
  }
  free(c->kafka);
  free(c);
}

/* The librdkafka properties kefu run sets itself because its guarantees rest on them
 * (src/engine/processor.c): an operator's value would be overridden without a word, so it
 * is refused. Aliases count (librdkafka resolves them to the same property). */
static const char *const kefu_owned_kafka[] = {"group.id",
                                               "partition.assignment.strategy",
                                               "enable.auto.commit",
                                               "enable.auto.offset.store",
                                               "enable.partition.eof",
                                               "isolation.level",
                                               "auto.offset.reset",
                                               "enable.idempotence",
                                               "partitioner",
                                               "transactional.id",
                                               "bootstrap.servers",
                                               "metadata.broker.list",
                                               NULL};

/* Asks librdkafka whether it accepts @p name = @p value, without keeping anything. */
static int kafka_validate(const char *name, const char *value, char *why, size_t whylen) {
  for (const char *const *k = kefu_owned_kafka; *k; k++)
    if (strcmp(name, *k) == 0) {
      snprintf(why, whylen,
               "kefu sets %s itself (its guarantees rest on it; group.id and bootstrap.servers "
               "have keys of their own)",
               name);
      return -1;
    }
  rd_kafka_conf_t *scratch = rd_kafka_conf_new();
  rd_kafka_conf_res_t res = rd_kafka_conf_set(scratch, name, value, why, whylen);
  rd_kafka_conf_destroy(scratch);
  if (res == RD_KAFKA_CONF_OK)
    return 0;
  if (res == RD_KAFKA_CONF_UNKNOWN)
    snprintf(why, whylen, "librdkafka has no property \"%s\"", name);
  else if (kefu_config_is_secret(name))
    snprintf(why, whylen, "librdkafka rejects the value"); /* its text quotes the value */
  return -1;
}

static int set_kafka(kefu_config_t *c, const char *key, const char *value, char *errstr,
                     size_t errlen) {
  const char *name = key + KAFKA_PREFIX_LEN;
  char why[512];
  if (!*name || kafka_validate(name, value, why, sizeof why) != 0) {
    value_error(errstr, errlen, key, value, *name ? why : "a kafka.* key needs a property");
    return -1;
  }
  char *v = strdup(value);
  if (!v)
    goto oom;
  for (size_t i = 0; i < c->nkafka; i++) {
    if (strcmp(c->kafka[i].key, name) == 0) { /* keep its first position */
      free(c->kafka[i].value);
      c->kafka[i].value = v;
      return 0;
    }
  }
  if (c->nkafka == c->capkafka) {
    size_t cap = c->capkafka ? 2 * c->capkafka : 8;
    kafka_pair_t *grown = realloc(c->kafka, cap * sizeof *grown);
    if (!grown)
      goto oom_v;
    c->kafka = grown;
    c->capkafka = cap;
  }
  c->kafka[c->nkafka].key = strdup(name);
  if (!c->kafka[c->nkafka].key)
    goto oom_v;
  c->kafka[c->nkafka++].value = v;
  return 0;
oom_v:
  free(v);
oom:
  snprintf(errstr, errlen, "%s: out of memory", key);
  return -1;
}

int kefu_config_set(kefu_config_t *c, const char *key, const char *value, char *errstr,
                    size_t errlen) {
  size_t idx;
  cfg_value_t v;
  if (!key || !value) {
    snprintf(errstr, errlen, "kefu_config_set: NULL key or value");
    return -1;
  }
  if (strncmp(key, KAFKA_PREFIX, KAFKA_PREFIX_LEN) == 0)
    return set_kafka(c, key, value, errstr, errlen);
  const cfg_key_t *k = find_key(key, &idx);
  if (!k) {
    snprintf(errstr, errlen,
             "unknown configuration key \"%s\" (kefu run --list-config "
             "lists them; librdkafka properties take a kafka. prefix)",
             key);
    return -1;
  }
  if (parse_value(k, value, &v, errstr, errlen) != 0)
    return -1;
  value_free(&c->vals[idx]);
  c->vals[idx] = v;
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Sources: file and environment                                                       */

/* Applies one line of a config file; 0 for blank lines and comments. */
static int apply_line(kefu_config_t *c, char *line, char *why, size_t whylen) {
  char *s = trim(line);
  if (!*s || *s == '#')
    return 0;
  char *eq = strchr(s, '=');
  if (!eq) {
    snprintf(why, whylen, "expected \"key = value\"");
    return -1;
  }
  *eq = '\0';
  char *key = trim(s), *value = trim(eq + 1);
  size_t vlen = strlen(value);
  if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
    value[vlen - 1] = '\0';
    value++;
  }
  if (!*key) {
    snprintf(why, whylen, "missing key before '='");
    return -1;
  }
  return kefu_config_set(c, key, value, why, whylen);
}

int kefu_config_load_file(kefu_config_t *c, const char *path, char *errstr, size_t errlen) {
  FILE *f = fopen(path, "r");
  char *line = NULL, why[512];
  size_t cap = 0;
  int lineno = 0, rc = 0;
  if (!f) {
    snprintf(errstr, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  while (getline(&line, &cap, f) >= 0) {
    lineno++;
    if (apply_line(c, line, why, sizeof why) != 0) {
      snprintf(errstr, errlen, "%s:%d: %s", path, lineno, why);
      rc = -1;
      break;
    }
  }
  if (rc == 0 && ferror(f)) {
    snprintf(errstr, errlen, "%s: read error", path);
    rc = -1;
  }
  if (line) /* it may hold a password */
    memset(line, 0, cap);
  free(line);
  fclose(f);
  return rc;
}

/* Whether env name @p name (after KEFU_, @p len bytes) is key @p key upper-cased with
 * dots as underscores. */
static bool env_matches(const char *name, size_t len, const char *key) {
  size_t i = 0;
  for (; i < len && key[i]; i++) {
    char want = key[i] == '.' ? '_' : (char)toupper((unsigned char)key[i]);
    if (name[i] != want)
      return false;
  }
  return i == len && !key[i];
}

/* The key for env name @p name (@p len bytes after KEFU_) in @p key; false if none. */
static bool env_to_key(const char *name, size_t len, char *key, size_t keylen) {
  static const char kafka_env[] = "KAFKA_";
  if (len > sizeof kafka_env - 1 && strncmp(name, kafka_env, sizeof kafka_env - 1) == 0) {
    if (KAFKA_PREFIX_LEN + len - (sizeof kafka_env - 1) >= keylen)
      return false;
    size_t n = (size_t)snprintf(key, keylen, "%s", KAFKA_PREFIX);
    for (size_t i = sizeof kafka_env - 1; i < len; i++)
      key[n++] = name[i] == '_' ? '.' : (char)tolower((unsigned char)name[i]);
    key[n] = '\0';
    return true;
  }
  for (size_t i = 0; i < CFG_NKEYS; i++) {
    if (env_matches(name, len, cfg_keys[i].name)) {
      snprintf(key, keylen, "%s", cfg_keys[i].name);
      return true;
    }
  }
  return false;
}

int kefu_config_load_env(kefu_config_t *c, char **envp, char *errstr, size_t errlen) {
  char key[256], why[512];
  for (char **e = envp; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    if (strncmp(*e, ENV_PREFIX, ENV_PREFIX_LEN) != 0 || !eq)
      continue;
    const char *name = *e + ENV_PREFIX_LEN;
    size_t len = (size_t)(eq - name);
    if (!env_to_key(name, len, key, sizeof key)) {
      KEFU_WARN("config", "ignoring %.*s: no configuration key of that name", (int)(eq - *e), *e);
      continue;
    }
    if (kefu_config_set(c, key, eq + 1, why, sizeof why) != 0) {
      snprintf(errstr, errlen, "%.*s: %s", (int)(eq - *e), *e, why);
      return -1;
    }
  }
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Accessors                                                                           */

/* Logs a wrong key once per (key, accessor): logging on every call would flood the log
 * from a hot loop, and aborting would take a live processor down for a typo. */
static void misuse_once(const char *key, const char *accessor) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static char seen[32][96];
  static int nseen;
  char id[96];
  bool first = true;
  snprintf(id, sizeof id, "%s/%s", accessor, key);
  pthread_mutex_lock(&lock);
  for (int i = 0; i < nseen && first; i++)
    first = strcmp(seen[i], id) != 0;
  if (first && nseen < 32)
    snprintf(seen[nseen++], sizeof seen[0], "%s", id);
  pthread_mutex_unlock(&lock);
  if (first)
    KEFU_ERROR("config",
               "%s(\"%s\"): no such key of that type (a bug: returning a zero "
               "value)",
               accessor, key);
}

/* The stored value of @p key when it is of type @p a or @p b, else NULL (logged). */
static const cfg_value_t *lookup(const kefu_config_t *c, const char *key, cfg_type_t a,
                                 cfg_type_t b, const char *accessor) {
  size_t idx;
  const cfg_key_t *k = find_key(key, &idx);
  if (!k || (k->type != a && k->type != b)) {
    misuse_once(key, accessor);
    return NULL;
  }
  return &c->vals[idx];
}

const char *kefu_config_str(const kefu_config_t *c, const char *key) {
  if (strncmp(key, KAFKA_PREFIX, KAFKA_PREFIX_LEN) == 0) {
    for (size_t i = 0; i < c->nkafka; i++)
      if (strcmp(c->kafka[i].key, key + KAFKA_PREFIX_LEN) == 0)
        return c->kafka[i].value;
    return NULL;
  }
  const cfg_value_t *v = lookup(c, key, CFG_STRING, CFG_ENUM, "kefu_config_str");
  return v ? v->text : "";
}

int64_t kefu_config_int(const kefu_config_t *c, const char *key) {
  const cfg_value_t *v = lookup(c, key, CFG_INT, CFG_INT, "kefu_config_int");
  return v ? v->i : 0;
}

double kefu_config_double(const kefu_config_t *c, const char *key) {
  const cfg_value_t *v = lookup(c, key, CFG_DOUBLE, CFG_DOUBLE, "kefu_config_double");
  return v ? v->d : 0.0;
}

bool kefu_config_bool(const kefu_config_t *c, const char *key) {
  const cfg_value_t *v = lookup(c, key, CFG_BOOL, CFG_BOOL, "kefu_config_bool");
  return v ? v->b : false;
}

size_t kefu_config_list(const kefu_config_t *c, const char *key, const char ***items) {
  static const char *empty[] = {NULL};
  const cfg_value_t *v = lookup(c, key, CFG_LIST, CFG_LIST, "kefu_config_list");
  *items = v ? (const char **)v->items : empty;
  return v ? v->nitems : 0;
}

void kefu_config_each_kafka(const kefu_config_t *c,
                            void (*fn)(const char *k, const char *v, void *arg), void *arg) {
  for (size_t i = 0; i < c->nkafka; i++)
    fn(c->kafka[i].key, c->kafka[i].value, arg);
}

/* ---------------------------------------------------------------------------------- */
/* Filling a caller's struct                                                           */

/* Whether a field of C type @p t can hold every value of key @p k. */
static bool ctype_holds(kefu_config_ctype_t t, const cfg_key_t *k) {
  switch (t) {
  case KEFU_CONFIG_C_INT: return k->type == CFG_INT && k->min >= INT_MIN && k->max <= INT_MAX;
  case KEFU_CONFIG_C_INT64: return k->type == CFG_INT;
  case KEFU_CONFIG_C_DOUBLE: return k->type == CFG_DOUBLE;
  case KEFU_CONFIG_C_BOOL: return k->type == CFG_BOOL;
  case KEFU_CONFIG_C_STR: return k->type == CFG_STRING || k->type == CFG_ENUM;
  case KEFU_CONFIG_C_LIST: return k->type == CFG_LIST;
  case KEFU_CONFIG_C_NONE: break;
  }
  return false;
}

static void fill_one(const cfg_value_t *v, kefu_config_ctype_t t, void *dest) {
  switch (t) {
  case KEFU_CONFIG_C_INT: *(int *)dest = (int)v->i; break;
  case KEFU_CONFIG_C_INT64: *(int64_t *)dest = v->i; break;
  case KEFU_CONFIG_C_DOUBLE: *(double *)dest = v->d; break;
  case KEFU_CONFIG_C_BOOL: *(bool *)dest = v->b; break;
  case KEFU_CONFIG_C_STR: *(const char **)dest = v->text; break;
  case KEFU_CONFIG_C_LIST: *(const char *const **)dest = (const char *const *)v->items; break;
  case KEFU_CONFIG_C_NONE: break;
  }
}

int kefu_config_fill(const kefu_config_t *c, void *base, const kefu_config_binding_t *bindings,
                     size_t n, char *errstr, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    const kefu_config_binding_t *b = &bindings[i];
    size_t idx;
    if (b->ctype == KEFU_CONFIG_C_NONE)
      continue;
    const cfg_key_t *k = find_key(b->key, &idx);
    if (!k || !ctype_holds(b->ctype, k)) {
      snprintf(errstr, errlen, "config binding of \"%s\": %s (a bug)", b->key,
               k ? "its field's type cannot hold the key's values" : "no such key");
      return -1;
    }
    fill_one(&c->vals[idx], b->ctype, (char *)base + b->offset);
  }
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Secrets and the Redis URL                                                           */

bool kefu_config_is_secret(const char *key) {
  static const char *const marks[] = {"password", "secret", "sasl.jaas", "ssl.key", NULL};
  const cfg_key_t *k = find_key(key, NULL);
  if (k && k->secret)
    return true;
  for (int i = 0; marks[i]; i++)
    if (strstr(key, marks[i]))
      return true;
  return false;
}

void kefu_config_redact_url(const char *url, char *out, size_t outlen) {
  const char *scheme_end = strstr(url, "://");
  const char *at = strrchr(url, '@');
  const char *colon = scheme_end ? strchr(scheme_end + 3, ':') : NULL;
  /* The password is between the first ':' after the scheme and the last '@'. */
  if (!scheme_end || !at || !colon || colon > at) {
    snprintf(out, outlen, "%s", url);
    return;
  }
  snprintf(out, outlen, "%.*s:***%s", (int)(colon - url), url, at);
}

int kefu_config_redis_endpoint(const kefu_config_t *c, kefu_redis_endpoint_t *out, char *errstr,
                               size_t errlen) {
  char why[384];
  const char *user = kefu_config_str(c, "redis.user");
  const char *password = kefu_config_str(c, "redis.password");
  if (kefu_redis_url_parse(kefu_config_str(c, "redis.url"), out, why, sizeof why) != 0) {
    snprintf(errstr, errlen, "redis.url: %s", why);
    return -1;
  }
  if (*user)
    snprintf(out->user, sizeof out->user, "%s", user);
  if (*password)
    snprintf(out->password, sizeof out->password, "%s", password);
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Printing                                                                            */

/* What a value may be, e.g. "1..365" or "exactly_once, at_least_once". */
static void allowed_text(const cfg_key_t *k, char *buf, size_t len) {
  buf[0] = '\0';
  switch (k->type) {
  case CFG_INT: snprintf(buf, len, "%.0f..%.0f", k->min, k->max); break;
  case CFG_DOUBLE:
    snprintf(buf, len, "%g..%g, at most %d decimals", k->min, k->max, k->decimals);
    break;
  case CFG_BOOL: snprintf(buf, len, "true, false"); break;
  case CFG_ENUM: symbols_text(k->symbols, buf, len); break;
  case CFG_LIST: {
    int n = snprintf(buf, len, "comma-separated: ");
    symbols_text(k->symbols, buf + n, len - (size_t)n);
    break;
  }
  case CFG_STRING: snprintf(buf, len, "%s", k->allowed ? k->allowed : ""); break;
  }
}

/* The printable form of @p value of @p key: secrets redacted, "" shown as "". */
static const char *shown_value(const char *key, const char *value, char *buf, size_t len) {
  if (!*value)
    return "\"\"";
  if (kefu_config_is_secret(key))
    return "[redacted]";
  if (strstr(value, "://")) {
    kefu_config_redact_url(value, buf, len);
    return buf;
  }
  return value;
}

void kefu_config_print(const kefu_config_t *c, FILE *out) {
  char vbuf[512], dbuf[512], allowed[256];
  int wkey = 3, wval = 5;
  for (size_t i = 0; i < CFG_NKEYS; i++) {
    int kl = (int)strlen(cfg_keys[i].name);
    int vl = (int)strlen(shown_value(cfg_keys[i].name, c->vals[i].text, vbuf, sizeof vbuf));
    int dl = (int)strlen(shown_value(cfg_keys[i].name, cfg_keys[i].def, dbuf, sizeof dbuf));
    /* Long values (URLs) overflow their column rather than widen every row. */
    wkey = kl > wkey ? kl : wkey;
    wval = vl > wval && vl <= 32 ? vl : wval;
    wval = dl > wval && dl <= 32 ? dl : wval;
  }
  fprintf(out, "%-*s  %-6s  %-*s  %-*s  %s\n", wkey, "KEY", "TYPE", wval, "VALUE", wval, "DEFAULT",
          "DESCRIPTION");
  for (size_t i = 0; i < CFG_NKEYS; i++) {
    const cfg_key_t *k = &cfg_keys[i];
    allowed_text(k, allowed, sizeof allowed);
    fprintf(out, "%-*s  %-6s  %-*s  %-*s  %s%s%s%s\n", wkey, k->name, cfg_type_names[k->type], wval,
            shown_value(k->name, c->vals[i].text, vbuf, sizeof vbuf), wval,
            shown_value(k->name, k->def, dbuf, sizeof dbuf), k->help, *allowed ? " [" : "", allowed,
            *allowed ? "]" : "");
  }
  for (size_t i = 0; i < c->nkafka; i++) {
    fprintf(out, "%s%-*s  %-6s  %-*s  %-*s  %s %s\n", KAFKA_PREFIX, wkey - (int)KAFKA_PREFIX_LEN,
            c->kafka[i].key, "kafka", wval,
            shown_value(c->kafka[i].key, c->kafka[i].value, vbuf, sizeof vbuf), wval, "-",
            "passed to librdkafka as", c->kafka[i].key);
  }
}

/* Writes @p s with '|' escaped so it stays in its Markdown table cell. */
static void md_cell(FILE *out, const char *s) {
  for (; *s; s++) {
    if (*s == '|')
      fputc('\\', out);
    fputc(*s, out);
  }
}

static void md_env_name(FILE *out, const char *key) {
  fputs(ENV_PREFIX, out);
  for (; *key; key++)
    fputc(*key == '.' ? '_' : toupper((unsigned char)*key), out);
}

static const char md_intro[] =
    "# Configuration\n"
    "\n"
    "<!-- Generated from the key table, src/ops/config_keys.h, by kefu_config_print_markdown().\n"
    "     tests/unit/test_config.c fails when this file differs from it; to regenerate:\n"
    "     KEFU_UPDATE_DOCS=1 build/tests/test_config -->\n"
    "\n"
    "`kefu run` takes its settings from three sources; a later source wins over an\n"
    "earlier one (`kefu replay` takes the file and `--set`, `kefu demo` only `--set`:\n"
    "never the environment, so that a what-if is what its command line says):\n"
    "\n"
    "1. the file given with `-c FILE`: one `key = value` per line; blank lines and lines\n"
    "   starting with `#` are ignored; whitespace around key and value is trimmed and one\n"
    "   pair of double quotes around the value is removed (`key = \"\"` sets an empty\n"
    "   value); a `#` after a value belongs to the value;\n"
    "2. environment variables `KEFU_<KEY>`: the key upper-cased with dots as underscores\n"
    "   (`KEFU_PROCESSING_GUARANTEE=at_least_once`, `KEFU_BATCH_MAX_MS=20`); other `KEFU_*`\n"
    "   variables are ignored with a warning;\n"
    "3. `--set key=value`, repeatable (`-b` and `--redis` are short for\n"
    "   `--set bootstrap.servers=...` and `--set redis.url=...`).\n"
    "\n"
    "`kefu run --list-config` prints every key with its current value and default.\n"
    "Durations are in milliseconds. Booleans accept `true`/`false`, `1`/`0`, `yes`/`no`,\n"
    "`on`/`off`. Enum symbols and list items are matched without regard to case. Unknown\n"
    "keys and invalid values stop kefu with exit code 2 and a message naming the source\n"
    "(file and line, variable, or `--set`).\n"
    "\n"
    "## Keys\n"
    "\n"
    "| key | type | default | allowed | environment | description |\n"
    "|---|---|---|---|---|---|\n";

static const char md_outro[] =
    "\n"
    "## librdkafka properties\n"
    "\n"
    "`kafka.<property> = value` passes `<property>` to the Kafka clients kefu creates, in\n"
    "the order first given; librdkafka checks each one when it is set. `kefu run` gives a\n"
    "property to its consumers, its producer or both, by the scope librdkafka's own table\n"
    "gives it (no client warns about a property meant for the other). The properties\n"
    "kefu sets itself are refused: `group.id`, `bootstrap.servers` (keys of their own),\n"
    "`partition.assignment.strategy`, `enable.auto.commit`, `enable.auto.offset.store`,\n"
    "`enable.partition.eof`, `isolation.level`, `auto.offset.reset`, `enable.idempotence`,\n"
    "`partitioner`, `transactional.id`.\n"
    "As environment variables: `KEFU_KAFKA_<PROPERTY>` with underscores for dots\n"
    "(`KEFU_KAFKA_SASL_PASSWORD` sets `kafka.sasl.password`).\n"
    "\n"
    "```\n"
    "kafka.security.protocol = SASL_SSL\n"
    "kafka.sasl.mechanisms = SCRAM-SHA-512\n"
    "kafka.sasl.username = kefu\n"
    "```\n"
    "\n"
    "## Secrets\n"
    "\n"
    "The values of `redis.password` and of every key whose name contains `password`,\n"
    "`secret`, `sasl.jaas` or `ssl.key` are never printed or logged: `--list-config` shows\n"
    "`[redacted]`, and error messages leave the value out. `redis.url` is shown with its\n"
    "password as `***` (`redis://kefu:***@redis:6379/0`). Prefer passing secrets in the\n"
    "environment (`KEFU_REDIS_PASSWORD`, `KEFU_KAFKA_SASL_PASSWORD`) over the file.\n";

void kefu_config_print_markdown(FILE *out) {
  char allowed[256], shown[512];
  fputs(md_intro, out);
  for (size_t i = 0; i < CFG_NKEYS; i++) {
    const cfg_key_t *k = &cfg_keys[i];
    allowed_text(k, allowed, sizeof allowed);
    fprintf(out, "| `%s` | %s | `", k->name, cfg_type_names[k->type]);
    md_cell(out, shown_value(k->name, k->def, shown, sizeof shown));
    fputs("` | ", out);
    md_cell(out, allowed);
    fputs(" | `", out);
    md_env_name(out, k->name);
    fputs("` | ", out);
    md_cell(out, k->help);
    fputs(k->secret ? " (secret) |\n" : " |\n", out);
  }
  fputs(md_outro, out);
}
