/* The Schema Registry client (see registry.h).
 *
 * Requests. One libcurl easy handle serves every request, so its connection is kept
 * alive; each request sets the method, the URL and the body anew. Answers are read
 * into a growing buffer capped at MAX_BODY (a schema is a few KiB). Confluent's errors
 * come as {"error_code": 40401, "message": "..."}: the message goes into errstr, the
 * HTTP status decides what the caller does (registry.h, kefu_registry_err_t).
 *
 * Secrets. The user info reaches libcurl through CURLOPT_USERPWD only. Error messages
 * name the path of a request, never the URL, which may carry user:password itself.
 *
 * Why kefu checks resolution itself. avro-c's avro_resolved_writer/_reader resolve a
 * writer's schema against a reader's, but avro-c drops field defaults when it parses a
 * schema (io/schemas.c), so a reader field the writer lacks fails even when it has a
 * default: every BACKWARD-compatible evolution would be refused. The codec already
 * decodes by field name with the defaults the table keeps (io/codec.c); what a new
 * writer's schema needs is the check that this decoding can succeed, which
 * kefu_registry_resolvable() does once per id, when the id is learnt. */
#include "io/registry.h"

#include "io/codec.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BODY (4 << 20)
#define MISSES 64         /* ids the registry did not know, remembered */
#define MISS_TTL_MS 10000 /* ...for this long */
#define MAX_RESOLVE_DEPTH 32

typedef struct miss {
  int32_t id;
  int64_t until_ms;
} miss_t;

struct kefu_registry {
  CURL *curl;
  struct curl_slist *headers;
  char *base; /* the URL without a trailing '/' */
  char *user_info, *ca, *cert, *key;
  int timeout_ms;
  char *body; /* the last answer */
  size_t len, cap;
  miss_t misses[MISSES];
  size_t next_miss;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dup_or_null(const char *s) {
  return s && *s ? strdup(s) : NULL;
}

kefu_registry_t *kefu_registry_new(const kefu_registry_opts_t *o, char *errstr, size_t errlen) {
  pthread_once(&curl_once, curl_init);
  kefu_registry_t *r = calloc(1, sizeof *r);
  if (!r || !o->url || !*o->url) {
    snprintf(errstr, errlen, r ? "no schema registry URL" : "out of memory");
    free(r);
    return NULL;
  }
  r->base = strdup(o->url);
  size_t n = strlen(r->base);
  while (n > 0 && r->base[n - 1] == '/')
    r->base[--n] = '\0';
  r->user_info = dup_or_null(o->user_info);
  r->ca = dup_or_null(o->ca_location);
  r->cert = dup_or_null(o->certificate_location);
  r->key = dup_or_null(o->key_location);
  r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
  r->headers = curl_slist_append(NULL, "Content-Type: application/vnd.schemaregistry.v1+json");
  r->headers = curl_slist_append(
      r->headers, "Accept: application/vnd.schemaregistry.v1+json, application/json");
  if (!(r->curl = curl_easy_init()) || !r->headers) {
    snprintf(errstr, errlen, "cannot make a libcurl handle");
    kefu_registry_destroy(r);
    return NULL;
  }
  return r;
}

static void free_secret(char *s) {
  if (s) {
    memset(s, 0, strlen(s));
    free(s);
  }
}

void kefu_registry_destroy(kefu_registry_t *r) {
  if (!r)
    return;
  if (r->curl)
    curl_easy_cleanup(r->curl);
  curl_slist_free_all(r->headers);
  free(r->base);
  free_secret(r->user_info);
  free(r->ca);
  free(r->cert);
  free(r->key);
  free(r->body);
  free(r);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg) {
  kefu_registry_t *r = arg;
  size_t n = size * nmemb;
  if (r->len + n + 1 > MAX_BODY)
    return 0; /* curl fails the transfer */
  if (r->len + n + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < r->len + n + 1)
      cap *= 2;
    char *grown = realloc(r->body, cap);
    if (!grown)
      return 0;
    r->body = grown;
    r->cap = cap;
  }
  memcpy(r->body + r->len, data, n);
  r->len += n;
  r->body[r->len] = '\0';
  return n;
}

