package rediscache

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The scripts keep one shard's index consistent with its entries. Every key a
// script touches carries the shard's hash tag, so a script stays within one
// hash slot on Redis Cluster. Entry keys are computed inside the scripts from
// the shard's entry key prefix and an index member ("<url-hash>:<variant-hash>"):
// eviction cannot know them in advance, and the hash tag keeps them in the
// slot of the declared keys.
//
// Per shard:
//
//	lru  sorted set: member -> last use in ms (+ explicitScore for entries with
//	     explicit freshness, so that all others are evicted first)
//	sz   hash: member -> size of the entry in bytes, so that the byte total
//	     stays right when an entry has expired on its own
//	st   hash: bytes (total of sz), evictions, expired (counters for Stats),
//	     cursor (where the expiry sweep resumes)

// luaDrop is the shared prelude: drop removes member m from the index and
// returns its size; the caller subtracts it from the shard's byte total.
const luaDrop = `
local function drop(lru, sz, m)
	redis.call('ZREM', lru, m)
	local n = redis.call('HGET', sz, m)
	if not n then return 0 end
	redis.call('HDEL', sz, m)
	return tonumber(n)
end
`

// sweepBatch is how many index members a write checks for entries that have
// expired by TTL. The sweep walks the whole index in turn, so an expired
// entry leaves the index after at most (entries / sweepBatch) writes to its
// shard, or earlier when eviction reaches it.
const sweepBatch = 8

// putScript stores one entry, indexes it, records its variant, sweeps a few
// index members for expired entries and evicts while the shard is over its
// limits.
//
//	KEYS: entry, vary (v:), lru, sz, st
//	ARGV: member, value, ttl ms, score, max entries, max bytes, Vary names
//	      (comma separated), entry key prefix, publish command ("" = none),
//	      fill channel
//
// It returns the number of entries evicted.
var putScript = redis.NewScript(luaDrop + `
local entry, vary, lru, sz, st = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local member, value, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local maxn, maxb, prefix = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[8]
local bytes = tonumber(redis.call('HGET', st, 'bytes') or '0')

bytes = bytes - drop(lru, sz, member) + #value
redis.call('SET', entry, value, 'PX', ttl)
redis.call('ZADD', lru, ARGV[4], member)
redis.call('HSET', sz, member, #value)

-- The v: key exists only for URLs that vary (or once did): it lists the
-- variants for Purge and the Vary names for a caller that guessed wrong.
if ARGV[7] ~= '' or redis.call('EXISTS', vary) == 1 then
	redis.call('HSET', vary, 'vary', ARGV[7], string.sub(member, 18), '1')
	if redis.call('PTTL', vary) < ttl then
		redis.call('PEXPIRE', vary, ttl)
	end
end

local cursor = tonumber(redis.call('HGET', st, 'cursor') or '0')
local batch = redis.call('ZRANGE', lru, cursor, cursor + ` + strconv.Itoa(sweepBatch-1) + `)
local expired = 0
for _, m in ipairs(batch) do
	if redis.call('EXISTS', prefix .. m) == 0 then
		bytes = bytes - drop(lru, sz, m)
		expired = expired + 1
	end
end
if #batch < ` + strconv.Itoa(sweepBatch) + ` then cursor = 0 else cursor = cursor + #batch - expired end

local n = redis.call('ZCARD', lru)
local evicted = 0
while n > 0 and (n > maxn or bytes > maxb) do
	local m = redis.call('ZPOPMIN', lru)[1]
	redis.call('UNLINK', prefix .. m)
	bytes = bytes - drop(lru, sz, m)
	n = n - 1
	evicted = evicted + 1
end

redis.call('HSET', st, 'bytes', bytes, 'cursor', cursor)
if expired > 0 then redis.call('HINCRBY', st, 'expired', expired) end
if evicted > 0 then redis.call('HINCRBY', st, 'evictions', evicted) end
if ARGV[9] ~= '' then redis.call(ARGV[9], ARGV[10], string.sub(member, 18)) end
return evicted
`)

// deleteScript deletes one entry and its index records. With a SHA-1 in
// ARGV[2] it deletes only a value with that digest: a corrupt value found by
// a reader is removed, but not the good one a writer may have put in its
// place meanwhile.
//
//	KEYS: entry, vary (v:), lru, sz, st
//	ARGV: member, SHA-1 of the value or ""
var deleteScript = redis.NewScript(luaDrop + `
local entry, vary, lru, sz, st = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if ARGV[2] ~= '' then
	local v = redis.call('GET', entry)
	if not v or redis.sha1hex(v) ~= ARGV[2] then return 0 end
end
redis.call('UNLINK', entry)
redis.call('HDEL', vary, string.sub(ARGV[1], 18))
redis.call('HINCRBY', st, 'bytes', -drop(lru, sz, ARGV[1]))
return 1
`)

// purgeScript deletes every variant of one URL: those its v: key lists, and
// the one without Vary, which has no v: key.
//
//	KEYS: vary (v:), lru, sz, st
//	ARGV: url hash, entry key prefix, variant hash of the empty variant
var purgeScript = redis.NewScript(luaDrop + `
local vary, lru, sz, st = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local variants = redis.call('HKEYS', vary)
table.insert(variants, ARGV[3])
local bytes = 0
for _, vh in ipairs(variants) do
	if vh ~= 'vary' then
		local m = ARGV[1] .. ':' .. vh
		redis.call('UNLINK', ARGV[2] .. m)
		bytes = bytes + drop(lru, sz, m)
	end
end
redis.call('UNLINK', vary)
redis.call('HINCRBY', st, 'bytes', -bytes)
return 1
`)

// clearScript deletes up to ARGV[3] entries of a shard, oldest first, with
// their URLs' v: keys, and returns how many entries the shard still indexes.
// Clear calls it until that is zero, so that Redis never blocks on one long
// script.
//
//	KEYS: lru, sz, st
//	ARGV: entry key prefix, v: key prefix, batch size
var clearScript = redis.NewScript(luaDrop + `
local lru, sz, st = KEYS[1], KEYS[2], KEYS[3]
local bytes = 0
for _, m in ipairs(redis.call('ZRANGE', lru, 0, tonumber(ARGV[3]) - 1)) do
	redis.call('UNLINK', ARGV[1] .. m, ARGV[2] .. string.sub(m, 1, 16))
	bytes = bytes + drop(lru, sz, m)
end
redis.call('HINCRBY', st, 'bytes', -bytes)
return redis.call('ZCARD', lru)
`)

// touchScript refreshes an entry's LRU score, keeping its class (explicit
// or not), and only if eviction has not removed it meanwhile (XX).
//
//	KEYS: lru
//	ARGV: member, score of a non-explicit entry now, score of an explicit one
var touchScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then return 0 end
if tonumber(s) >= ` + strconv.FormatInt(explicitScore, 10) + ` then
	redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
else
	redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])
end
return 1
`)
