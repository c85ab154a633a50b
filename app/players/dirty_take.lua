-- Take the lease of writing sessions' hot state behind to SQL, and the first marks with
-- each marked session's state as its snapshot
-- (`app.players.statestore.RedisStateStore.take_dirty`).
-- KEYS[1]: the sorted set of marks (session, its seq when marked); KEYS[2]: the lease.
-- ARGV: the taker, the lease in ms, how many marks at most, the state keys' prefix.
-- Reply: false when another process holds the lease, else {session, mark, seq, snapshot,
-- ...}: the session's seq now ('0' when its state is gone) and its values as one msgpack
-- map (name: value, the values packed as they are stored; `pack.lua` packs the rest),
-- built here so that the writer reads two strings per session instead of every field and
-- version.
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
local marks = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1, 'WITHSCORES')
local out, prefix = {}, ARGV[4]
for m = 1, #marks, 2 do
  local sid = marks[m]
  local h = redis.call('HGETALL', prefix .. sid)
  local seq, n, parts = '0', 0, {''}
  for i = 1, #h, 2 do
    local name = h[i]
    if name == 'seq' then
      seq = h[i + 1]
    elseif string.byte(name, 1) == 46 then  -- '.': a value
      n = n + 1
      parts[#parts + 1] = packstr(string.sub(name, 2))
      parts[#parts + 1] = h[i + 1]
    end
  end
  parts[1] = maphead(n)
  out[#out + 1] = sid
  out[#out + 1] = marks[m + 1]
  out[#out + 1] = seq
  out[#out + 1] = table.concat(parts)
end
return out
