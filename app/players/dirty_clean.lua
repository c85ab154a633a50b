-- Remove the marks of sessions written to SQL, unless they were marked again with a newer
-- seq meanwhile; with ARGV[2] '1', give the lease back
-- (`app.players.statestore.RedisStateStore.clean_dirty`).
-- KEYS[1]: the sorted set of marks; KEYS[2]: the lease.  ARGV: the taker, '1' to release,
-- then (session, seq written) pairs.
for i = 3, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
if ARGV[2] == '1' and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return 0
