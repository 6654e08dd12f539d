package rediscache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/fleetcache/fleetcache/policy"
)

// ErrCorrupt is wrapped by the error Decode returns for a value that is not a
// whole, intact entry of a format version this package knows: truncated,
// damaged, written by something else, or written by a newer version. The
// store treats such a value as a miss and deletes it.
var ErrCorrupt = errors.New("rediscache: corrupt entry")

// The entry format, version 2. All integers are unsigned varints unless said
// otherwise; a string is its length followed by its bytes.
//
//	magic    2 bytes  0xFC 0xCA
//	version  1 byte   formatVersion
//	flags    1 byte   0 (reserved)
//	purged   8 bytes  little endian Unix ms of a soft purge, 0 if none
//	check    8 bytes  purged with every bit inverted
//	meta              status, proto major, proto minor, method, URL,
//	                  request time (signed varint seconds, nanoseconds),
//	                  response time (same), Vary count n, n names, n values,
//	                  header field count, header value count,
//	                  fields (name, value count, values), tag count, tags
//	body              the body bytes
//	body length       4 bytes, little endian
//	checksum          8 bytes, little endian xxhash64 of everything before it
//	                  but purged and check
//
// The body length sits at the end, at a fixed distance from it, so that a
// decoder finds the meta part without parsing and can copy it alone (one
// small allocation holds every string) while the body is handed out in place.
//
// purged sits at a fixed place outside the checksum so that a soft purge
// can set it inside Redis (a script cannot compute xxhash64) without
// rewriting the value; check, which the script writes with it, keeps a
// damaged purged from passing unseen. Version 1 (without purged, check and
// tags) is still read.
const (
	magic0        = 0xFC
	magic1        = 0xCA
	formatVersion = 2
	headLen       = 4 + 16
	headLenV1     = 4
	tailLen       = 4 + 8
)

// Encode appends the encoding of r to dst and returns the extended slice.
// Bodies must be smaller than 4 GiB (a Redis string holds at most 512 MiB).
func Encode(dst []byte, r *policy.Response) []byte {
	nvals := 0
	size := headLen + tailLen + len(r.Body) + 64 + len(r.Method) + len(r.URL)
	for _, t := range r.Tags {
		size += len(t) + binary.MaxVarintLen16
	}
	for i, name := range r.Vary {
		size += len(name) + len(varyValue(r, i)) + 2*binary.MaxVarintLen16
	}
	for name, vs := range r.Header {
		size += len(name) + 2*binary.MaxVarintLen16
		for _, v := range vs {
			size += len(v) + binary.MaxVarintLen16
		}
		nvals += len(vs)
	}

	dst = slices.Grow(dst, size)
	start := len(dst)
	dst = append(dst, magic0, magic1, formatVersion, 0)
	dst = appendPurged(dst, r.Purged)
	dst = binary.AppendUvarint(dst, uint64(r.Status))
	dst = binary.AppendUvarint(dst, uint64(r.ProtoMajor))
	dst = binary.AppendUvarint(dst, uint64(r.ProtoMinor))
	dst = appendString(dst, r.Method)
	dst = appendString(dst, r.URL)
	dst = appendTime(dst, r.RequestTime)
	dst = appendTime(dst, r.ResponseTime)
	dst = binary.AppendUvarint(dst, uint64(len(r.Vary)))
	for _, name := range r.Vary {
		dst = appendString(dst, name)
	}
	for i := range r.Vary {
		dst = appendString(dst, varyValue(r, i))
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Header)))
	dst = binary.AppendUvarint(dst, uint64(nvals))
	for name, vs := range r.Header {
		dst = appendString(dst, name)
		dst = binary.AppendUvarint(dst, uint64(len(vs)))
		for _, v := range vs {
			dst = appendString(dst, v)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Tags)))
	for _, t := range r.Tags {
		dst = appendString(dst, t)
	}
	dst = append(dst, r.Body...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(r.Body)))
	return binary.LittleEndian.AppendUint64(dst, checksum(dst[start:]))
}

