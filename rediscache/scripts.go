package rediscache

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The scripts keep one shard's index consistent with its entries. Every key a
// script touches carries the shard's hash tag, so a script stays within one
// hash slot on Redis Cluster. Entry and v: keys are computed inside the
// scripts from the shard's key prefixes and an index member
// ("<url-hash>:<variant-hash>"): eviction cannot know them in advance, and
// the hash tag keeps them in the slot of the declared keys.
//
// Per shard:
//
//	lru  sorted set: member -> last use in ms (+ explicitScore for entries with
//	     explicit freshness, so that all others are evicted first)
//	sz   hash: member -> size of the entry in bytes, so that the byte total
//	     stays right when an entry has expired on its own
//	st   hash: bytes (total of sz), evictions, expired (counters for Stats),
//	     cursor (the LRU score where the expiry sweep resumes)
//
// Rules every script keeps, because Redis runs a script to its end without
// undoing what it wrote when a command fails half way:
//
//   - It checks the types of the keys it will write before its first write,
//     so that a foreign key fails the call without changing anything.
//   - A script that may grow memory writes first with a command Redis refuses
//     when it is out of memory (SET): Redis checks memory only until a
//     script's first write, so the whole script is refused, not its tail.
//     Scripts that only delete start with deleting commands, which Redis
//     allows when it is out of memory, so purges keep freeing memory.
//   - Numbers go to Redis through num, which writes integers as integers:
//     Lua's own formatting gives "-0" for a negated zero and "1e+15" for large
//     values, and Redis refuses both where it wants an integer.

// luaLib is the prelude the scripts share.
const luaLib = `
local function num(n)
	return string.format('%d', n)
end

-- wrongType returns an error reply when one of the keys (key, type, key,
-- type, ...) exists with another type, before anything is written.
local function wrongType(types)
	for i = 1, #types, 2 do
		local t = redis.call('TYPE', types[i])['ok']
		if t ~= 'none' and t ~= types[i + 1] then
			return redis.error_reply('WRONGTYPE fleetcache key ' .. types[i] .. ' holds a ' .. t .. ', not a ' .. types[i + 1])
		end
	end
	return nil
end

local function add(st, field, n)
	if n ~= 0 then redis.call('HINCRBY', st, field, num(n)) end
end

-- drop removes member m from the index and returns its recorded size.
local function drop(lru, sz, m)
	redis.call('ZREM', lru, m)
	local n = redis.call('HGET', sz, m)
	if not n then return 0 end
	redis.call('HDEL', sz, m)
	return tonumber(n) or 0
end

-- forget removes m's entry, its index records and its field in its URL's
-- v: key (deleted with its last variant), and returns the size dropped.
local function forget(lru, sz, eprefix, vprefix, m)
	redis.call('UNLINK', eprefix .. m)
	local vary = vprefix .. string.sub(m, 1, 16)
	if redis.call('HDEL', vary, string.sub(m, 18)) == 1 and redis.call('HLEN', vary) <= 1 then
		redis.call('UNLINK', vary)
	end
	return drop(lru, sz, m)
end

-- evict pops least recently used members while the shard is over its
-- limits, at most limit of them, and returns the byte total and how many
-- it evicted.
local function evict(lru, sz, eprefix, vprefix, maxn, maxb, bytes, limit)
	local n = redis.call('ZCARD', lru)
	local evicted = 0
	while n > 0 and (n > maxn or bytes > maxb) and evicted < limit do
		local m = redis.call('ZRANGE', lru, 0, 0)[1]
		bytes = bytes - forget(lru, sz, eprefix, vprefix, m)
		n = n - 1
		evicted = evicted + 1
	end
	return bytes, evicted
end
`

// sweepBatch is how many index members a write checks for entries that have
// expired by TTL. The sweep walks the whole index in turn, so an expired
// entry leaves the index within about (entries / sweepBatch) writes to its
// shard, or earlier when eviction reaches it.
const sweepBatch = 8