/* The registry's message of an error answer, or the start of the body. */
static void answer_message(const kefu_registry_t *r, char *out, size_t outlen) {
  json_t *doc = r->len ? json_loadb(r->body, r->len, 0, NULL) : NULL;
  const char *msg = json_string_value(json_object_get(doc, "message"));
  json_int_t code = json_integer_value(json_object_get(doc, "error_code"));
  if (msg)
    snprintf(out, outlen, "%s (error_code %lld)", msg, (long long)code);
  else
    snprintf(out, outlen, "%.120s", r->len ? r->body : "(no body)");
  json_decref(doc);
}

/* One request: @p body NULL is a GET. Sets @p *status; the answer is in r->body. */
static kefu_registry_err_t request(kefu_registry_t *r, const char *path, const char *body,
                                   long *status, char *errstr, size_t errlen) {
  char url[2048];
  snprintf(url, sizeof url, "%s%s", r->base, path);
  CURL *c = r->curl;
  curl_easy_reset(c);
  r->len = 0;
  if (r->body)
    r->body[0] = '\0';
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)r->timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (r->user_info) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERPWD, r->user_info);
  }
  if (r->ca)
    curl_easy_setopt(c, CURLOPT_CAINFO, r->ca);
  if (r->cert)
    curl_easy_setopt(c, CURLOPT_SSLCERT, r->cert);
  if (r->key)
    curl_easy_setopt(c, CURLOPT_SSLKEY, r->key);
  if (body) {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  }
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    snprintf(errstr, errlen, "%s %s: %s", body ? "POST" : "GET", path, curl_easy_strerror(rc));
    /* a certificate refused, a file of ours unreadable: a configuration to fix, which
     * waiting would never fix (a registry that is down or slow is waited for) */
    bool config = rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CERTPROBLEM ||
                  rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CIPHER ||
                  rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT ||
                  rc == CURLE_LOGIN_DENIED;
    return config ? KEFU_REGISTRY_REJECTED : KEFU_REGISTRY_UNAVAILABLE;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  if (*status >= 200 && *status < 300)
    return KEFU_REGISTRY_OK;
  char msg[300];
  answer_message(r, msg, sizeof msg);
  snprintf(errstr, errlen, "%s %s: HTTP %ld: %s", body ? "POST" : "GET", path, *status, msg);
  if (*status >= 500 || *status == 408 || *status == 429)
    return KEFU_REGISTRY_UNAVAILABLE;
  if (*status == 409)
    return KEFU_REGISTRY_INCOMPATIBLE;
  if (*status == 404)
    return KEFU_REGISTRY_NOT_FOUND;
  return KEFU_REGISTRY_REJECTED;
}

/* Subjects are URL path segments: everything but unreserved characters is escaped. */
static void escape_segment(const char *in, char *out, size_t outlen) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < outlen; p++) {
    if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
        *p == '-' || *p == '.' || *p == '_' || *p == '~') {
      out[o++] = (char)*p;
    } else {
      out[o++] = '%';
      out[o++] = hex[*p >> 4];
      out[o++] = hex[*p & 15];
    }
  }
  out[o] = '\0';
}

kefu_registry_err_t kefu_registry_register(kefu_registry_t *r, const char *subject,
                                           const char *schema_json, int32_t *id, char *errstr,
                                           size_t errlen) {
  char seg[600], path[700], why[1024];
  long status = 0;
  escape_segment(subject, seg, sizeof seg);
  snprintf(path, sizeof path, "/subjects/%s/versions", seg);
  json_t *req = json_pack("{s:s}", "schema", schema_json);
  char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  if (!body) {
    snprintf(errstr, errlen, "subject %s: out of memory", subject);
    return KEFU_REGISTRY_REJECTED;
  }
  kefu_registry_err_t rc = request(r, path, body, &status, why, sizeof why);
  free(body);
  if (rc == KEFU_REGISTRY_OK) {
    json_t *doc = json_loadb(r->body ? r->body : "", r->len, 0, NULL);
    json_t *v = json_object_get(doc, "id");
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= INT32_MAX)
      *id = (int32_t)json_integer_value(v);
    else {
      snprintf(why, sizeof why, "POST %.300s: no id in the answer", path);
      rc = KEFU_REGISTRY_REJECTED;
    }
    json_decref(doc);
  }
  if (rc != KEFU_REGISTRY_OK)
    snprintf(errstr, errlen, "subject %s: %s%s", subject,
             rc == KEFU_REGISTRY_INCOMPATIBLE ? "schema incompatible with the registered ones: "
                                              : "",
             why);
  return rc;
}

