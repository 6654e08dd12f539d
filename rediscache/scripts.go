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
//	ix   sorted set, every score 0: "<member>:<size in bytes>", so that a
//	     URL's variants are one ZRANGEBYLEX away (a purge needs no other
//	     record of them) and the byte total stays right when an entry has
//	     expired on its own
//	st   hash: bytes (total of the sizes), evictions, expired (counters for
//	     Stats), cursor (the LRU score where the expiry sweep resumes),
//	     lexcursor (where the repair of lost lru members resumes), resummed
//	     (while ix records lost by Redis are put back: how many ix held
//	     after the last write), ver (the shard's version: see announce)
//	tg   hash: member -> its tags' hashes (16 hex digits each, run
//	     together), for the members that have tags
//	t:<tag hash>  set: the members with that tag; its TTL is at least its
//	     members' (their entries' TTL), so that no tag set outlives them
//	     by more than its last member
//	near pub/sub channel <prefix>near:{<prefix><s>}: every script that
//	     removes, replaces or changes entries announces them there, once,
//	     at its end (announce), for the near tiers of every instance
//
// The tag records of a member go with it in forget (and are replaced by a
// write in putScript): the tag index never holds a member the index does
// not. A soft purge changes an entry in place through soften, the one
// function that does.
//
// Rules every script keeps, because Redis runs a script to its end without
// undoing what it wrote when a command fails half way:
//
//   - It checks the types of the keys it will write before its first write,
//     so that a foreign key fails the call without changing anything.
//   - A write that may grow memory is refused whole when Redis is out of
//     memory: Put runs its SET and script in one MULTI, which Redis discards
//     whole when a command is refused as it is queued (Redis checks memory
//     in a script only until its first write, so a script on its own could
//     have been refused half way). Scripts that only delete start with
//     deleting commands, which Redis allows when it is out of memory, so
//     purges keep freeing memory.
//   - Every removal of an entry goes through forget, and every script that
//     changes entries calls announce before it returns, so that no change
//     escapes the near tiers.
//   - Numbers go to Redis through num, which writes integers as integers:
//     Lua's own formatting gives "-0" for a negated zero and "1e+15" for large
//     values, and Redis refuses both where it wants an integer.
//
// Under a maxmemory-policy that evicts (allkeys-lru and kin) Redis may drop
// any of these keys. The scripts repair what it leaves: an index member
// whose entry is gone is dropped by the sweep, one that lost its size
// record gets it back from the entry, the byte total is summed again when
// st or ix is lost (once: each a read of ix, bounded by the shard's
// capacity), and members that lost their lru record are found again by a
// walk of ix while the two disagree.

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

-- within returns the ZRANGEBYLEX bounds of the ix records starting with p.
local function within(p)
	return '[' .. p .. ':', '(' .. p .. ';'
end

-- record returns m's ix record and the size it holds, or nil and 0.
local function record(ix, m)
	local lo, hi = within(m)
	local r = redis.call('ZRANGEBYLEX', ix, lo, hi, 'LIMIT', 0, 1)[1]
	if not r then return nil, 0 end
	return r, tonumber(string.sub(r, #m + 2)) or 0
end

-- drop removes member m from the index and returns its recorded size.
local function drop(lru, ix, m)
	redis.call('ZREM', lru, m)
	local r, n = record(ix, m)
	if r then redis.call('ZREM', ix, r) end
	return n
end

-- tagKeys returns the shard's tg key and the prefix of its t: keys, named
-- from its lru key: every shard key is <prefix><kind>:<hash tag>, and
-- neither a prefix nor a kind holds a brace.
local function tagKeys(lru)
	local i = string.find(lru, '{', 1, true)
	local p, tag = string.sub(lru, 1, i - 5), string.sub(lru, i)
	return p .. 'tg:' .. tag, p .. 't:' .. tag .. ':'
end

-- untag removes m's tag records. A t: key of another type (not ours) is
-- left as it is rather than fail the script half way.
local function untag(lru, m)
	local tg, tprefix = tagKeys(lru)
	local hs = redis.call('HGET', tg, m)
	if not hs then return end
	redis.call('HDEL', tg, m)
	for i = 1, #hs - 15, 16 do
		redis.pcall('SREM', tprefix .. string.sub(hs, i, i + 15), m)
	end
end

-- changed lists the members whose entries this script removed or replaced,
-- for announce.
local changed = {}

-- note records that member m's entry changed (went, or was replaced or
-- altered in place), for announce.
local function note(m)
	changed[#changed + 1] = m
end

-- announce tells the fleet's near tiers which entries this script changed:
-- one message per script on the shard's near channel (cmd is PUBLISH or
-- SPUBLISH, "" when the user may not publish), "<version> <member> ...".
-- The version is the shard's, bumped here. (Were Redis to lose st, it
-- would start again from 1: a listener that hears a version lower than one
-- it heard before empties its tier.) It returns the version (0 when
-- nothing was announced) and the message. A script that changes an entry
-- in place notes its member and calls it too.
local function announce(st, cmd, channel)
	if cmd == '' or #changed == 0 then return 0, '' end
	local v = redis.call('HINCRBY', st, 'ver', 1)
	local msg = num(v) .. ' ' .. table.concat(changed, ' ')
	redis.call(cmd, channel, msg)
	return v, msg
