-- msgpack packing for the state scripts, loaded before each of them
-- (`app.players.statestore`): a map header, an unsigned int and a string, each as msgpack
-- packs it (``use_bin_type=True``), so that a script assembles messages and snapshots from
-- values packed by the client without unpacking them.
local function maphead(n)
  if n < 16 then return string.char(0x80 + n) end
  if n < 65536 then return string.char(0xde, math.floor(n / 256), n % 256) end
  return string.char(0xdf, math.floor(n / 16777216), math.floor(n / 65536) % 256,
                     math.floor(n / 256) % 256, n % 256)
end
local function bytes_of(n, width)
  local out = {}
  for k = width, 1, -1 do out[k] = string.char(n % 256); n = math.floor(n / 256) end
  return table.concat(out)
end
local function packint(n)
  if n < 128 then return string.char(n) end
  if n < 256 then return '\204' .. string.char(n) end
  if n < 65536 then return '\205' .. bytes_of(n, 2) end
  if n < 4294967296 then return '\206' .. bytes_of(n, 4) end
  return '\207' .. bytes_of(n, 8)
end
local function packstr(text)
  local n = #text
  if n < 32 then return string.char(0xa0 + n) .. text end
  if n < 256 then return '\217' .. string.char(n) .. text end
  if n < 65536 then return '\218' .. bytes_of(n, 2) .. text end
  return '\219' .. bytes_of(n, 4) .. text
end
