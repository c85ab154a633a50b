-- Place a session on a live server instance (app.instances.registry), atomically; or move
-- it off the instance `avoid` (a drain).
--
-- KEYS: seen, capacity, owner, weight, load, count, draining, epoch, moved, from
-- (app.protocol.keys).
-- ARGV: session, weight (milli; -1: the weight it has), epsilon, ttl (s), avoid ('' for
-- none), prefer ('' for none), then every registered instance in the session's rendezvous
-- ranking.
--
-- A placed session not on `avoid` stays where it is with its new weight: {instance, 0}.
-- Otherwise the live instances (seen within ttl by Redis's clock, not draining, not
-- `avoid`) bound the load at (1 + epsilon) times their mean with this session counted,
-- and the session goes to `prefer` when that is live and below its capacity (the instance
-- it ran on before the registry lost it: back where it was, whatever the bound), else to
-- the first instance of its ranking below its capacity with room under the bound, else to
-- the least loaded one below its capacity: {instance, 1}, or
-- {instance, 2} when it moved (the placement epoch raised, and the instance it came from
-- recorded for its new instance to take its state from).  A session placed anew away
-- from `prefer` records `prefer` as the instance it came from, for the same reason.
-- {"", "none"} when no
-- instance is live, {"", "full"} when every live one is at capacity; a session that could
-- not move stays where it was.  Same choice, same arithmetic as
-- app.instances.placement.roomy.
local session, w = ARGV[1], tonumber(ARGV[2])
local epsilon, ttl, avoid, prefer = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6]

local owner = redis.call('HGET', KEYS[3], session)
local old = tonumber(redis.call('HGET', KEYS[4], session) or '0')
if w < 0 then w = old end
if owner and owner ~= avoid then
  if old ~= w then
    redis.call('HSET', KEYS[4], session, w)
    redis.call('HINCRBY', KEYS[5], owner, w - old)
  end
  return {owner, 0}
end
if w <= 0 then return {'', 'none'} end

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local live, loads, total = {}, {}, 0
for i = 7, #ARGV do
  local name = ARGV[i]
  local seen = tonumber(redis.call('HGET', KEYS[1], name))
  if seen and now - seen <= ttl and name ~= avoid
      and redis.call('SISMEMBER', KEYS[7], name) == 0 then
    local load = tonumber(redis.call('HGET', KEYS[5], name) or '0')
    live[#live + 1] = name
    loads[name] = load
    total = total + load
  end
end
if #live == 0 then return {'', 'none'} end

local open = {}
for _, name in ipairs(live) do
  local capacity = tonumber(redis.call('HGET', KEYS[2], name) or '0')
  local sessions = tonumber(redis.call('HGET', KEYS[6], name) or '0')
  if sessions < capacity then open[#open + 1] = name end
end
if #open == 0 then return {'', 'full'} end

local bound = math.max((1 + epsilon) * (total + w) / #live, w)
local pick = nil
for _, name in ipairs(open) do
  if name == prefer then
    pick = name
    break
  end
end
for _, name in ipairs(open) do
  if pick then break end
  if loads[name] + w <= bound then
    pick = name
    break
  end
end
if not pick then
  for _, name in ipairs(open) do
    if pick == nil or loads[name] < loads[pick] or (loads[name] == loads[pick] and name < pick) then
      pick = name
    end
  end
end
if owner then  -- moving off `avoid`: its load leaves it
  redis.call('HINCRBY', KEYS[5], owner, -old)
  redis.call('HINCRBY', KEYS[6], owner, -1)
  redis.call('INCR', KEYS[8])
  redis.call('HINCRBY', KEYS[9], 'drain', 1)
  redis.call('HSET', KEYS[10], session, owner)
end
if not owner and prefer ~= '' and pick ~= prefer then
  redis.call('HSET', KEYS[10], session, prefer)
end
redis.call('HSET', KEYS[3], session, pick)
redis.call('HSET', KEYS[4], session, w)
redis.call('HINCRBY', KEYS[5], pick, w)
redis.call('HINCRBY', KEYS[6], pick, 1)
if owner then return {pick, 2} end
return {pick, 1}
