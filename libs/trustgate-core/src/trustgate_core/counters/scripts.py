"""The Lua scripts behind `RedisCounters`: each operation is one atomic script.

Time comes from the Redis server (`TIME`), so replicas with skewed clocks agree on every
window. Scripts return integers only (Lua booleans do not survive the trip).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Script:
    source: bytes
    sha: bytes

    @classmethod
    def of(cls, source: str) -> Script:
        body = source.strip().encode()
        return cls(body, hashlib.sha1(body, usedforsecurity=False).hexdigest().encode())


# KEYS[1] the log; ARGV limit, window_ms, force (0/1), a member unique to this call.
# Returns {allowed, count, reset_ms, retry_after_ms}.
HIT = Script.of("""
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then allowed = 1 end
if allowed == 1 or ARGV[3] == '1' then
  redis.call('ZADD', key, now, now .. ':' .. ARGV[4])
  redis.call('PEXPIRE', key, window)
  count = count + 1
end
local reset = now + window
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
if oldest[2] then reset = tonumber(oldest[2]) + window end
local retry = 0
if allowed == 0 then
  retry = window
  local frees = count - limit
  if frees >= 0 and frees < count then
    local entry = redis.call('ZRANGE', key, frees, frees, 'WITHSCORES')
    if entry[2] then retry = tonumber(entry[2]) + window - now end
  end
end
return {allowed, count, reset, retry}
""")

# KEYS the budget counters; ARGV amount, force (0/1), then a maximum per key, then a ttl
# (ms) per key. Returns {blocked index or -1, value per key}.
RESERVE = Script.of("""
local n = #KEYS
local amount = tonumber(ARGV[1])
local used, found = {}, {}
local blocked = -1
for i = 1, n do
  local value = redis.call('GET', KEYS[i])
  found[i] = value
  used[i] = tonumber(value or '0')
  if blocked == -1 and used[i] + amount > tonumber(ARGV[2 + i]) then blocked = i - 1 end
end
if amount ~= 0 and (blocked == -1 or ARGV[2] == '1') then
  for i = 1, n do
    if found[i] then
      used[i] = redis.call('INCRBY', KEYS[i], amount)
    else
      redis.call('SET', KEYS[i], amount, 'PX', ARGV[2 + n + i])
      used[i] = amount
    end
  end
end
table.insert(used, 1, blocked)
return used
""")

# KEYS the counters; ARGV delta. Only keys that still exist; never below 0; ttl kept.
ADJUST = Script.of("""
local delta = tonumber(ARGV[1])
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], delta) < 0 then
      redis.call('SET', KEYS[i], 0, 'KEEPTTL')
    end
  end
end
return 0
""")

ALL = (HIT, RESERVE, ADJUST)
