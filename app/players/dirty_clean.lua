-- Remove the written sessions from the round's marks (a session changed since is marked
-- again for the next round, in the other set); with ARGV[2] '1', give the lease back
-- (`app.players.statestore.RedisStateStore.clean_dirty`).
-- KEYS[1]: the round's marks; KEYS[2]: the lease.  ARGV: the taker, '1' to release, then
-- the sessions written.
for i = 3, #ARGV, 1000 do
  redis.call('SREM', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if ARGV[2] == '1' and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return 0
