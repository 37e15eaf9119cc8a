#!lua name=kefu
--[[
kefu's Redis functions (loaded with FUNCTION LOAD REPLACE at start).

kefu_apply writes one shop's share of a batch atomically: the new state, the event ids
seen, the timers, and the shop's applied offset per input partition. The offsets are a
compare-and-set: the caller passes the values it read when it loaded the state; if
another instance has applied anything since (a zombie after a rebalance), nothing is
written and the reply names the conflict, so state is applied exactly once.

KEYS: 1 applied (hash), 2 cfg (string), 3 agents, 4 buyers, 5 orders, 6 meta (hashes),
      7 dedup (zset event_id -> ts), 8 timers (zset),
      9 shipped (zset order_id -> shipment ts: DELIV-4's index)
ARGV: n, then n triples (field, expected value or "", new value),
      then 4-tuples (op, key index, a, b):
        hset k field value | hdel k field - | set k value - | del k - -
        zadd k score member | zrem k member - | ztrim k max_score -
Reply: {'OK', earliest timer deadline or ''} — the caller keeps its task's timer index
(shop -> earliest deadline) from it — or {'CONFLICT', field, stored offset}.
]]

local function apply(keys, args)
  local n = tonumber(args[1])
  local i = 2
  for _ = 1, n do
    local current = redis.call('HGET', keys[1], args[i]) or ''
    if current ~= args[i + 1] then
      return {'CONFLICT', args[i], current}
    end
    i = i + 3
  end
  i = 2
  for _ = 1, n do
    redis.call('HSET', keys[1], args[i], args[i + 2])
    i = i + 3
  end
  while i <= #args do
    local op, key, a, b = args[i], keys[tonumber(args[i + 1])], args[i + 2], args[i + 3]
    if op == 'hset' then
      redis.call('HSET', key, a, b)
    elseif op == 'hdel' then
      redis.call('HDEL', key, a)
    elseif op == 'set' then
      redis.call('SET', key, a)
    elseif op == 'del' then
      redis.call('DEL', key)
    elseif op == 'zadd' then
      redis.call('ZADD', key, a, b)
    elseif op == 'zrem' then
      redis.call('ZREM', key, a)
    elseif op == 'ztrim' then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', a)
    else
      return redis.error_reply('kefu_apply: unknown op ' .. tostring(op))
    end
    i = i + 4
  end
  local first = redis.call('ZRANGE', keys[8], 0, 0, 'WITHSCORES')
  return {'OK', first[2] or ''}
end

redis.register_function('kefu_apply', apply)
