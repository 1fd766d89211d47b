"""The Redis call store's compare-and-set script and how its arguments are laid out (screenpop.callstore.redis).

The script is the only place a call's record is written: it checks the version, writes the record and the
indexes, and publishes the change's messages, all in one atomic step (Redis runs one script at a time).
"""

from __future__ import annotations

from collections.abc import Callable

from screenpop import protocol

__all__ = ["STORE", "routed"]

# Store a change if the call's version is still the one read (compare-and-set), with its index updates and
# messages; 1 when stored, else the call's version and record as they are (what the next attempt starts
# from: no separate read). KEYS: the record, its version, the due index, then the agent indexes the call
# leaves, then those it enters, then the presence sets of the messages' recipients. ARGV: the version read,
# the record's JSON, the TTL (s), now (unix s), the due score ('' = not due), the call id, how many agents
# leave, how many enter, the channel ('' = publish nothing), how many presence sets ('' = no routing: each
# message is published on the channel), then the messages: without routing each text; with routing each as
# its recipients' count, their presence sets' numbers (1 = the first) and its text; each instance where a
# recipient is present gets the change's messages for it as one bundle (`protocol.bundle`: the texts in
# order, joined by NUL) on `<channel>:<instance>`.
STORE = """
local version = redis.call('GET', KEYS[2]) or '0'
if version ~= ARGV[1] then return {version, redis.call('GET', KEYS[1])} end
local ttl, now, call = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[6]
local leaving, entering = tonumber(ARGV[7]), tonumber(ARGV[8])
redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
redis.call('SET', KEYS[2], tostring(tonumber(ARGV[1]) + 1), 'EX', ttl)
for i = 1, leaving do redis.call('ZREM', KEYS[3 + i], call) end
for i = 1, entering do
  local agent = KEYS[3 + leaving + i]
  redis.call('ZADD', agent, now, call)
  redis.call('ZREMRANGEBYSCORE', agent, '-inf', now - ttl)
  redis.call('EXPIRE', agent, ttl)
end
if ARGV[5] == '' then redis.call('ZREM', KEYS[3], call)
else redis.call('ZADD', KEYS[3], ARGV[5], call); redis.call('EXPIRE', KEYS[3], ttl) end
if ARGV[9] == '' then return 1 end
if ARGV[10] == '' then
  for i = 11, #ARGV do redis.call('PUBLISH', ARGV[9], ARGV[i]) end
  return 1
end
local base, where, bundles, order, i = 3 + leaving + entering, {}, {}, {}, 11
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local text, sent = ARGV[i + n + 1], {}
  for j = i + 1, i + n do
    local r = tonumber(ARGV[j])
    if where[r] == nil then where[r] = redis.call('ZRANGEBYSCORE', KEYS[base + r], now, '+inf') end
    for _, instance in ipairs(where[r]) do
      if not sent[instance] then
        sent[instance] = true
        if bundles[instance] == nil then bundles[instance] = {}; order[#order + 1] = instance end
        table.insert(bundles[instance], text)
      end
    end
  end
  i = i + n + 2
end
for _, instance in ipairs(order) do
  redis.call('PUBLISH', ARGV[9] .. ':' .. instance, table.concat(bundles[instance], '\\0'))
end
return 1
"""


def routed(texts: list[str], keys: list[str], where_key: Callable[[str], str]) -> list[str | int | float]:
    """The script's arguments for routed messages (from the count of presence sets on, see STORE); appends
    the recipients' presence sets (`where_key(agent)`) to `keys`, each once."""
    sets: dict[str, int] = {}
    out: list[str | int | float] = []
    for text in texts:
        to = protocol.open_envelope(text)[0]
        out += [len(to), *(sets.setdefault(a, len(sets) + 1) for a in to), text]
    keys += [where_key(a) for a in sets]
    return [len(sets), *out]
