"""The Lua scripts :class:`~flask_connect_session.stores.redis.RedisStore`
runs on the server.

Redis' ``cjson`` cannot be trusted to rewrite a session: on Redis 7.0 it
turns ``[]`` into ``{}``, rounds integers beyond 2**53 and prints floats with
14 digits, and it rejects the lone surrogates JSON.parse and Python accept.
So the scripts never decode a value. :data:`JSON_SCANNER` checks the stored
text against the JSON grammar (Python's :func:`json.loads` grammar, which is
RFC 8259 plus ``NaN``/``Infinity``) and finds where each top-level member
starts and ends; a merge then copies untouched members byte for byte and
splices in the new members, which Python encoded. Only member *names* are
decoded (to compare them with the changed keys).
"""

from __future__ import annotations

#: Shared Lua: ``parse_document()`` validates the text in the global ``s``
#: and returns its top-level members as ``{name, start, value_start, end}``
#: (``end`` exclusive), or ``nil`` if ``s`` is not a JSON object;
#: ``cookie_of(members)`` returns the last ``"cookie"`` member if it is an
#: object (as JSON.parse keeps the last duplicate); ``members_end`` walks an
#: object or array.
JSON_SCANNER = r"""
local s
local find, sub, byte, char, floor = string.find, string.sub, string.byte, string.char, math.floor

local function ws(i)
  return find(s, '[^ \t\n\r]', i) or #s + 1
end

local ESCAPES = {[34] = '"', [92] = '\\', [47] = '/', [98] = '\b', [102] = '\f',
                 [110] = '\n', [114] = '\r', [116] = '\t'}

-- i at an opening quote: the index after the closing quote, or nil.
local function string_end(i)
  i = i + 1
  while true do
    local j = find(s, '["\\%z\1-\31]', i)
    if not j then return nil end
    local c = byte(s, j)
    if c == 34 then return j + 1 end
    if c ~= 92 then return nil end  -- a raw control character
    local e = byte(s, j + 1)
    if e == 117 then
      if not find(s, '^%x%x%x%x', j + 2) then return nil end
      i = j + 6
    elseif e and ESCAPES[e] then
      i = j + 2
    else
      return nil
    end
  end
end

local SPECIAL_NUMBERS = {'NaN', 'Infinity', '-Infinity'}

local function number_end(i)
  local a, b = find(s, '^-?%d+', i)
  if not a then
    for _, word in ipairs(SPECIAL_NUMBERS) do
      if sub(s, i, i + #word - 1) == word then return i + #word end
    end
    return nil
  end
  local first = i
  if byte(s, i) == 45 then first = i + 1 end
  if byte(s, first) == 48 and b > first then return nil end  -- no leading zeros
  i = b + 1
  local _, f = find(s, '^%.%d+', i)
  if f then i = f + 1 end
  _, f = find(s, '^[eE][+-]?%d+', i)
  if f then i = f + 1 end
  return i
end

local LITERALS = {[116] = 'true', [102] = 'false', [110] = 'null'}
local value_end

-- i at '{' (close = 125) or '[' (close = 93): the index after the matching
-- bracket, or nil. visit(name_start, name_end, value_start, value_end) is
-- called for each member of an object.
local function members_end(i, close, visit)
  i = ws(i + 1)
  if byte(s, i) == close then return i + 1 end
  while true do
    local ks, ke
    if close == 125 then
      if byte(s, i) ~= 34 then return nil end
      ks = i
      ke = string_end(i)
      if not ke then return nil end
      i = ws(ke)
      if byte(s, i) ~= 58 then return nil end
      i = ws(i + 1)
    end
    local vs = i
    i = value_end(i)
    if not i then return nil end
    if visit then visit(ks, ke, vs, i) end
    i = ws(i)
    local c = byte(s, i)
    if c == close then return i + 1 end
    if c ~= 44 then return nil end
    i = ws(i + 1)
  end
end

value_end = function(i)
  local c = byte(s, i)
  if c == 34 then return string_end(i) end
  if c == 123 then return members_end(i, 125) end
  if c == 91 then return members_end(i, 93) end
  local word = LITERALS[c]
  if word then
    if sub(s, i, i + #word - 1) == word then return i + #word end
    return nil
  end
  if not c then return nil end
  return number_end(i)
end

local function utf8(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40) end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
              0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

-- The UTF-8 bytes of the (valid) JSON string token s[ks, ke); a lone
-- surrogate gives its 3-byte form, as Python's "surrogatepass" does.
local function name_of(ks, ke)
  local raw = sub(s, ks + 1, ke - 2)
  if not find(raw, '\\', 1, true) then return raw end
  local out, i = {}, 1
  while true do
    local j = find(raw, '\\', i, true)
    if not j then
      out[#out + 1] = sub(raw, i)
      return table.concat(out)
    end
    out[#out + 1] = sub(raw, i, j - 1)
    local e = byte(raw, j + 1)
    if e == 117 then
      local cp = tonumber(sub(raw, j + 2, j + 5), 16)
      i = j + 6
      if cp >= 0xD800 and cp <= 0xDBFF and sub(raw, i, i + 1) == '\\u' then
        local low = tonumber(sub(raw, i + 2, i + 5), 16)
        if low >= 0xDC00 and low <= 0xDFFF then
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (low - 0xDC00)
          i = i + 6
        end
      end
      out[#out + 1] = utf8(cp)
    else
      out[#out + 1] = ESCAPES[e]
      i = j + 2
    end
  end
end

local function parse_document()
  local i = ws(1)
  if byte(s, i) ~= 123 then return nil end
  local members = {}
  local e = members_end(i, 125, function(ks, ke, vs, ve)
    members[#members + 1] = {name_of(ks, ke), ks, vs, ve}
  end)
  if not e or ws(e) <= #s then return nil end
  return members
end

-- Deep nesting can overflow Lua's stack: that is a document we cannot read.
local function checked_members()
  local ok, members = pcall(parse_document)
  if ok then return members end
  return nil
end

local function cookie_of(members)
  local cookie
  for _, m in ipairs(members) do
    if m[1] == 'cookie' then cookie = m end
  end
  if cookie and byte(s, cookie[3]) == 123 then return cookie end
  return nil
end
"""

