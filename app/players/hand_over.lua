-- Freeze sessions' state in this store as they move to an instance with another hot store,
-- and return it (`app.players.statestore.RedisStateStore.hand_over`).
-- ARGV: the state keys' prefix, the frozen keys' prefix, how long a frozen state is kept
-- (s), then the sessions.
-- Each session's state hash is renamed to its frozen key (the state script then refuses
-- the session's updates here as "moved away"), which expires after ARGV[3]; a session
-- handed over before and not written since is read from its frozen key again, so a
-- copy that failed half way can be taken again.  Reply: per session, its hash as
-- HGETALL gives it (empty when this store has no state of it).
local prefix, handed, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV do
  local live, frozen = prefix .. ARGV[i], handed .. ARGV[i]
  if redis.call('EXISTS', live) == 1 then redis.call('RENAME', live, frozen) end
  redis.call('EXPIRE', frozen, ttl)
  out[#out + 1] = redis.call('HGETALL', frozen)
end
return out
