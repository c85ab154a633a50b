-- Take the lease of writing sessions' hot state behind to SQL, and the first marks
-- (`app.players.statestore.RedisStateStore.take_dirty`).
-- KEYS[1]: the sorted set of marks (session, its seq when marked); KEYS[2]: the lease.
-- ARGV: the taker, the lease in ms, how many marks at most.  Reply: false when another
-- process holds the lease, else {session, seq, ...} (the lease is held, or renewed).
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1, 'WITHSCORES')
