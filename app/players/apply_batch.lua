-- Apply one batch of state updates (its msgpack wire form) to the sessions' state hashes,
-- then publish and count the deltas (`app.players.statestore.RedisStateStore.apply`).
-- KEYS: the three counters (updates applied, delta bytes, stale updates), the set of
-- sessions changed since their last snapshot (each changed session is marked there, all in
-- one call), and the instances' fencing tokens when the writer is an instance.
-- ARGV: the channel ('' for none), the state keys' prefix, '1' to report the updates
-- applied per session, the batch in its wire form, the writer's instance and token ('' and
-- '' for none), and the prefix of the keys of states handed over to another store: a
-- session whose state is not here but handed over is refused as "moved away", not as
-- unknown.
-- Reply: {stale, message, delta bytes, applied, {index, field, reason, ...}, {session,
-- applied, ...}}.
-- Each delta is assembled from packed values: 0x92 opens [seq, changes], then the seq as a
-- msgpack int, a map header and the (name, value) pairs; the session ids are msgpack
-- strings (`pack.lua`, loaded before this script, packs them).  Indices in the reply count
-- from 0.
local channel, prefix, want_sizes, handed = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[7]
-- A fenced writer (KEYS[5]: the instances' tokens; ARGV[5], ARGV[6]: its instance and
-- token) writes nothing: it was taken over while it was silent.
if KEYS[5] and redis.call('HGET', KEYS[5], ARGV[5]) ~= ARGV[6] then
  return redis.error_reply('FENCED ' .. ARGV[5])
