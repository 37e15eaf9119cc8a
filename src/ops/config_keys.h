/* THE configuration table: one row per key of `kefu run` and `kefu replay` (SPEC §7).
 *
 * An X-macro list, included inside an array initializer by each file that reads it, with
 * the row macros defined as that file needs them:
 *   - src/ops/config.c builds cfg_keys[] (name, type, default, range, secret, help), which
 *     drives parsing, validation, `kefu run --list-config` and docs/CONFIG.md;
 *   - src/cli/options.c builds the bindings that put each value in its field of
 *     kefu_processor_opts_t, from the FIELD() column (as librdkafka's _RK(field) does).
 * So a key is named once, here, and its field sits in the same row. config.c ignores the
 * FIELD() column: ops/ never includes the engine's headers (docs/DECISIONS.md, "config table").
 *
 * Columns, by row macro (the FIELD() column always just before the help text):
 *   KEY_STR(name, default, check, allowed, field, help)     string; check may be NULL
 *   KEY_SECRET(name, default, field, help)                  string never printed
 *   KEY_INT(name, default, min, max, field, help)
 *   KEY_DBL(name, default, min, max, decimals, field, help)
 *   KEY_BOOL(name, default, field, help)
 *   KEY_ENUM(name, default, SYMS(symbols...), field, help)
 *   KEY_LIST(name, default, SYMS(allowed items...), field, help)
 * field is FIELD(member of kefu_processor_opts_t, e.g. params.threshold), or NO_FIELD for
 * a key the caller reads itself (the processor has no such member, or its value needs
 * more than a copy).
 *
 * Keys are grouped as in docs/CONFIG.md. Help texts name the rule a key belongs to and
 * must not contain '|' (they end up in a Markdown table).
 *
 * No include guard: each includer expands the list once, with its own row macros. */

#define DAY_MS 86400000
#define WEEK_MS 604800000

/* Laid out as in an array initializer, which is where the rows are included. */
/* clang-format off */
/* Kafka */
KEY_STR("bootstrap.servers", "", NULL, "", FIELD(bootstrap),
        "Kafka bootstrap servers, host:port[,host:port...] (also -b)"),
KEY_STR("topic.prefix", "kefu.", check_topic_prefix, "0 to 200 of [A-Za-z0-9._-]", NO_FIELD,
        "Prefix of every topic name: kefu.chat.events, kefu.dlq..."),
KEY_STR("group.id", "kefu", check_nonempty, "not empty", FIELD(group_id),
        "Kafka consumer group of the processor instances"),
KEY_STR("transactional.id.prefix", "kefu", check_id, "1 to 64 of [A-Za-z0-9._-]",
        FIELD(transactional_id_prefix),
        "Prefix of the transactional.id of each task's producer (exactly_once)"),
KEY_ENUM("processing.guarantee", "exactly_once", SYMS("exactly_once", "at_least_once"),
         NO_FIELD,
         "exactly_once: outputs and input offsets in one Kafka transaction; at_least_once: "
         "idempotent producer, offsets committed after delivery (SPEC §5)"),
KEY_STR("schema.registry.url", "", check_registry_url, "empty or http(s)://host[:port][/path]",
        FIELD(registry.url),
        "Confluent Schema Registry: kefu registers its output schemas under <topic>-value and "
        "writes the ids it returns, and looks up input ids it does not know; empty: the "
        "built-in ids of schemas/ids.tsv"),
KEY_SECRET("schema.registry.basic.auth.user.info", "", FIELD(registry.user_info),
           "user:password for the registry's basic auth; empty: none"),
KEY_STR("schema.registry.ssl.ca.location", "", NULL, "", FIELD(registry.ca_location),
        "CA certificate file (PEM) that verifies an https registry; empty: the system's"),
KEY_STR("schema.registry.ssl.certificate.location", "", NULL, "",
        FIELD(registry.certificate_location),
        "Client certificate file (PEM) for an https registry that asks for one"),
KEY_STR("schema.registry.ssl.key.location", "", NULL, "", FIELD(registry.key_location),
        "Private key file (PEM) of schema.registry.ssl.certificate.location"),
KEY_INT("schema.registry.timeout_ms", "5000", 1, 600000, FIELD(registry.timeout_ms),
        "Connect and request timeout of each registry call (ms); an unreachable registry "
        "is retried with backoff up to redis.retry_max_ms (at start, and for records "
        "with new schema ids, which wait)"),
KEY_STR("instance.id", "", check_instance_id, "empty or 1 to 64 of [A-Za-z0-9._-]",
        FIELD(instance_id), "Name of this instance in logs and metrics; empty: hostname-pid"),
/* Redis */
KEY_STR("redis.url", "redis://127.0.0.1:6379/0", check_redis_url, "redis:// URL",
        FIELD(redis.url),
        "redis://[user[:password]@]host[:port][/db], or a Redis Cluster's seeds "
        "redis://[user[:password]@]host:port,host:port...; the password part is never printed"),
