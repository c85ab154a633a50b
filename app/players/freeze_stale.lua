-- Freeze the copies of sessions this store holds out of date
-- (`app.players.statestore.RedisStateStore.freeze_stale`).
-- KEYS: the write-behind's marks, and the marks of its round under way.
-- ARGV: the state keys' prefix, the frozen keys' prefix, how long a frozen state is kept
-- (s), the time (TIME in microseconds) before which a copy is out of date, then the
-- sessions.
-- A session whose state hash is here and was not taken over since that time (its `came`
-- field, `take_over.lua`, is older or absent) is frozen as `hand_over.lua` freezes it:
-- its hash renamed to its frozen key, which expires after ARGV[3], so the state script
-- refuses its updates as "moved away"; its marks go, so no snapshot round writes it to
-- SQL.  Reply: the sessions frozen.
local prefix, handed, ttl, since = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV do
  local sid = ARGV[i]
  local live = prefix .. sid
  if redis.call('EXISTS', live) == 1
      and tonumber(redis.call('HGET', live, 'came') or '0') < since then
    redis.call('RENAME', live, handed .. sid)
    redis.call('EXPIRE', handed .. sid, ttl)
    redis.call('SREM', KEYS[1], sid)
    redis.call('SREM', KEYS[2], sid)
    out[#out + 1] = sid
  end
end
return out