end

-- forget removes m's entry, its index and tag records, and the URL's v: key
-- with its last variant, and returns the size dropped. Every removal of an
-- entry comes through here, so that announce tells the near tiers of it.
local function forget(lru, ix, eprefix, vprefix, m)
	note(m)
	redis.call('UNLINK', eprefix .. m)
	untag(lru, m)
	local n = drop(lru, ix, m)
	local url = string.sub(m, 1, 16)
	if redis.call('ZLEXCOUNT', ix, within(url)) == 0 then
		redis.call('UNLINK', vprefix .. url)
	end
	return n
end

-- soften makes m's entry stale at once for every reader (a soft purge): it
-- writes the purge time at (Unix ms) into the entry's purge field (see
-- encode.go), keeping the value and its TTL, unless an earlier soft purge
-- already did. An entry it cannot change in place (expired, of format
-- version 1, not ours) is forgotten. It returns 1 when it marked the entry
-- stale and the size it dropped otherwise. Every change of an entry in
-- place goes through here, so that announce tells the near tiers of it.
local function soften(lru, ix, eprefix, vprefix, m, at)
	local e = eprefix .. m
	local v = ''
	if redis.call('TYPE', e)['ok'] == 'string' then v = redis.call('GETRANGE', e, 0, 19) end
	if #v < 20 or string.sub(v, 1, 3) ~= '\252\202\2' then
		return 0, forget(lru, ix, eprefix, vprefix, m)
	end
	if string.sub(v, 5, 12) ~= string.rep('\0', 8) then return 1, 0 end
	local b, c = {}, {}
	for i = 1, 8 do
		local x = at % 256
		b[i], c[i] = string.char(x), string.char(255 - x)
		at = (at - x) / 256
	end
	redis.call('SETRANGE', e, 4, table.concat(b) .. table.concat(c))
	note(m)
	return 1, 0
end

-- evict forgets least recently used members while the shard is over its
-- limits, at most limit of them, and returns the byte total and how many
-- it evicted.
local function evict(lru, ix, eprefix, vprefix, maxn, maxb, bytes, limit)
	local n = redis.call('ZCARD', lru)
	local evicted = 0
	while n > 0 and (n > maxn or bytes > maxb) and evicted < limit do
		local m = redis.call('ZRANGE', lru, 0, 0)[1]
		bytes = bytes - forget(lru, ix, eprefix, vprefix, m)
		n = n - 1
		evicted = evicted + 1
	end
	return bytes, evicted
end

-- sum adds up the sizes ix records.
local function sum(ix)
	local b = 0
	for _, r in ipairs(redis.call('ZRANGE', ix, 0, -1)) do
		b = b + (tonumber(string.sub(r, 35)) or 0)
	end
	return b
end