kefu_registry_err_t kefu_registry_fetch(kefu_registry_t *r, int32_t id, char **schema_json,
                                        char *errstr, size_t errlen) {
  char path[64];
  long status = 0;
  *schema_json = NULL;
  snprintf(path, sizeof path, "/schemas/ids/%d", (int)id);
  kefu_registry_err_t rc = request(r, path, NULL, &status, errstr, errlen);
  if (rc != KEFU_REGISTRY_OK)
    return rc;
  json_t *doc = json_loadb(r->body ? r->body : "", r->len, 0, NULL);
  const char *type = json_string_value(json_object_get(doc, "schemaType"));
  const char *text = json_string_value(json_object_get(doc, "schema"));
  if (type && strcmp(type, "AVRO") != 0) {
    snprintf(errstr, errlen, "a %s schema, not Avro", type);
    rc = KEFU_REGISTRY_REJECTED;
  } else if (!text) {
    snprintf(errstr, errlen, "GET %s: no schema in the answer", path);
    rc = KEFU_REGISTRY_REJECTED;
  } else if (!(*schema_json = strdup(text))) {
    snprintf(errstr, errlen, "out of memory");
    rc = KEFU_REGISTRY_REJECTED;
  }
  json_decref(doc);
  return rc;
}

kefu_registry_err_t kefu_registry_register_outputs(kefu_registry_t *r, kefu_schemas_t *s,
                                                   char *errstr, size_t errlen) {
  for (int t = KEFU_T_COURIER_STATUS + 1; t < KEFU_T__COUNT; t++) {
    const char *text = kefu_schemas_current_text(s, (kefu_topic_t)t);
    char subject[300], why[512];
    int32_t id = -1;
    if (!text)
      continue; /* the DLQ: JSON, no schema */
    snprintf(subject, sizeof subject, "%s-value", kefu_topic_name((kefu_topic_t)t));
    kefu_registry_err_t rc = kefu_registry_register(r, subject, text, &id, errstr, errlen);
    if (rc != KEFU_REGISTRY_OK)
      return rc;
    if (kefu_schemas_add(s, id, (kefu_topic_t)t, text, strlen(text), why, sizeof why) ||
        kefu_schemas_set_current(s, (kefu_topic_t)t, id)) {
      snprintf(errstr, errlen, "subject %s: id %d: %s", subject, (int)id, why);
      return KEFU_REGISTRY_REJECTED;
    }
  }
  return KEFU_REGISTRY_OK;
}

/* ---- resolution ---------------------------------------------------------------- */

static avro_schema_t unlink(avro_schema_t t) {
  while (t && is_avro_link(t))
    t = avro_schema_link_target(t);
  return t;
}

static int resolves(const kefu_schemas_t *s, avro_schema_t w, avro_schema_t rd, int depth,
                    char *path, size_t pathlen, char *errstr, size_t errlen);

/* Whether a writer's primitive kind @p w can be read as @p r (Avro's promotions). */
static int promotes(avro_type_t w, avro_type_t r) {
  if (w == r)
    return 1;
  switch (w) {
  case AVRO_INT32: return r == AVRO_INT64 || r == AVRO_FLOAT || r == AVRO_DOUBLE;
  case AVRO_INT64: return r == AVRO_FLOAT || r == AVRO_DOUBLE;
  case AVRO_FLOAT: return r == AVRO_DOUBLE;
  case AVRO_STRING: return r == AVRO_BYTES;
  case AVRO_BYTES: return r == AVRO_STRING;
  default: return 0;
  }
}