#: The merge, in one round trip whatever happened since the session was read.
#: ``KEYS[1]``: the session key. ``ARGV[1]``: SHA-1 (hex) of the value this
#: process read, or ``""``; ``ARGV[2]``: the whole new value Python built from
#: it, or ``""``; ``ARGV[3]``: the new TTL in seconds (``<= 0`` deletes), or
#: ``""`` to keep the current one; ``ARGV[4]``: the number ``n`` of changed
#: members; ``ARGV[5]``: ``n`` pairs (name as UTF-8, the member as JSON,
#: ``"name":value``), then the removed names (UTF-8), all in one string, each
#: item as ``<byte length>:<bytes>`` (one argument instead of many: redis-py
#: spends more CPU per argument than on its bytes); ``ARGV[6]``: the longest
#: stored value (bytes) the script may hash or scan; ``ARGV[7]``: the
#: longest document it may write by splicing (bytes, 0: no limit).
#:
#: If the stored value is still the one read (the usual case), ``ARGV[2]``
#: replaces it: a hash and a SET, no JSON scanning. Otherwise another request
#: wrote meanwhile, and the changes are spliced into what is stored.
#: Returns 2 when ``ARGV[2]`` was written, 1 when the changes were spliced in,
#: 0 when the key is missing (nothing written), -1 when the stored value is
#: not a session document (left as it is), -2 when the stored value is
#: longer than ``ARGV[6]`` (nothing read: Redis serves no one else while a
#: script runs, and Lua scans ~100 times slower than C), ``{-3, size}``
#: when the spliced document would be longer than ``ARGV[7]`` (nothing
#: written).
MERGE_SCRIPT = (
    r"""
local size = redis.call('STRLEN', KEYS[1])
if size == 0 and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if size > tonumber(ARGV[6]) then return -2 end
local stored = redis.call('GET', KEYS[1])

local function write(document)
  if ARGV[3] == '' then
    redis.call('SET', KEYS[1], document, 'KEEPTTL')
  elseif tonumber(ARGV[3]) > 0 then
    redis.call('SET', KEYS[1], document, 'EX', ARGV[3])
  else
    redis.call('DEL', KEYS[1])
  end
end

-- Before the scanner below is even defined: the fast path pays nothing for it.
if ARGV[1] ~= '' and redis.sha1hex(stored) == ARGV[1] then
  write(ARGV[2])
  return 2
end
"""
    + JSON_SCANNER
    + r"""
s = stored
local members = checked_members()
if not members or not cookie_of(members) then return -1 end

local items, packed, at = {}, ARGV[5], 1
while at <= #packed do
  local colon = find(packed, ':', at, true)
  local length = tonumber(sub(packed, at, colon - 1))
  items[#items + 1] = sub(packed, colon + 1, colon + length)
  at = colon + length + 1
end

local n = tonumber(ARGV[4])
local changed, order, removed = {}, {}, {}
for c = 0, n - 1 do
  local name = items[2 * c + 1]
  changed[name] = items[2 * c + 2]
  order[#order + 1] = name
end
for r = 2 * n + 1, #items do removed[items[r]] = true end

-- Untouched members are copied verbatim; a changed one takes the place of its
-- first occurrence (later duplicates go: the new value must win); new ones
-- go last, as dict.update() and Object.assign() add them.
local out, written = {}, {}
for _, m in ipairs(members) do
  local name = m[1]
  if removed[name] or written[name] then
    -- dropped
  elseif changed[name] then
    out[#out + 1] = changed[name]
    written[name] = true
  else
    out[#out + 1] = sub(s, m[2], m[4] - 1)
  end
end
for _, name in ipairs(order) do
  if not removed[name] and not written[name] then
    out[#out + 1] = changed[name]
    written[name] = true
  end
end
local document = '{' .. table.concat(out, ',') .. '}'
local limit = tonumber(ARGV[7])
if limit > 0 and #document > limit and (ARGV[3] == '' or tonumber(ARGV[3]) > 0) then
  return {-3, #document}
end
write(document)
return 1
"""
)

#: Updates one user's index, a sorted set of session ids scored by the time
#: (ms since the epoch) after which each is surely gone. ``KEYS[1]``: the
#: index key. ``ARGV[1]``: now (ms); ``ARGV[2]``: the new score of the ids
#: that follow, or ``""`` to remove them; ``ARGV[3...]``: session ids.
#: Expired ids go first, and the key expires with its last id, so a user who
#: never comes back leaves nothing behind. One key: fine on Redis Cluster.
#: Returns how many expired ids went.
INDEX_SCRIPT = r"""
local expired = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for i = 3, #ARGV do
  if ARGV[2] == '' then
    redis.call('ZREM', KEYS[1], ARGV[i])
  else
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
  end
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
return expired
"""