// checksum is the xxhash64 of an entry of the current version up to its
// checksum, leaving out purged and check.
func checksum(b []byte) uint64 {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.Write(b[:headLenV1])
	_, _ = d.Write(b[headLen:])
	return d.Sum64()
}

func appendPurged(dst []byte, t time.Time) []byte {
	var ms uint64
	if !t.IsZero() {
		ms = uint64(max(t.UnixMilli(), 1))
	}
	dst = binary.LittleEndian.AppendUint64(dst, ms)
	return binary.LittleEndian.AppendUint64(dst, ^ms)
}

// varyValue tolerates a VaryValues shorter than Vary (a value the request did
// not have is the empty string) so that Encode never fails.
func varyValue(r *policy.Response, i int) string {
	if i < len(r.VaryValues) {
		return r.VaryValues[i]
	}
	return ""
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = binary.AppendVarint(dst, t.Unix())
	return binary.AppendUvarint(dst, uint64(t.Nanosecond()))
}

// Decode decodes an entry written by Encode. Every string of the result
// shares one allocation; the body is not copied: it aliases b, so b must not
// be changed afterwards. Any value that is not an intact entry of a known
// format version yields an error wrapping ErrCorrupt.
func Decode(b []byte) (*policy.Response, error) {
	f, err := frame(b)
	if err != nil {
		return nil, err
	}
	r, err := decodeMeta(string(b[f.metaStart:f.metaEnd]), f.tags)
	if err != nil {
		return nil, err
	}
	r.Body, r.Purged = body(b, f.metaEnd), f.purged
	return r, nil
}

// decodeString is Decode for a value read from Redis, which go-redis hands
// over as a string: nothing is copied at all. The strings of the result are
// substrings of s and the body is a byte view of s's memory. That view is
// safe because nobody writes to it: s is immutable, and Response.Body is
// read-only by contract (see policy.Response).
func decodeString(s string) (*policy.Response, error) {
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	f, err := frame(b)
	if err != nil {
		return nil, err
	}
	r, err := decodeMeta(s[f.metaStart:f.metaEnd], f.tags)
	if err != nil {
		return nil, err
	}
	r.Body, r.Purged = body(b, f.metaEnd), f.purged
	return r, nil
}

// framing is what frame finds in the fixed parts of an entry.
type framing struct {
	metaStart, metaEnd int
	tags               bool // the meta part ends with the tags (version 2)
	purged             time.Time
}

// frame checks the fixed parts of an entry (magic, version, checksum, body
// length, purged) and returns where its meta part starts and ends.
func frame(b []byte) (framing, error) {
	if len(b) < headLenV1+tailLen {
		return framing{}, fmt.Errorf("%w: truncated (%d bytes)", ErrCorrupt, len(b))
	}
	if b[0] != magic0 || b[1] != magic1 {
		return framing{}, fmt.Errorf("%w: not an entry of this cache", ErrCorrupt)
	}
	head, sum := headLenV1, xxhash.Sum64
	switch b[2] {
	case 1:
	case formatVersion:
		head, sum = headLen, checksum
		if len(b) < headLen+tailLen {
			return framing{}, fmt.Errorf("%w: truncated (%d bytes)", ErrCorrupt, len(b))
		}
	default:
		return framing{}, fmt.Errorf("%w: format version %d, this code reads 1 and %d", ErrCorrupt, b[2], formatVersion)
	}
	if b[3] != 0 {
		return framing{}, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, b[3])
	}
	sumAt := len(b) - 8
	if sum(b[:sumAt]) != binary.LittleEndian.Uint64(b[sumAt:]) {
		return framing{}, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	n := uint64(binary.LittleEndian.Uint32(b[sumAt-4:]))
	if n > uint64(len(b)-head-tailLen) {
		return framing{}, fmt.Errorf("%w: body length %d exceeds the value", ErrCorrupt, n)
	}
	f := framing{metaStart: head, metaEnd: len(b) - tailLen - int(n), tags: head == headLen}
	if f.tags {
		ms := binary.LittleEndian.Uint64(b[4:])
		if ^ms != binary.LittleEndian.Uint64(b[12:]) || ms > math.MaxInt64 {
			return framing{}, fmt.Errorf("%w: damaged purge time", ErrCorrupt)
		}
		if ms != 0 {
			f.purged = time.UnixMilli(int64(ms)).UTC()
		}
	}
	return f, nil
}