static int resolves_record(const kefu_schemas_t *s, avro_schema_t w, avro_schema_t rd, int depth,
                           char *path, size_t pathlen, char *errstr, size_t errlen) {
  size_t n = avro_schema_record_size(rd), base = strlen(path);
  for (size_t i = 0; i < n; i++) {
    const char *name = avro_schema_record_field_name(rd, (int)i);
    /* avro_schema_record_field_get() answers garbage, not NULL, for a name it lacks
     * (avro-c 1.11.1): ask for the index. */
    int wi = avro_schema_record_field_get_index(w, name);
    avro_schema_t wf = wi < 0 ? NULL : avro_schema_record_field_get_by_index(w, wi);
    snprintf(path + base, pathlen - base, "%s%s", base ? "." : "", name);
    if (!wf) {
      if (!kefu_schemas_field_default(s, rd, i)) {
        snprintf(errstr, errlen, "field %s: missing in the writer's schema, and no default", path);
        return 0;
      }
    } else if (!resolves(s, wf, avro_schema_record_field_get_by_index(rd, (int)i), depth + 1, path,
                         pathlen, errstr, errlen)) {
      return 0;
    }
    path[base] = '\0';
  }
  return 1;
}

/* Some branch of reader union @p ru reads @p w. */
static int some_branch(const kefu_schemas_t *s, avro_schema_t w, avro_schema_t ru, int depth,
                       char *path, size_t pathlen) {
  char scratch[8];
  for (size_t i = 0; i < avro_schema_union_size(ru); i++)
    if (resolves(s, w, avro_schema_union_branch(ru, (int)i), depth + 1, path, pathlen, scratch,
                 sizeof scratch))
      return 1;
  return 0;
}

static int resolves(const kefu_schemas_t *s, avro_schema_t w, avro_schema_t rd, int depth,
                    char *path, size_t pathlen, char *errstr, size_t errlen) {
  w = unlink(w);
  rd = unlink(rd);
  const char *at = *path ? path : "the top";
  if (!w || !rd || depth > MAX_RESOLVE_DEPTH) {
    snprintf(errstr, errlen, "%s: nested too deep", at);
    return 0;
  }
  avro_type_t wt = avro_typeof(w), rt = avro_typeof(rd);
  if (wt == AVRO_UNION) { /* every branch the writer may write must be readable */
    for (size_t i = 0; i < avro_schema_union_size(w); i++) {
      avro_schema_t b = avro_schema_union_branch(w, (int)i);
      if (rt == AVRO_UNION ? !some_branch(s, b, rd, depth, path, pathlen)
                           : !resolves(s, b, rd, depth + 1, path, pathlen, errstr, errlen)) {
        snprintf(errstr, errlen, "%s: a branch of the writer's union (%s) is not readable", at,
                 avro_schema_type_name(b));
        return 0;
      }
    }
    return 1;
  }
  if (rt == AVRO_UNION) {
    if (some_branch(s, w, rd, depth, path, pathlen))
      return 1;
    snprintf(errstr, errlen, "%s: the writer's %s matches no branch of kefu's union", at,
             avro_schema_type_name(w));
    return 0;
  }
  if (wt != rt && !promotes(wt, rt)) {
    snprintf(errstr, errlen, "%s: the writer's %s cannot be read as %s", at,
             avro_schema_type_name(w), avro_schema_type_name(rd));
    return 0;
  }
  switch (rt) {
  case AVRO_RECORD: return resolves_record(s, w, rd, depth, path, pathlen, errstr, errlen);
  case AVRO_ARRAY:
    return resolves(s, avro_schema_array_items(w), avro_schema_array_items(rd), depth + 1, path,
                    pathlen, errstr, errlen);
  case AVRO_MAP:
    return resolves(s, avro_schema_map_values(w), avro_schema_map_values(rd), depth + 1, path,
                    pathlen, errstr, errlen);
  case AVRO_FIXED:
    if (avro_schema_fixed_size(w) != avro_schema_fixed_size(rd)) {
      snprintf(errstr, errlen, "%s: fixed sizes differ", at);
      return 0;
    }
    return 1;
  default: return 1; /* enums: a symbol kefu lacks fails that record only (the DLQ) */
  }
}

