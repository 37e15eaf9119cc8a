// A real client against kefu's Schema Registry stand-in (tests/lib/registry_standin.py):
// @kafkajs/confluent-schema-registry registers a schema, looks it up, encodes and decodes
// through it, then decodes kefu's own output frames, written with the ids the stand-in
// assigned. Input (argv[2]): a JSON file {"url", "auth": "user:pass" or null, "schema":
// "<avro json>", "subject", "record": {...}, "lookups": [{"subject", "schema"}],
// "frames": [{"topic", "hex"}]}. Output on
// stdout: one JSON object with what it found; any failure exits non-zero.
'use strict';
const fs = require('fs');
const { SchemaRegistry, SchemaType } = require('@kafkajs/confluent-schema-registry');

async function main() {
  const input = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const opts = { host: input.url };
  if (input.auth) {
    const i = input.auth.indexOf(':');
    opts.auth = { username: input.auth.slice(0, i), password: input.auth.slice(i + 1) };
  }
  const registry = new SchemaRegistry(opts);
  const { id } = await registry.register(
    { type: SchemaType.AVRO, schema: input.schema }, { subject: input.subject });
  const again = await registry.register(
    { type: SchemaType.AVRO, schema: input.schema }, { subject: input.subject });
  const latest = await registry.getLatestSchemaId(input.subject);
  const byVersion = await registry.getRegistryId(input.subject, 1);
  const bySchema = await registry.getRegistryIdBySchema(
    input.subject, { type: SchemaType.AVRO, schema: input.schema });
  const encoded = await registry.encode(id, input.record);
  const roundTrip = await registry.decode(encoded);
  const lookups = [];
  for (const l of input.lookups) {
    lookups.push(await registry.getRegistryIdBySchema(
      l.subject, { type: SchemaType.AVRO, schema: l.schema }));
  }
  const decoded = [];
  for (const f of input.frames) {
    const buf = Buffer.from(f.hex, 'hex');
    decoded.push({ topic: f.topic, id: buf.readInt32BE(1), value: await registry.decode(buf) });
  }
  let unknown = null;
  try {
    await registry.decode(Buffer.from('00000010f100', 'hex'));
  } catch (e) {
    unknown = String(e.message || e);
  }
  process.stdout.write(JSON.stringify({
    id, again, latest, byVersion, bySchema, encodedHex: encoded.toString('hex'), roundTrip,
    lookups, decoded, unknown,
  }, (k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