// body returns the body that starts at from, capped so that an append by a
// careless reader cannot write into the checksum.
func body(b []byte, from int) []byte {
	end := len(b) - tailLen
	if from == end {
		return nil
	}
	return b[from:end:end]
}

func decodeMeta(meta string, tags bool) (*policy.Response, error) {
	d := decoder{s: meta}
	r := &policy.Response{
		Status:     d.int(999),
		ProtoMajor: d.int(255),
		ProtoMinor: d.int(255),
		Method:     d.str(),
		URL:        d.str(),
	}
	r.RequestTime = d.time()
	r.ResponseTime = d.time()

	if n := d.count(2); n > 0 {
		vary := make([]string, 2*n)
		for i := range vary {
			vary[i] = d.str()
		}
		r.Vary, r.VaryValues = vary[:n:n], vary[n:]
	}

	nfields := d.count(2)
	vals := make([]string, d.count(1))
	r.Header = make(http.Header, nfields)
	for range nfields {
		name := d.str()
		n := d.count(1)
		if d.err != "" || n > len(vals) {
			d.fail("header values exceed their count")
			break
		}
		for i := range n {
			vals[i] = d.str()
		}
		r.Header[name] = vals[:n:n]
		vals = vals[n:]
	}

	if tags && d.err == "" {
		if n := d.count(1); n > 0 {
			r.Tags = make([]string, n)
			for i := range r.Tags {
				r.Tags[i] = d.str()
			}
		}
	}

	switch {
	case d.err != "":
	case len(vals) != 0:
		d.fail("header value count mismatch")
	case d.s != "":
		d.fail("trailing bytes after the header")
	case r.Status < 100:
		d.fail("status out of range")
	case r.Method == "" || r.URL == "":
		d.fail("missing method or URL")
	}
	if d.err != "" {
		return nil, fmt.Errorf("%w: %s", ErrCorrupt, d.err)
	}
	return r, nil
}

// decoder reads the meta part. The first failure sticks: later reads return
// zero values, so decodeMeta checks once at the end instead of at every
// field, and nothing is ever read out of bounds.
type decoder struct {
	s   string
	err string
}

func (d *decoder) fail(msg string) {
	if d.err == "" {
		d.err = msg
	}
	d.s = ""
}

func (d *decoder) uvarint() uint64 {
	var x uint64
	for i := 0; i < len(d.s) && i < binary.MaxVarintLen64; i++ {
		c := d.s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			d.s = d.s[i+1:]
			return x | uint64(c)<<(7*i)
		}
		x |= uint64(c&0x7f) << (7 * i)
	}
	d.fail("bad varint")
	return 0
}

// int reads a number no larger than max.
func (d *decoder) int(max uint64) int {
	x := d.uvarint()
	if x > max {
		d.fail("number out of range")
		return 0
	}
	return int(x)
}

// count reads the length of a list whose items take at least minSize bytes
// each, so that a damaged count never makes the decoder allocate more than
// the value could hold.
func (d *decoder) count(minSize int) int {
	n := d.uvarint() // first: the bound is what remains after the count
	if n > uint64(len(d.s)/minSize) {
		d.fail("count exceeds the value")
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	n := d.count(1)
	s := d.s[:n]
	d.s = d.s[n:]
	return s
}

func (d *decoder) time() time.Time {
	u := d.uvarint()
	sec := int64(u>>1) ^ -int64(u&1) // zig-zag, as binary.AppendVarint writes it
	nsec := d.int(999_999_999)
	return time.Unix(sec, int64(nsec)).UTC()
}