int kefu_registry_resolvable(const kefu_schemas_t *s, avro_schema_t writer, avro_schema_t reader,
                             char *errstr, size_t errlen) {
  char path[256] = "";
  return resolves(s, writer, reader, 0, path, sizeof path, errstr, errlen) ? 0 : -1;
}

/* ---- learning input ids ---------------------------------------------------------- */

static int recent_miss(const kefu_registry_t *r, int32_t id, int64_t now) {
  for (size_t i = 0; i < MISSES; i++)
    if (r->misses[i].until_ms > now && r->misses[i].id == id)
      return 1;
  return 0;
}

static void remember_miss(kefu_registry_t *r, int32_t id, int64_t now) {
  r->misses[r->next_miss] = (miss_t){.id = id, .until_ms = now + MISS_TTL_MS};
  r->next_miss = (r->next_miss + 1) % MISSES;
}

kefu_registry_err_t kefu_registry_learn_framed(kefu_registry_t *r, kefu_schemas_t *s,
                                               kefu_topic_t topic, const void *payload, size_t len,
                                               char *errstr, size_t errlen) {
  int32_t id;
  if (!r || !kefu_codec_frame_id(payload, len, &id))
    return KEFU_REGISTRY_OK;
  return kefu_registry_learn(r, s, topic, id, errstr, errlen);
}

kefu_registry_err_t kefu_registry_learn(kefu_registry_t *r, kefu_schemas_t *s, kefu_topic_t topic,
                                        int32_t id, char *errstr, size_t errlen) {
  kefu_topic_t owner = KEFU_TOPIC_NONE;
  if (kefu_schemas_by_id(s, id, &owner))
    return KEFU_REGISTRY_OK; /* the codec names a topic mismatch */
  int64_t now = mono_ms();
  if (recent_miss(r, id, now)) {
    snprintf(errstr, errlen, "schema id %d: not in the schema registry", (int)id);
    return KEFU_REGISTRY_NOT_FOUND;
  }
  char why[512], *text = NULL;
  kefu_registry_err_t rc = kefu_registry_fetch(r, id, &text, why, sizeof why);
  if (rc == KEFU_REGISTRY_NOT_FOUND) {
    remember_miss(r, id, now);
    snprintf(errstr, errlen, "schema id %d: not in the schema registry", (int)id);
    return rc;
  }
  if (rc != KEFU_REGISTRY_OK) {
    snprintf(errstr, errlen, "schema id %d: schema registry %s: %s", (int)id,
             rc == KEFU_REGISTRY_UNAVAILABLE ? "unavailable" : "refused", why);
    return rc;
  }
  /* Parse it apart first: the table keeps only what resolves, and kefu's reader stays. */
  avro_schema_t w = NULL;
  avro_schema_error_t ignored;
  rc = KEFU_REGISTRY_REJECTED;
  if (avro_schema_from_json(text, (int32_t)strlen(text), &w, &ignored)) {
    snprintf(errstr, errlen, "schema id %d: not a valid Avro schema: %s", (int)id, avro_strerror());
  } else if (kefu_registry_resolvable(s, w, kefu_schemas_current(s, topic), why, sizeof why)) {
    snprintf(errstr, errlen, "schema id %d cannot be resolved against kefu's schema of %s: %s",
             (int)id, kefu_topic_name(topic), why);
  } else {
    int32_t cur = kefu_schemas_current_id(s, topic); /* -1: unlisted, which add keeps */
    if (kefu_schemas_add(s, id, topic, text, strlen(text), why, sizeof why)) {
      snprintf(errstr, errlen, "schema id %d: %s", (int)id, why);
    } else {
      if (cur >= 0)
        kefu_schemas_set_current(s, topic, cur);
      rc = KEFU_REGISTRY_OK;
    }
  }
  if (w)
    avro_schema_decref(w);
  free(text);
  return rc;
}