end
local entries = cmsgpack.unpack(ARGV[4])
if type(entries) ~= 'table' or (#entries == 0 and next(entries) ~= nil) then
  return redis.error_reply('Bad data format: not an array of update entries')
end
local rejected, groups, order = {}, {}, {}
local function reject(i, field, reason)
  rejected[#rejected + 1] = i - 1
  rejected[#rejected + 1] = field
  rejected[#rejected + 1] = reason
end
local function pairs_ok(e)
  if #e % 2 == 1 then return false end
  for k = 3, #e do if type(e[k]) ~= 'string' then return false end end
  return true
end

for i = 1, #entries do
  local e = entries[i]
  if type(e) ~= 'table' or #e < 2 then reject(i, 'update', 'expected an array entry')
  elseif type(e[1]) ~= 'string' then reject(i, 'session', 'expected a session id string')
  elseif type(e[2]) ~= 'number' or e[2] < 1 or e[2] ~= math.floor(e[2]) then
    reject(i, 'seq', 'expected an integer >= 1')
  elseif not pairs_ok(e) then reject(i, 'state', 'expected field names and packed values')
  else
    local g = groups[e[1]]
    if not g then g = {}; groups[e[1]] = g; order[#order + 1] = e[1] end
    g[#g + 1] = i
  end
end

-- Sequence order, and batch order between equal sequence numbers (table.sort is not stable):
-- of two updates with one number, the second writes only fields the first did not.
local by_seq = function(x, y)
  local a, b = entries[x][2], entries[y][2]
  return a < b or (a == b and x < y)
end
-- Strings made from field names are made once per script run, not once per session.
local dotted, versioned, named = {}, {}, {}
local function dot(name)
  local d = dotted[name]
  if not d then
    d = '.' .. name
    dotted[name], versioned[name], named[name] = d, '^' .. name, packstr(name)
  end
  return d
end
-- The tables of one session are reused for the next, sized by a count and cleared after
-- it: growing tables from empty for every session slowed the script (docs/measurements.md).
local fields, names, values, slot, versions, touched = {'seq'}, {}, {}, {}, {}, {}
local write = {'seq', ''}

-- Every field any update of the session `g` names; returns how many.  `slot` maps a name
-- to its place in `names`, `values`, `versions` and `touched`; `fields` holds 'seq', the
-- n value fields, then the n version fields.
local function collect(g)
  if #g > 1 then table.sort(g, by_seq) end
  local n = 0
  for _, i in ipairs(g) do
    local e = entries[i]
    for f = 3, #e, 2 do
      local name = e[f]
      if not slot[name] then
        n = n + 1
        dot(name)
        slot[name], names[n] = n, name
      end
    end
  end
  for j = 1, n do
    fields[j + 1], fields[n + j + 1] = dotted[names[j]], versioned[names[j]]
  end
  return n
end

-- Each field keeps the sequence number of the update that last wrote it ('^name'): an
-- update writes a field only when it is newer than that, so an update that arrives after
-- a newer one of its session (batches of one session can run out of order: on two
-- threads, at two priority steps, on two instances during a move) still writes the fields
-- nothing newer wrote, and an update seen twice writes nothing.  An update that wrote no
-- field and is not newer than the session is stale.
local stale, total, bytes, sessions, parts, p, sizes = 0, 0, 0, 0, {''}, 1, {}
local marked = {}
for _, sid in ipairs(order) do
  local g = groups[sid]
  local key = prefix .. sid
  local n = collect(g)
  local old = redis.call('HMGET', key, unpack(fields, 1, n + 1))
  if not old[1] then
    local why = "unknown session '"
    if redis.call('EXISTS', handed .. sid) == 1 then why = "moved away '" end
    for _, i in ipairs(g) do reject(i, 'session', why .. sid .. "'") end
  else
    local seq, applied = tonumber(old[1]), 0
    if n == 0 or entries[g[1]][2] > seq then
      -- Every update is newer than the session, so than every field's version: no read.
      for j = 1, n do versions[j] = 0 end
    else
      local v = redis.call('HMGET', key, unpack(fields, n + 2, 2 * n + 1))
      for j = 1, n do versions[j] = tonumber(v[j]) or 0 end
    end
    for _, i in ipairs(g) do
      local e = entries[i]
      local s, wrote = e[2], false
      for f = 3, #e, 2 do  -- a name given twice in one update: its last value
        local j = slot[e[f]]
        if s > versions[j] or touched[j] == i then
          values[j], versions[j], touched[j], wrote = e[f + 1], s, i, true
        end
      end
      if wrote or s > seq then
        applied = applied + 1
        if s > seq then seq = s end
      else
        stale = stale + 1
      end
    end
    if applied > 0 then
      -- The delta goes into `parts` piece by piece, its header once its size is known.
      write[2] = string.format('%d', seq)
      local w, c, head, size = 2, 0, p + 2, 0
      parts[p + 1], p = packstr(sid), p + 2
      for j = 1, n do
        if touched[j] then
          local value = values[j]
          write[w + 1], write[w + 2], w = fields[n + j + 1], string.format('%d', versions[j]),
                                          w + 2
          if old[j + 1] ~= value then
            local name = named[names[j]]
            write[w + 1], write[w + 2], w = fields[j + 1], value, w + 2
            parts[p + 1], parts[p + 2], p = name, value, p + 2
            c, size = c + 1, size + #name + #value
          end
        end
      end
      redis.call('HSET', key, unpack(write, 1, w))
      marked[sessions + 1] = sid
      parts[head] = '\146' .. packint(seq) .. maphead(c)
      bytes = bytes + size + #parts[head]
      total, sessions = total + applied, sessions + 1
      if want_sizes then
        sizes[#sizes + 1] = sid
        sizes[#sizes + 1] = applied
      end
    end
  end
  for j = 1, n do slot[names[j]], values[j], touched[j] = nil, nil, nil end
end

parts[1] = maphead(sessions)
local message = table.concat(parts, '', 1, p)
if total > 0 then
  if channel ~= '' then redis.call('PUBLISH', channel, message) end
  for m = 1, #marked, 1000 do  -- one call per thousand sessions, not one per session
    redis.call('SADD', KEYS[4], unpack(marked, m, math.min(m + 999, #marked)))
  end
  redis.call('INCRBY', KEYS[1], total)
  redis.call('INCRBY', KEYS[2], bytes)
end
if stale > 0 then redis.call('INCRBY', KEYS[3], stale) end
return {stale, message, bytes, total, rejected, sizes}