KEY_ENUM("redis.cluster", "auto", SYMS("auto", "on", "off"), FIELD(redis.cluster),
         "auto: a Redis Cluster when the first seed to answer CLUSTER SLOTS gives a slot map, "
         "one node when it says cluster support is disabled; on: always a cluster; off: one "
         "node"),
KEY_INT("redis.wait_replicas", "0", 0, 16, FIELD(redis.wait_replicas),
        "After each batch's writes to a node, WAIT until this many replicas acknowledged "
        "them (a shortfall fails the write, which is retried); 0: no WAIT"),
KEY_INT("redis.wait_timeout_ms", "1000", 1, 600000, FIELD(redis.wait_timeout_ms),
        "How long WAIT waits for redis.wait_replicas (ms)"),
KEY_STR("redis.namespace", "kefu", check_id, "1 to 64 of [A-Za-z0-9._-]",
        FIELD(redis_namespace),
        "First part of every Redis key kefu writes (replays use a private one)"),
KEY_STR("redis.user", "", NULL, "", FIELD(redis.user),
        "Redis ACL user (AUTH user password); overrides the URL's user"),
KEY_SECRET("redis.password", "", FIELD(redis.password),
           "Redis password; overrides the URL's password"),
KEY_INT("redis.timeout_ms", "2000", 1, 600000, FIELD(redis.timeout_ms),
        "Connect and command timeout of Redis calls (ms)"),
KEY_INT("redis.retry_max_ms", "5000", 1, 3600000, FIELD(redis_retry_max_ms),
        "Longest pause between retries while Redis, the broker or the schema registry is "
        "unavailable (ms); the backoff doubles from 100 ms up to it"),
/* Business rules */
KEY_DBL("threshold", "0.4", 0, 1, 4, FIELD(params.threshold),
        "Daily 3-minute response rate below which a day is a VIOLATION (RATE-6)"),
KEY_INT("escalate_after", "3", 1, 365, FIELD(params.escalate_after),
        "Failed days in a row that give an ESCALATION (RATE-8)"),
KEY_INT("response_wait_ms", "180000", 1, DAY_MS, FIELD(params.response_wait_ms),
        "Time within which a counted buyer message must be answered (ms, RATE-3)"),
KEY_INT("session_idle_ms", "900000", 1, WEEK_MS, FIELD(params.session_idle_ms),
        "A session without chat activity for this long closes (ms, ROUTE-10)"),
KEY_INT("invitation_expiry_ms", "600000", 1, DAY_MS, FIELD(params.invitation_expiry_ms),
        "An unanswered logistics invitation expires after this long (ms, LOGI-2)"),
KEY_LIST("logistics_couriers", "ZTO,STO,YUNDA,YTO",
         SYMS("ZTO", "STO", "YUNDA", "YTO", "JT", "EMS", "CHINA_POST"),
         FIELD(params.logistics_couriers),
         "Couriers whose logistics agent can be invited (LOGI-1c)"),
/* Event time (SPEC §1.3) */
KEY_INT("lateness", "0", 0, WEEK_MS, FIELD(lateness_ms),
        "The watermark of a task is its highest event ts minus this (ms)"),
KEY_INT("day_close_grace", "300000", 0, DAY_MS, FIELD(params.day_close_grace_ms),
        "A shop's local day closes when the watermark passes the next local midnight plus "
        "this (ms)"),
KEY_BOOL("idle_advance", "true", FIELD(idle_advance),
         "Advance an idle task's watermark by the wall clock (run only: replay never does)"),
KEY_INT("idle_advance_ms", "30000", 1, DAY_MS, FIELD(idle_advance_ms),
        "After this long without input, a task's watermark becomes at least wall clock minus "
        "this (ms)"),
KEY_INT("task_idle_ms", "500", 0, 600000, FIELD(task_idle_ms),
        "Longest wait for an empty partition of a task before the others go on (ms)"),
/* Batching */
KEY_INT("batch.max_records", "2000", 1, 1000000, FIELD(batch_max_records),
        "Most records in one batch (one Redis call per shop, one transaction)"),
KEY_INT("batch.max_ms", "50", 0, 60000, FIELD(batch_max_ms),
        "Longest time a batch collects records (ms)"),
KEY_BOOL("processing.pipeline", "true", FIELD(pipeline),
         "Overlap a batch's Kafka commit with reading and computing the next batch (a "
         "committer thread); false runs each batch to its end before the next"),
/* State */
KEY_DBL("state.cache_mb", "128", 0, 1048576, 3, FIELD(state_cache_mb),
        "Memory for the state of the shops this instance owns, kept across batches (MiB; "
        "least recently used buyers leave first, then shops); 0 reads every shop from "
        "Redis again for each batch"),
/* Operations */
KEY_STR("http.listen", "127.0.0.1:9464", check_listen, "empty, host:port or [v6addr]:port",
        NO_FIELD,
        "host:port of /metrics, /healthz and /readyz; port 0 picks a free port; empty "
        "disables"),
KEY_ENUM("log.level", "info", SYMS("debug", "info", "warn", "error"), NO_FIELD,
         "Lowest level of the log lines written to stderr"),