// putScript stores one entry, indexes it, records its variant, sweeps a few
// index members for expired entries and evicts while the shard is over its
// limits.
//
//	KEYS: entry, vary (v:), lru, sz, st
//	ARGV: member, value, ttl ms, score, max entries, max bytes, Vary names
//	      (comma separated), entry key prefix, v: key prefix, publish command
//	      ("" = none), fill channel, max variants per URL
//
// It returns the number of entries evicted.
var putScript = redis.NewScript(luaLib + `
local entry, vary, lru, sz, st = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local member, value, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local maxn, maxb, eprefix, vprefix = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[8], ARGV[9]
local err = wrongType({vary, 'hash', lru, 'zset', sz, 'hash', st, 'hash'})
if err then return err end

redis.call('SET', entry, value, 'PX', ttl)
local bytes = tonumber(redis.call('HGET', st, 'bytes') or '0') or 0
bytes = bytes - drop(lru, sz, member) + #value
redis.call('ZADD', lru, ARGV[4], member)
redis.call('HSET', sz, member, #value)

-- The v: key exists only for URLs that vary (or once did): it lists the
-- variants for Purge and the Vary names for a caller that guessed wrong.
-- A URL keeps at most max variants: past it, its least recently used
-- variant goes, so that a client choosing header values cannot grow it.
local evicted = 0
local variant = string.sub(member, 18)
if ARGV[7] ~= '' or redis.call('EXISTS', vary) == 1 then
	redis.call('HSET', vary, 'vary', ARGV[7])
	if redis.call('HSET', vary, variant, '1') == 1 and redis.call('HLEN', vary) - 1 > tonumber(ARGV[12]) then
		local url, oldest, oldestScore = string.sub(member, 1, 17), nil, nil
		for _, v in ipairs(redis.call('HKEYS', vary)) do
			if v ~= 'vary' and v ~= variant then
				local s = tonumber(redis.call('ZSCORE', lru, url .. v)) or -1
				if not oldest or s < oldestScore then oldest, oldestScore = v, s end
			end
		end
		bytes = bytes - forget(lru, sz, eprefix, vprefix, url .. oldest)
		evicted = evicted + 1
	end
	if redis.call('PTTL', vary) < ttl then
		redis.call('PEXPIRE', vary, ttl)
	end
end

-- The sweep walks the index in score order from where the last write left
-- off. A member's score only grows (a touch, a new write), and an expired
-- entry is never touched, so the walk reaches every expired member within a
-- pass; members of equal score are taken together, so that a batch
-- boundary cannot fall between them and skip some for good.
local cursor = redis.call('HGET', st, 'cursor')
local from = '-inf'
if cursor and cursor ~= '' then from = '(' .. cursor end
local batch = redis.call('ZRANGEBYSCORE', lru, from, '+inf', 'WITHSCORES', 'LIMIT', 0, ` + strconv.Itoa(sweepBatch) + `)
local members, seen = {}, {}
for i = 1, #batch, 2 do
	members[#members + 1] = batch[i]
	seen[batch[i]] = true
end
cursor = ''
if #members == ` + strconv.Itoa(sweepBatch) + ` then
	cursor = batch[#batch]
	for _, m in ipairs(redis.call('ZRANGEBYSCORE', lru, cursor, cursor)) do
		if not seen[m] then members[#members + 1] = m end
	end
end
local expired = 0
for _, m in ipairs(members) do
	if redis.call('EXISTS', eprefix .. m) == 0 then
		bytes = bytes - forget(lru, sz, eprefix, vprefix, m)
		expired = expired + 1
	end
end

local more
bytes, more = evict(lru, sz, eprefix, vprefix, maxn, maxb, bytes, math.huge)
evicted = evicted + more

redis.call('HSET', st, 'bytes', num(bytes), 'cursor', cursor)
add(st, 'expired', expired)
add(st, 'evictions', evicted)
if ARGV[10] ~= '' then redis.call(ARGV[10], ARGV[11], variant) end
return evicted
`)

