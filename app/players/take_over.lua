-- Make sessions live in this store as their state arrives from another one
-- (`app.players.statestore.RedisStateStore.take_over`; the state itself is applied next,
-- by the state script).
-- ARGV: the state keys' prefix, the frozen keys' prefix, then the sessions.
-- Each session's state hash is created at seq 0 where absent, its frozen key (if this store
-- handed it over before) deleted, and its `came` field set to this store's TIME in
-- microseconds: a copy voided before that is not this one (`freeze_stale.lua`).
local prefix, handed = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = t[1] .. string.format('%06d', tonumber(t[2]))
for i = 3, #ARGV do
  local live = prefix .. ARGV[i]
  if redis.call('EXISTS', live) == 0 then redis.call('HSET', live, 'seq', 0) end
  redis.call('HSET', live, 'came', now)
  redis.call('DEL', handed .. ARGV[i])
end
return #ARGV - 2