-- total returns the shard's byte total, summed again from ix when Redis
-- lost it (or it went wrong): each write then keeps it exact.
local function total(ix, st)
	local b = tonumber(redis.call('HGET', st, 'bytes') or '')
	if b and b >= 0 then return b end
	return sum(ix)
end
`

// sweepBatch is how many index members a write checks for entries that have
// expired by TTL. The sweep walks the whole index in turn, so an expired
// entry leaves the index within about (entries / sweepBatch) writes to its
// shard, or earlier when eviction reaches it.
const sweepBatch = 8

// putEvictions bounds the entries one write evicts, so that no write holds
// Redis for long; a shard over a lowered limit is brought down by the trim.
const putEvictions = 100

// putScript indexes the entry the same transaction has just SET (Put sends
// MULTI, SET, EVALSHA, EXEC: the value reaches Redis as a plain command's
// argument, since a script's arguments are copied into Lua and out again,
// which held Redis for 100 ms and more for a value of 8 MiB; and Redis
// refuses the whole transaction when it is out of memory, before anything
// runs). It records the URL's Vary names, keeps the URL within its variant
// limit, sweeps a few index members for expired entries (repairing what an
// evicting Redis left of the index) and evicts while the shard is over its
// limits; it then ends the URL's lease when it still holds the writer's
// token, and announces the fill. It replaces the member's tag records with
// the entry's tags, and keeps each tag's set at least as long as the
// entry. It announces the entries it replaced or removed to the near tiers
// (announce). A key of the wrong type fails it before it writes anything
// but the removal of the entry it was to index.
//
//	KEYS: entry, vary (v:), lru, ix, st, lease, tg
//	ARGV: member, size of the value, ttl ms, score, max entries, max bytes,
//	      Vary names (comma separated), entry key prefix, v: key prefix,
//	      publish command ("" = none), fill channel, max variants per URL,
//	      lease token ("" = not the holder), tag hashes (run together),
//	      near channel
//
// It returns {1 when the entry is kept, 0 when the write's own eviction
// removed it; the shard's version after the write (0 when not announced)}.
var putScript = redis.NewScript(luaLib + `
local entry, vary, lru, ix, st = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local member, size, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local maxn, maxb, eprefix, vprefix = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[8], ARGV[9]
local tg, tprefix = tagKeys(lru)
local tags = {}
for i = 1, #ARGV[14] - 15, 16 do tags[#tags + 1] = tprefix .. string.sub(ARGV[14], i, i + 15) end
local types = {vary, 'hash', lru, 'zset', ix, 'zset', st, 'hash', KEYS[6], 'string', tg, 'hash'}
for _, t in ipairs(tags) do
	types[#types + 1] = t
	types[#types + 1] = 'set'
end
local err = wrongType(types)
if err then
	redis.call('UNLINK', entry)
	return err
end

local bytes = total(ix, st)
-- Redis dropped ix (an evicting maxmemory-policy) when it holds fewer
-- records than lru holds members: the byte total still counts what it
-- dropped. Sum it from what ix holds; the records the sweep puts back then
-- add their sizes. Until they are all back, each write records how many ix
-- holds, so that a write finding fewer (Redis dropped ix again, or a purge
-- ran) sums again rather than count twice the records put back before.
local repairing = redis.call('ZCARD', ix) < redis.call('ZCARD', lru)
if repairing then
	local seen = tonumber(redis.call('HGET', st, 'resummed') or '')
	if not seen or redis.call('ZCARD', ix) < seen then
		bytes = sum(ix)
	end
else
	redis.call('HDEL', st, 'resummed')
	if redis.call('ZCARD', ix) == 0 then
		bytes = 0 -- nothing indexed (lru and ix both dropped): nothing is counted
	end
end
bytes = bytes - drop(lru, ix, member) + size
note(member)
redis.call('ZADD', lru, ARGV[4], member)
redis.call('ZADD', ix, 0, member .. ':' .. size)
untag(lru, member)
if #tags > 0 then
	redis.call('HSET', tg, member, ARGV[14])
	for _, t in ipairs(tags) do
		redis.call('SADD', t, member)
		if redis.call('PTTL', t) < ttl then redis.call('PEXPIRE', t, ttl) end
	end
end

-- The v: key exists only for URLs that vary (or once did): it holds the
-- Vary names for a caller that guessed the variant wrong, and lives as
-- long as the URL's longest-lived variant. One made anew (the URL's first
-- Vary, or Redis evicted it) looks at (up to 1000 of) the variants already
-- stored to find how long that is.
local url = string.sub(member, 1, 16)
local vexists = redis.call('EXISTS', vary) == 1
if ARGV[7] ~= '' or vexists then
	local longest = ttl
	if not vexists then
		local lo, hi = within(url)
		for _, r in ipairs(redis.call('ZRANGEBYLEX', ix, lo, hi, 'LIMIT', 0, 1000)) do
			longest = math.max(longest, redis.call('PTTL', eprefix .. string.sub(r, 1, 33)))
		end
	end
	redis.call('HSET', vary, 'vary', ARGV[7])
	if redis.call('PTTL', vary) < longest then
		redis.call('PEXPIRE', vary, num(longest))
	end
end

-- A URL keeps at most max variants: past it, its least recently used
-- variants go, so that a client choosing header values cannot grow it. One
-- look at (up to 1000 of) the URL's variants finds them all: a URL far over
-- this writer's limit (another instance's was higher) costs one scan, not
-- one per eviction.
local evicted = 0
local over = redis.call('ZLEXCOUNT', ix, within(url)) - tonumber(ARGV[12])
if over > 0 then
	local others = {}
	for _, r in ipairs(redis.call('ZRANGEBYLEX', ix, '[' .. url .. ':', '(' .. url .. ';', 'LIMIT', 0, 1000)) do
		local m = string.sub(r, 1, 33)
		if m ~= member then
			others[#others + 1] = {m, tonumber(redis.call('ZSCORE', lru, m)) or -1}
		end
	end
	table.sort(others, function(a, b) return a[2] < b[2] end)
	for i = 1, math.min(over, ` + strconv.Itoa(putEvictions) + `, #others) do
		bytes = bytes - forget(lru, ix, eprefix, vprefix, others[i][1])
		evicted = evicted + 1
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
		bytes = bytes - forget(lru, ix, eprefix, vprefix, m)
		expired = expired + 1
	elseif not record(ix, m) then
		local n = redis.call('STRLEN', eprefix .. m)
		redis.call('ZADD', ix, 0, m .. ':' .. n)
		bytes = bytes + n
	end
end

-- Members Redis evicted from lru (but not from ix) are found by walking ix
-- while the two disagree, and put back at the bottom of the LRU order, or
-- forgotten when their entry is gone too. Each gets a score of its own
-- there (its URL hash's first 32 bits, far below any time in ms): the sweep
-- takes members of equal score together, and a whole shard at one score
-- would make one write check all of it.
local lexcursor = redis.call('HGET', st, 'lexcursor') or ''
if redis.call('ZCARD', ix) ~= redis.call('ZCARD', lru) then
	local lo = '-'
	if lexcursor ~= '' then lo = '(' .. lexcursor end
	local recs = redis.call('ZRANGEBYLEX', ix, lo, '+', 'LIMIT', 0, ` + strconv.Itoa(sweepBatch) + `)
	lexcursor = recs[#recs] or ''
	for _, r in ipairs(recs) do
		local m = string.sub(r, 1, 33)
		if not redis.call('ZSCORE', lru, m) then
			if redis.call('EXISTS', eprefix .. m) == 1 then
				redis.call('ZADD', lru, tonumber(string.sub(m, 1, 8), 16), m)
			else
				bytes = bytes - forget(lru, ix, eprefix, vprefix, m)
				expired = expired + 1
			end
		end
	end
end
-- A write evicts a bounded number of entries: after a lowered limit, the
-- background trim does the rest.
local more
bytes, more = evict(lru, ix, eprefix, vprefix, maxn, maxb, bytes, ` + strconv.Itoa(putEvictions) + `)
evicted = evicted + more

redis.call('HSET', st, 'bytes', num(bytes), 'cursor', cursor, 'lexcursor', lexcursor)
if repairing then redis.call('HSET', st, 'resummed', num(redis.call('ZCARD', ix))) end
add(st, 'expired', expired)
add(st, 'evictions', evicted)
local ver = announce(st, ARGV[10], ARGV[15])
-- The entry was the least valuable of a full shard (a heuristic one among
-- explicit ones) and went with the eviction: no fill to announce, and the
-- lease is left to its holder's release.
if not redis.call('ZSCORE', lru, member) then return {0, ver} end
if ARGV[13] ~= '' and redis.call('GET', KEYS[6]) == ARGV[13] then redis.call('DEL', KEYS[6]) end
if ARGV[10] ~= '' then redis.call(ARGV[10], ARGV[11], string.sub(member, 18)) end
return {1, ver}
`)

// deleteScript deletes one entry and its index records. With a SHA-1 in
// ARGV[4] it deletes only a value with that digest: a corrupt value found by
// a reader is removed, but not the good one a writer may have put in its
// place meanwhile.
//
//	KEYS: entry, lru, ix, st
//	ARGV: member, entry key prefix, v: key prefix, SHA-1 of the value or "",
//	      publish command ("" = none), near channel
var deleteScript = redis.NewScript(luaLib + `
local entry, lru, ix, st = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local err = wrongType({lru, 'zset', ix, 'zset', st, 'hash', tagKeys(lru), 'hash'})
if err then return err end
if ARGV[4] ~= '' then
	local v = redis.call('GET', entry)
	if not v or redis.sha1hex(v) ~= ARGV[4] then return 0 end
end
add(st, 'bytes', -forget(lru, ix, ARGV[2], ARGV[3], ARGV[1]))
announce(st, ARGV[5], ARGV[6])
return 1
`)

// purgeBatch bounds the variants one purge script deletes, so that a URL
// with many variants never holds Redis for long.
const purgeBatch = 100

// purgeScript deletes up to purgeBatch variants of one URL, found in ix, and
// returns how many it still has, how many of those it deleted were there
// (not expired unswept) and the near tiers' message; Purge calls it until
// none.
//
//	KEYS: lru, ix, st
//	ARGV: url hash, entry key prefix, v: key prefix, publish command
//	      ("" = none), near channel
var purgeScript = redis.NewScript(luaLib + `
local lru, ix, st = KEYS[1], KEYS[2], KEYS[3]
local err = wrongType({lru, 'zset', ix, 'zset', st, 'hash', tagKeys(lru), 'hash'})
if err then return err end
local url, eprefix, vprefix = ARGV[1], ARGV[2], ARGV[3]
local lo, hi = within(url)
local bytes, removed = 0, 0
for _, r in ipairs(redis.call('ZRANGEBYLEX', ix, lo, hi, 'LIMIT', 0, ` + strconv.Itoa(purgeBatch) + `)) do
	local m = string.sub(r, 1, 33)
	removed = removed + redis.call('EXISTS', eprefix .. m)
	bytes = bytes + forget(lru, ix, eprefix, vprefix, m)
end
-- When Redis dropped ix records (an evicting maxmemory-policy), the URL's
-- variants are looked for in lru too, which costs a scan of the shard's
-- index but only while the two disagree.
if redis.call('ZCARD', ix) ~= redis.call('ZCARD', lru) then
	local cursor = '0'
	repeat
		local scan = redis.call('ZSCAN', lru, cursor, 'MATCH', url .. ':*', 'COUNT', 1000)
		cursor = scan[1]
		for i = 1, #scan[2], 2 do
			removed = removed + redis.call('EXISTS', eprefix .. scan[2][i])
			bytes = bytes + forget(lru, ix, eprefix, vprefix, scan[2][i])
		end
	until cursor == '0'
end
redis.call('UNLINK', vprefix .. url)
add(st, 'bytes', -bytes)
local _, msg = announce(st, ARGV[4], ARGV[5])
return {redis.call('ZLEXCOUNT', ix, lo, hi), removed, msg}
`)

// softPurgeScript marks up to purgeBatch variants of one URL stale (see
// soften), walking ix from a cursor (the last record of the previous call,
// "" at first), and returns the next cursor ("" when done), how many it
// marked, how many it removed (entries it could not mark) and the near
// tiers' message.
//
//	KEYS: lru, ix, st
//	ARGV: url hash, entry key prefix, v: key prefix, cursor, now (Unix ms),
//	      publish command ("" = none), near channel
var softPurgeScript = redis.NewScript(luaLib + `
local lru, ix, st = KEYS[1], KEYS[2], KEYS[3]
local err = wrongType({lru, 'zset', ix, 'zset', st, 'hash', tagKeys(lru), 'hash'})
if err then return err end
local url, eprefix, vprefix, at = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[5])
local lo, hi = within(url)
if ARGV[4] ~= '' then lo = '(' .. ARGV[4] end
local recs = redis.call('ZRANGEBYLEX', ix, lo, hi, 'LIMIT', 0, ` + strconv.Itoa(purgeBatch) + `)
local bytes, marked, removed = 0, 0, 0
local function mark(m)
	local ok, n = soften(lru, ix, eprefix, vprefix, m, at)
	if ok == 1 then marked = marked + 1 else removed = removed + 1 end
	bytes = bytes + n
end
for _, r in ipairs(recs) do mark(string.sub(r, 1, 33)) end
-- Variants whose ix record Redis dropped (an evicting maxmemory-policy)
-- are looked for in lru, on the first call, as purgeScript does.
if ARGV[4] == '' and redis.call('ZCARD', ix) ~= redis.call('ZCARD', lru) then
	local cursor = '0'
	repeat
		local scan = redis.call('ZSCAN', lru, cursor, 'MATCH', url .. ':*', 'COUNT', 1000)
		cursor = scan[1]
		for i = 1, #scan[2], 2 do
			if not record(ix, scan[2][i]) then mark(scan[2][i]) end
		end
	until cursor == '0'
end
add(st, 'bytes', -bytes)
local cursor = ''
if #recs == ` + strconv.Itoa(purgeBatch) + ` then cursor = recs[#recs] end
local _, msg = announce(st, ARGV[6], ARGV[7])
return {cursor, marked, removed, msg}
`)

// purgeTagScript deletes up to purgeBatch members of a shard's tag sets
// (every entry with one of the tags), and returns how many members the
// sets still hold, how many of the entries it deleted were there (not
// expired unswept) and the near tiers' message; PurgeTag calls it until
// none.
//
//	KEYS: lru, ix, st, tg, the tags' sets (t: keys)
//	ARGV: entry key prefix, v: key prefix, publish command ("" = none),
//	      near channel
var purgeTagScript = redis.NewScript(luaLib + `
local lru, ix, st = KEYS[1], KEYS[2], KEYS[3]
local types = {lru, 'zset', ix, 'zset', st, 'hash', KEYS[4], 'hash'}
for i = 5, #KEYS do
	types[#types + 1] = KEYS[i]
	types[#types + 1] = 'set'
end
local err = wrongType(types)
if err then return err end
local budget, bytes, removed = ` + strconv.Itoa(purgeBatch) + `, 0, 0
for i = 5, #KEYS do
	if budget == 0 then break end
	for _, m in ipairs(redis.call('SRANDMEMBER', KEYS[i], budget)) do
		if redis.call('EXISTS', ARGV[1] .. m) == 1 then removed = removed + 1 end
		bytes = bytes + forget(lru, ix, ARGV[1], ARGV[2], m)
		-- Gone from the set even when Redis lost its tg record.
		redis.call('SREM', KEYS[i], m)
		budget = budget - 1
	end
end
add(st, 'bytes', -bytes)
local left = 0
for i = 5, #KEYS do left = left + redis.call('SCARD', KEYS[i]) end
local _, msg = announce(st, ARGV[3], ARGV[4])
return {left, removed, msg}
`)

// softTagScript marks stale up to purgeBatch members of one tag set (see
// soften), from an SSCAN cursor ("0" at first), and returns the next
// cursor ("0" when done), how many it marked, how many it removed and the
// near tiers' message. SSCAN may return a member twice: marking again
// changes nothing.
//
//	KEYS: lru, ix, st, tg, the tag's set
//	ARGV: entry key prefix, v: key prefix, cursor, now (Unix ms), publish
//	      command ("" = none), near channel
var softTagScript = redis.NewScript(luaLib + `
local lru, ix, st = KEYS[1], KEYS[2], KEYS[3]
local err = wrongType({lru, 'zset', ix, 'zset', st, 'hash', KEYS[4], 'hash', KEYS[5], 'set'})
if err then return err end
local at = tonumber(ARGV[4])
local scan = redis.call('SSCAN', KEYS[5], ARGV[3], 'COUNT', ` + strconv.Itoa(purgeBatch) + `)
local bytes, marked, removed = 0, 0, 0
for _, m in ipairs(scan[2]) do
	local ok, n = soften(lru, ix, ARGV[1], ARGV[2], m, at)
	if ok == 1 then
		marked = marked + 1
	else
		redis.call('SREM', KEYS[5], m)
		removed = removed + 1
	end
	bytes = bytes + n
end
add(st, 'bytes', -bytes)
local _, msg = announce(st, ARGV[5], ARGV[6])
return {scan[1], marked, removed, msg}
`)

// clearScript deletes up to ARGV[3] entries of a shard, oldest first, and
// then any ix records without an lru member, and returns how many records
// the shard still holds. Clear calls it until that is zero, so that Redis
// never blocks on one long script.
//
//	KEYS: lru, ix, st
//	ARGV: entry key prefix, v: key prefix, batch size, publish command
//	      ("" = none), near channel
var clearScript = redis.NewScript(luaLib + `
local lru, ix, st = KEYS[1], KEYS[2], KEYS[3]
local err = wrongType({lru, 'zset', ix, 'zset', st, 'hash', tagKeys(lru), 'hash'})
if err then return err end
local n = tonumber(ARGV[3])
local bytes = 0
local batch = redis.call('ZRANGE', lru, 0, n - 1)
if #batch == 0 then
	for _, r in ipairs(redis.call('ZRANGE', ix, 0, n - 1)) do batch[#batch + 1] = string.sub(r, 1, 33) end
end
for _, m in ipairs(batch) do
	bytes = bytes + forget(lru, ix, ARGV[1], ARGV[2], m)
end
add(st, 'bytes', -bytes)
local left = redis.call('ZCARD', lru) + redis.call('ZCARD', ix)
-- Tag records of members Redis dropped from both lru and ix (an evicting
-- maxmemory-policy) go with the rest; their sets expire by TTL.
if left == 0 then redis.call('UNLINK', tagKeys(lru)) end
announce(st, ARGV[4], ARGV[5])
return left
`)

// trimBatch bounds the entries one trim script evicts.
const trimBatch = 500

// trimScript evicts up to trimBatch least recently used entries while the
// shard is over the limits, and returns 1 when it is still over them and
// another batch can evict more.
//
//	KEYS: lru, ix, st
//	ARGV: max entries, max bytes, entry key prefix, v: key prefix, publish
//	      command ("" = none), near channel
var trimScript = redis.NewScript(luaLib + `
local lru, ix, st = KEYS[1], KEYS[2], KEYS[3]
local err = wrongType({lru, 'zset', ix, 'zset', st, 'hash', tagKeys(lru), 'hash'})
if err then return err end
local maxn, maxb = tonumber(ARGV[1]), tonumber(ARGV[2])
local before = total(ix, st)
local bytes, evicted = evict(lru, ix, ARGV[3], ARGV[4], maxn, maxb, before, ` + strconv.Itoa(trimBatch) + `)
if evicted > 0 then
	redis.call('HSET', st, 'bytes', num(bytes))
	add(st, 'evictions', evicted)
end
announce(st, ARGV[5], ARGV[6])
-- Still over, and evicting: another batch may help. Nothing evicted means
-- lru is empty (an evicting Redis dropped it): another call could not help.
if evicted > 0 and (redis.call('ZCARD', lru) > maxn or bytes > maxb) then return 1 end
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
