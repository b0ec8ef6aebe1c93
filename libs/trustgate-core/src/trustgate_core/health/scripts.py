"""The Lua scripts behind shared route health: each change is one atomic script, so two
replicas reporting at once never lose a failure or shorten a cooldown.

A route that is out has one key, ``<prefix>s:<route>`` = ``"<until ms> <failed ms>"``,
expiring ``linger`` ms after its cooldown (a half-open route nobody tries comes back by
itself); ``<prefix>index`` lists those keys by expiry so a replica can read them all in
one call. Every change is PUBLISHed on ``<prefix>changed`` (the replicas' cue to reread).
Times are epoch milliseconds from the caller's clock.
"""

from __future__ import annotations

from typing import Final

#: KEYS: state, failure log, index, trial. ARGV: route, now, passive (0/1), threshold,
#: interval, cooldown, retry (0: none), linger, a unique log member, channel.
#: Returns {until, failed, ejected}; until 0: the route is not out.
FAIL: Final = b"""
local now = tonumber(ARGV[2])
local cooldown = tonumber(ARGV[6])
local old = redis.call('GET', KEYS[1])
local until_ = 0
if old then until_ = tonumber(string.match(old, '^(%d+)')) end
local new = until_
if old and until_ <= now then new = now + cooldown end
if ARGV[3] == '1' then
  local interval = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[2], now, ARGV[9])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - interval)
  redis.call('PEXPIRE', KEYS[2], interval)
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
    redis.call('DEL', KEYS[2])
    new = math.max(new, now + cooldown)
  end
end
local retry = tonumber(ARGV[7])
if retry > 0 then new = math.max(new, now + retry) end
if new <= until_ then
  if old then redis.call('SET', KEYS[1], until_ .. ' ' .. now, 'KEEPTTL') end
  return {until_, now, 0}
end
local ttl = new - now + tonumber(ARGV[8])
redis.call('SET', KEYS[1], new .. ' ' .. now, 'PX', ttl)
redis.call('ZADD', KEYS[3], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
redis.call('DEL', KEYS[4])
redis.call('PUBLISH', ARGV[10], ARGV[1])
local ejected = 0
if (not old) or until_ <= now then ejected = 1 end
return {new, now, ejected}
"""

#: A success once the cooldown is over: the route is back. KEYS: state, failure log,
#: index, trial. ARGV: route, now, channel. Returns {until, failed}: {0, 0} when the route
#: is in (or was already); else the cooldown still running (never cut short).
CLEAR: Final = b"""
local old = redis.call('GET', KEYS[1])
if not old then return {0, 0} end
local until_ = tonumber(string.match(old, '^(%d+)'))
if until_ > tonumber(ARGV[2]) then
  return {until_, tonumber(string.match(old, ' (%d+)$'))}
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return {0, 0}
"""

#: The half-open trial: 1 for exactly one caller once the cooldown is over (the claim
#: expires after ``ttl`` ms if its report never comes). KEYS: state, trial. ARGV: now, ttl.
CLAIM: Final = b"""
local old = redis.call('GET', KEYS[1])
if not old then return 0 end
if tonumber(string.match(old, '^(%d+)')) > tonumber(ARGV[1]) then return 0 end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

#: Every route that is out: a flat list of route, value. KEYS: index. ARGV: now, the
#: state keys' prefix.
SNAPSHOT: Final = b"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local out = {}
for _, route in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local value = redis.call('GET', ARGV[2] .. route)
  if value then
    out[#out + 1] = route
    out[#out + 1] = value
  end
end
return out
"""

#: The prober's lease: 1 when the caller holds it (taken or renewed for ``ttl`` ms).
#: KEYS: lease. ARGV: holder, ttl.
LEASE: Final = b"""
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

#: Give the lease up, if the caller holds it. KEYS: lease. ARGV: holder.
RELEASE: Final = b"""
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""
