-- Move a session from one live instance to another (app.instances.shared.rebalance), if it
-- is still on `source` and `target` is below its capacity.
--
-- KEYS: owner, weight, load, count, capacity, epoch, moved, from (app.protocol.keys).
-- ARGV: session, source, target.  Returns 1 when it moved (the placement epoch raised, and
-- `source` recorded for `target` to take the session's state from).
local session, source, target = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', KEYS[1], session) ~= source then return 0 end
local capacity = tonumber(redis.call('HGET', KEYS[5], target) or '0')
if tonumber(redis.call('HGET', KEYS[4], target) or '0') >= capacity then return 0 end
local w = tonumber(redis.call('HGET', KEYS[2], session) or '0')
redis.call('HINCRBY', KEYS[3], source, -w)
redis.call('HINCRBY', KEYS[4], source, -1)
redis.call('HINCRBY', KEYS[3], target, w)
redis.call('HINCRBY', KEYS[4], target, 1)
redis.call('HSET', KEYS[1], session, target)
redis.call('INCR', KEYS[6])
redis.call('HINCRBY', KEYS[7], 'rebalance', 1)
redis.call('HSET', KEYS[8], session, source)
return 1
