-- Take the messages waiting at the consuming end of a queue's lists, in the order a
-- consumer would get them (`app.tasking.gather`), while each is one the caller can run.
-- KEYS: the queue's lists, highest priority step first (each pushed on the left, popped on
-- the right, as kombu's Redis transport does).
-- ARGV: how many messages at most, how many strings follow that a message must hold, those
-- strings, then strings it must not hold.
-- Reply: {list index (from 1), message, ...}.  The first message that does not fit ends
-- the taking, wherever it waits: what lies behind it is not taken before it.
local most, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local function fits(message)
  for i = 3, 2 + n do
    if not string.find(message, ARGV[i], 1, true) then return false end
  end
  for i = 3 + n, #ARGV do
    if string.find(message, ARGV[i], 1, true) then return false end
  end
  return true
end

local taken, count = {}, 0
for k, key in ipairs(KEYS) do
  while count < most do
    local message = redis.call('LINDEX', key, -1)
    if not message then break end
    if not fits(message) then return taken end
    redis.call('RPOP', key)
    taken[#taken + 1], taken[#taken + 2], count = k, message, count + 1
  end
  if count >= most then break end
end
return taken
