package rediscache

import "time"

// MaxTTL is the longest Put keeps an entry, whatever ttl it is given: a
// response that says it stays fresh for longer (Expires in the year 9999)
// is fetched again after a year. It keeps every expiry Redis is asked for
// far inside the range of its millisecond clock.
const MaxTTL = 365 * 24 * time.Hour
