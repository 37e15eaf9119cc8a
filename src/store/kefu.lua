#!lua name=kefu
--[[
kefu's Redis functions (loaded with FUNCTION LOAD REPLACE at start).

kefu_apply writes one shop's share of a batch atomically: the changed entities (values
in kefu's compact state encoding, docs/STATE.md), the event ids seen, the DELIV-4 index,
and the shop's applied offset per input partition. The offsets are a compare-and-set:
the caller passes the values it last read or wrote; if another instance has applied
anything since (a zombie after a rebalance), nothing is written and the reply names the
conflict, so state is applied exactly once.

KEYS: 1 applied (hash), 2.. any keys of the shop that the ops below name by index
      (cfg, agents, buyers, orders, meta, shipped, seen:<day>), all with the shop's
      {hash tag}, so one call stays in one slot.
ARGV: n, then n triples (field, expected value or "", new value),
      then ops, each: verb, key index, count c, then c arguments:
        hset k c f1 v1 ...   hdel k c f1 ...   set k 1 v   del k 0
        zadd k c s1 m1 ...   zrem k c m1 ...   append k 1 bytes
        ztrim k 1 max (ZREMRANGEBYSCORE k -inf max)
Reply: 'OK', or {'CONFLICT', field, stored offset}.
A batch costs one call per shop, and inside it one Redis command per key touched (the
variadic forms), not one per entity.
]]

local CHUNK = 1000 -- arguments per unpack(): below Lua's C stack limit

local function variadic(verb, key, args, from, count)
  local i = from
  local last = from + count - 1
  while i <= last do
    local j = math.min(i + CHUNK - 1, last)
    redis.call(verb, key, unpack(args, i, j))
    i = j + 1
  end
end

local VERBS = {hset = 'HSET', hdel = 'HDEL', zadd = 'ZADD', zrem = 'ZREM'}

local function apply(keys, args)
  local n = tonumber(args[1])
  local i = 2
  if n > 0 then
    local fields = {}
    for k = 1, n do
      fields[k] = args[i + (k - 1) * 3]
    end
    local current = redis.call('HMGET', keys[1], unpack(fields))
    for k = 1, n do
      local expected = args[i + (k - 1) * 3 + 1]
      if (current[k] or '') ~= expected then
        return {'CONFLICT', fields[k], current[k] or ''}
      end
    end
    local sets = {}
    for k = 1, n do
      sets[#sets + 1] = fields[k]
      sets[#sets + 1] = args[i + (k - 1) * 3 + 2]
    end
    redis.call('HSET', keys[1], unpack(sets))
  end
  i = 2 + n * 3
  while i <= #args do
    local verb, key, count = args[i], keys[tonumber(args[i + 1])], tonumber(args[i + 2])
    local from = i + 3
    if VERBS[verb] then
      if count > 0 then
        variadic(VERBS[verb], key, args, from, count)
      end
    elseif verb == 'set' then
      redis.call('SET', key, args[from])
    elseif verb == 'del' then
      redis.call('DEL', key)
    elseif verb == 'append' then
      redis.call('APPEND', key, args[from])
    elseif verb == 'ztrim' then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', args[from])
    else
      return redis.error_reply('kefu_apply: unknown op ' .. tostring(verb))
    end
    i = from + count
  end
  return 'OK'
end

--[[
kefu_due_read reads the buyers listed in a shop's due buckets (docs/STATE.md): the ids
each bucket holds (1 length byte, then the id, repeated), each id once, with its value.
KEYS: 1 buyers (hash), 2.. the bucket keys. Reply: id1, value1 (nil: none), id2, ...
]]
local function due_read(keys)
  local seen, ids = {}, {}
  for k = 2, #keys do
    local s = redis.call('GET', keys[k])
    local i, n = 1, s and #s or 0
    while i <= n do
      local len = string.byte(s, i)
      local id = string.sub(s, i + 1, i + len)
      i = i + 1 + len
      if #id == len and len > 0 and not seen[id] then
        seen[id] = true
        ids[#ids + 1] = id
      end
    end
  end
  local out = {}
  local c = 1
  while c <= #ids do
    local last = math.min(c + CHUNK - 1, #ids)
    local vals = redis.call('HMGET', keys[1], unpack(ids, c, last))
    for j = c, last do
      out[#out + 1] = ids[j]
      out[#out + 1] = vals[j - c + 1]
    end
    c = last + 1
  end
  return out
end

redis.register_function('kefu_apply', apply)
redis.register_function{function_name = 'kefu_due_read', callback = due_read,
                        flags = {'no-writes'}}
