"""Lua scripts for the Redis rate limiter: one atomic round trip per operation.

A bucket is a hash ``{l: level, t: updated_at_microseconds}``. Time comes from Redis
``TIME`` so every replica uses the same clock (ARGV may override it, for tests). A
missing bucket is full. Each write sets a TTL equal to the time the bucket needs to
refill completely (plus 1 s), after which a missing key means the same thing.
Floats go back to Python as strings: Redis would truncate Lua numbers to integers.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "RECONCILE"]

_COMMON = """
local function clock(override)
  if override ~= '' then return tonumber(override) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function level_of(key, cap, now)
  local v = redis.call('HMGET', key, 'l', 't')
  if not v[1] then return cap end
  local elapsed = now - tonumber(v[2])
  if elapsed < 0 then elapsed = 0 end
  local l = tonumber(v[1]) + elapsed * cap / 60000000
  if l > cap then l = cap end
  return l
end
local function store(key, cap, l, now)
  redis.call('HSET', key, 'l', string.format('%.17g', l), 't', string.format('%.0f', now))
  redis.call('PEXPIRE', key, math.ceil((cap - l) * 60000 / cap) + 1000)
end
local function f(x) return string.format('%.17g', x) end
"""

# KEYS: request bucket, token bucket. ARGV: rpm (0 = none), tpm (0 = none),
# tokens wanted, clock override ('' = Redis TIME).
# Returns {allowed, request level before, token level before} (levels '' when unlimited).
ACQUIRE = (
    _COMMON
    + """
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local now = clock(ARGV[4])
local eps = 1e-9
local rl, tl = nil, nil
local ok = true
if rpm > 0 then
  rl = level_of(KEYS[1], rpm, now)
  if rl + eps < 1 then ok = false end
end
if tpm > 0 then
  tl = level_of(KEYS[2], tpm, now)
  if tl + eps < want then ok = false end
end
if ok then
  if rl then store(KEYS[1], rpm, rl - 1, now) end
  if tl then store(KEYS[2], tpm, tl - want, now) end
end
return {ok and 1 or 0, rl and f(rl) or '', tl and f(tl) or ''}
"""
)

# KEYS: token bucket. ARGV: tpm, tokens to take back (negative = refund), clock override.
RECONCILE = (
    _COMMON
    + """
local tpm = tonumber(ARGV[1])
local delta = tonumber(ARGV[2])
local now = clock(ARGV[3])
local l = level_of(KEYS[1], tpm, now) - delta
if l > tpm then l = tpm end
store(KEYS[1], tpm, l, now)
return f(l)
"""
)
