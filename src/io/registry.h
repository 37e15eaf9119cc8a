/* A Confluent Schema Registry client (SPEC 1.2): the ids on the wire come from the
 * registry instead of schemas/ids.tsv.
 *
 * Two calls, both over one libcurl handle (kept alive between calls):
 *   - registering: POST /subjects/{subject}/versions {"schema": "<the schema's JSON>"}
 *     gives the id the registry assigned (the same id again for a schema it has);
 *   - fetching: GET /schemas/ids/{id} gives the JSON of a writer's schema kefu does not
 *     know.
 * On top of them, kefu_registry_register_outputs() registers every output schema under
 * `<topic>-value` (TopicNameStrategy) and pins the returned ids as the ones kefu writes,
 * and kefu_registry_learn() adds an input id on a miss: the schema table is the cache,
 * so a known id never reaches the registry, and an id the registry does not know is
 * remembered for a while so that a stream of them costs one request per interval.
 *
 * The basic-auth user info is a secret: it goes to libcurl and nowhere else (no error
 * message, no log line carries it, nor a URL's user:password part).
 *
 * @locality One thread at a time per client (the engine's loop thread). */
#ifndef KEFU_IO_REGISTRY_H
#define KEFU_IO_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "io/schemas.h"
#include "io/topics.h"

typedef struct kefu_registry kefu_registry_t;

typedef struct kefu_registry_opts {
  const char *url;       /* http(s)://host[:port][/path]; "" or NULL: no registry */
  const char *user_info; /* "user:password" for basic auth, or ""; a secret */
  const char *ca_location, *certificate_location, *key_location; /* "" = curl's default */
  int timeout_ms;                                                /* per request */
} kefu_registry_opts_t;

/** What a call's failure means to the caller. */
typedef enum kefu_registry_err {
  KEFU_REGISTRY_OK = 0,
  KEFU_REGISTRY_UNAVAILABLE = -1,  /* transport error, timeout, HTTP 5xx: retry later */
  KEFU_REGISTRY_INCOMPATIBLE = -2, /* HTTP 409: the subject's compatibility refuses it */
  KEFU_REGISTRY_NOT_FOUND = -3,    /* HTTP 404: no such schema id or subject */
  KEFU_REGISTRY_REJECTED = -4      /* any other answer: 401/403, 422, a bad body */
} kefu_registry_err_t;

/** @brief A client of the registry at @p o->url (the options are copied).
 *  @returns the client (kefu_registry_destroy), or NULL with the reason in @p errstr. */
kefu_registry_t *kefu_registry_new(const kefu_registry_opts_t *o, char *errstr, size_t errlen);

/** @brief Frees the client. NULL is a no-op. */
void kefu_registry_destroy(kefu_registry_t *r);

/** @brief Registers @p schema_json under @p subject.
 *  @returns KEFU_REGISTRY_OK with the id in @p *id, or an error with the reason (which
 *  names the subject and the registry's message) in @p errstr. */
kefu_registry_err_t kefu_registry_register(kefu_registry_t *r, const char *subject,
                                           const char *schema_json, int32_t *id, char *errstr,
                                           size_t errlen);

/** @brief Fetches schema @p id.
 *  @returns KEFU_REGISTRY_OK with its JSON text in @p *schema_json (free() it), or an
 *  error with the reason in @p errstr. */
kefu_registry_err_t kefu_registry_fetch(kefu_registry_t *r, int32_t id, char **schema_json,
                                        char *errstr, size_t errlen);

/** @brief Registers the current schema of every output topic (those after the inputs that
 *  have a schema) under "<full topic name>-value" and makes the returned ids the ones
 *  @p s writes with.
 *  @returns KEFU_REGISTRY_OK, or the first failure with the reason in @p errstr (the ids
 *  registered before it stay pinned; calling again continues idempotently). */
kefu_registry_err_t kefu_registry_register_outputs(kefu_registry_t *r, kefu_schemas_t *s,
                                                   char *errstr, size_t errlen);

/** @brief Makes schema @p id known to @p s as a writer's schema of @p topic, fetching it
 *  when @p s does not have it. The topic's current schema (kefu's reader schema) stays
 *  what it was. The writer's schema must resolve against it (SPEC 1.2: fields matched by
 *  name; a reader field the writer lacks needs a default; types equal or promotable).
 *  @returns KEFU_REGISTRY_OK (also when @p s had it already), or an error with a reason
 *  fit for the DLQ in @p errstr: "schema id 1234: not in the schema registry", "schema id
 *  1234 cannot be resolved against kefu's schema of kefu.chat.events: ...",
 *  "schema id 1234: schema registry unavailable: ...". An id the registry did not know
 *  is not asked for again for a few seconds. */
kefu_registry_err_t kefu_registry_learn(kefu_registry_t *r, kefu_schemas_t *s, kefu_topic_t topic,
                                        int32_t id, char *errstr, size_t errlen);

/** @brief kefu_registry_learn for the id of a framed Avro value (magic byte 0, 4-byte
 *  big-endian id), when @p s does not know it. KEFU_REGISTRY_OK when @p r is NULL, the
 *  value is not framed (the codec names that), or the id is known. */
kefu_registry_err_t kefu_registry_learn_framed(kefu_registry_t *r, kefu_schemas_t *s,
                                               kefu_topic_t topic, const void *payload, size_t len,
                                               char *errstr, size_t errlen);

/** @brief Checks that data written with @p writer can be read as @p reader (a record of
 *  @p s), by Avro's resolution rules with the defaults @p s keeps for @p reader.
 *  @returns 0, or -1 with what does not resolve, and where, in @p errstr. */
int kefu_registry_resolvable(const kefu_schemas_t *s, avro_schema_t writer, avro_schema_t reader,
                             char *errstr, size_t errlen);

#endif
