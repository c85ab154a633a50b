-- Take the lease of writing sessions' hot state to SQL, and the next marks of the round
-- with each marked session's state as its snapshot
-- (`app.players.statestore.RedisStateStore.take_dirty`).
-- KEYS: the marks (a set of sessions), the lease, the marks of the round under way, the
-- state-log row that round covers, and the recovered flag.
-- ARGV: the taker, the lease in ms, how many marks at most, the state keys' prefix, and
-- the last state-log row in SQL now.
-- A round starts when no marks are being taken: the marks so far become the round's (so a
-- session marked later waits for the next round), and the round covers the state log up
-- to ARGV[5].  A round that stopped half way goes on with its own marks and row.
-- Reply: false when another process holds the lease or the store has not been recovered
-- yet, else {row, session, seq, snapshot, ...}: the session's seq now ('0' when its
-- state is gone) and its values as one msgpack map (name: value, the values packed as
-- they are stored; `pack.lua` packs the names), built here so that the writer reads two
-- strings per session instead of every field and version.
if redis.call('EXISTS', KEYS[5]) == 0 then return false end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
if redis.call('EXISTS', KEYS[3]) == 0 then
  if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('RENAME', KEYS[1], KEYS[3]) end
  redis.call('SET', KEYS[4], ARGV[5])
end
local marks = redis.call('SRANDMEMBER', KEYS[3], tonumber(ARGV[3]))
local out, prefix = {redis.call('GET', KEYS[4]) or '0'}, ARGV[4]
-- A hash field's packed name when it holds a value ('.name'), false for 'seq' and the
-- versions ('^name'): made once per name, not once per session.
local packed = {}
local function packed_name(field)
  local pk = packed[field]
  if pk == nil then
    pk = string.byte(field, 1) == 46 and packstr(string.sub(field, 2))
    packed[field] = pk
  end
  return pk
end
for m = 1, #marks do
  local sid = marks[m]
  local h = redis.call('HGETALL', prefix .. sid)
  local seq, n, parts = '0', 0, {''}
  for i = 1, #h, 2 do
    local field = h[i]
    local pk = packed_name(field)
    if pk then
      parts[n + n + 2], parts[n + n + 3], n = pk, h[i + 1], n + 1
    elseif field == 'seq' then
      seq = h[i + 1]
    end
  end
  parts[1] = maphead(n)
  local o = #out
  out[o + 1], out[o + 2], out[o + 3] = sid, seq, table.concat(parts)
end
return out