// deleteScript deletes one entry and its index records. With a SHA-1 in
// ARGV[4] it deletes only a value with that digest: a corrupt value found by
// a reader is removed, but not the good one a writer may have put in its
// place meanwhile.
//
//	KEYS: entry, lru, sz, st
//	ARGV: member, entry key prefix, v: key prefix, SHA-1 of the value or ""
var deleteScript = redis.NewScript(luaLib + `
local entry, lru, sz, st = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local err = wrongType({lru, 'zset', sz, 'hash', st, 'hash'})
if err then return err end
if ARGV[4] ~= '' then
	local v = redis.call('GET', entry)
	if not v or redis.sha1hex(v) ~= ARGV[4] then return 0 end
end
add(st, 'bytes', -forget(lru, sz, ARGV[2], ARGV[3], ARGV[1]))
return 1
`)

// purgeBatch bounds the variants one purge script deletes, so that a URL
// with many variants never holds Redis for long.
const purgeBatch = 100

// purgeScript deletes every variant of one URL: the one without Vary, which
// has no v: key, and those its v: key lists, about purgeBatch a call (an
// HSCAN step from cursor ARGV[5]). It returns the cursor to go on from and
// how many variants the v: key still lists; Purge calls it until none.
//
//	KEYS: vary (v:), lru, sz, st
//	ARGV: url hash, entry key prefix, v: key prefix, variant hash of the
//	      empty variant, HSCAN cursor
var purgeScript = redis.NewScript(luaLib + `
local vary, lru, sz, st = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local err = wrongType({vary, 'hash', lru, 'zset', sz, 'hash', st, 'hash'})
if err then return err end
local url, eprefix, vprefix = ARGV[1], ARGV[2], ARGV[3]
local bytes = forget(lru, sz, eprefix, vprefix, url .. ':' .. ARGV[4])
local scan = redis.call('HSCAN', vary, ARGV[5], 'COUNT', ` + strconv.Itoa(purgeBatch) + `)
for i = 1, #scan[2], 2 do
	if scan[2][i] ~= 'vary' then
		bytes = bytes + forget(lru, sz, eprefix, vprefix, url .. ':' .. scan[2][i])
	end
end
add(st, 'bytes', -bytes)
-- forget deletes the v: key with its last variant; one that only says
-- "vary" goes too.
local left = redis.call('HLEN', vary) - 1
if left <= 0 then
	redis.call('UNLINK', vary)
	left = 0
end
return {scan[1], left}
`)

// clearScript deletes up to ARGV[3] entries of a shard, oldest first, with
// their URLs' v: keys, and returns how many entries the shard still indexes.
// Clear calls it until that is zero, so that Redis never blocks on one long
// script.
//
//	KEYS: lru, sz, st
//	ARGV: entry key prefix, v: key prefix, batch size
var clearScript = redis.NewScript(luaLib + `
local lru, sz, st = KEYS[1], KEYS[2], KEYS[3]
local err = wrongType({lru, 'zset', sz, 'hash', st, 'hash'})
if err then return err end
local bytes = 0
for _, m in ipairs(redis.call('ZRANGE', lru, 0, tonumber(ARGV[3]) - 1)) do
	redis.call('UNLINK', ARGV[2] .. string.sub(m, 1, 16))
	bytes = bytes + forget(lru, sz, ARGV[1], ARGV[2], m)
end
add(st, 'bytes', -bytes)
return redis.call('ZCARD', lru)
`)

// trimBatch bounds the entries one trim script evicts.
const trimBatch = 500

// trimScript evicts up to trimBatch least recently used entries while the
// shard is over the limits, and returns 1 when it is still over them.
//
//	KEYS: lru, sz, st
//	ARGV: max entries, max bytes, entry key prefix, v: key prefix
var trimScript = redis.NewScript(luaLib + `
local lru, sz, st = KEYS[1], KEYS[2], KEYS[3]
local err = wrongType({lru, 'zset', sz, 'hash', st, 'hash'})
if err then return err end
local maxn, maxb = tonumber(ARGV[1]), tonumber(ARGV[2])
local before = tonumber(redis.call('HGET', st, 'bytes') or '0') or 0
local bytes, evicted = evict(lru, sz, ARGV[3], ARGV[4], maxn, maxb, before, ` + strconv.Itoa(trimBatch) + `)
add(st, 'bytes', bytes - before)
add(st, 'evictions', evicted)
if redis.call('ZCARD', lru) > maxn or bytes > maxb then return 1 end
return 0
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
