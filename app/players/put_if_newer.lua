-- Create a session's state hash, or replace it when the given seq is newer
-- (`app.players.statestore.RedisStateStore.put_if_newer`).
-- KEYS[1]: the state hash; ARGV: seq, then (".name", packed value) pairs.  Returns 1 if written.
-- A replaced hash keeps its `came` mark (`take_over.lua`).
local current = redis.call('HGET', KEYS[1], 'seq')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
local came = redis.call('HGET', KEYS[1], 'came')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'seq', unpack(ARGV))
if came then redis.call('HSET', KEYS[1], 'came', came) end
return 1
