package rediscache

import (
	"encoding/binary"
	"errors"
	"fmt"
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

// The entry format, version 1. All integers are unsigned varints unless said
// otherwise; a string is its length followed by its bytes.
//
//	magic    2 bytes  0xFC 0xCA
//	version  1 byte   formatVersion
//	flags    1 byte   0 (reserved)
//	meta              status, proto major, proto minor, method, URL,
//	                  request time (signed varint seconds, nanoseconds),
//	                  response time (same), Vary count n, n names, n values,
//	                  header field count, header value count,
//	                  fields (name, value count, values)
//	body              the body bytes
//	body length       4 bytes, little endian
//	checksum          8 bytes, little endian xxhash64 of everything before it
//
// The body length sits at the end, at a fixed distance from it, so that a
// decoder finds the meta part without parsing and can copy it alone (one
// small allocation holds every string) while the body is handed out in place.
const (
	magic0        = 0xFC
	magic1        = 0xCA
	formatVersion = 1
	headLen       = 4
	tailLen       = 4 + 8
)

// Encode appends the encoding of r to dst and returns the extended slice.
// Bodies must be smaller than 4 GiB (a Redis string holds at most 512 MiB).
func Encode(dst []byte, r *policy.Response) []byte {
	nvals := 0
	size := headLen + tailLen + len(r.Body) + 64 + len(r.Method) + len(r.URL)
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
	dst = append(dst, r.Body...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(r.Body)))
	return binary.LittleEndian.AppendUint64(dst, xxhash.Sum64(dst[start:]))
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
	metaEnd, err := frame(b)
	if err != nil {
		return nil, err
	}
	r, err := decodeMeta(string(b[headLen:metaEnd]))
	if err != nil {
		return nil, err
	}
	r.Body = body(b, metaEnd)
	return r, nil
}

// decodeString is Decode for a value read from Redis, which go-redis hands
// over as a string: nothing is copied at all. The strings of the result are
// substrings of s and the body is a byte view of s's memory. That view is
// safe because nobody writes to it: s is immutable, and Response.Body is
// read-only by contract (see policy.Response).
func decodeString(s string) (*policy.Response, error) {
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	metaEnd, err := frame(b)
	if err != nil {
		return nil, err
	}
	r, err := decodeMeta(s[headLen:metaEnd])
	if err != nil {
		return nil, err
	}
	r.Body = body(b, metaEnd)
	return r, nil
}

// frame checks the fixed parts of an entry (magic, version, checksum, body
// length) and returns where its meta part ends and its body starts.
func frame(b []byte) (metaEnd int, err error) {
	if len(b) < headLen+tailLen {
		return 0, fmt.Errorf("%w: truncated (%d bytes)", ErrCorrupt, len(b))
	}
	if b[0] != magic0 || b[1] != magic1 {
		return 0, fmt.Errorf("%w: not an entry of this cache", ErrCorrupt)
	}
	if b[2] != formatVersion {
		return 0, fmt.Errorf("%w: format version %d, this code reads %d", ErrCorrupt, b[2], formatVersion)
	}
	if b[3] != 0 {
		return 0, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, b[3])
	}
	sumAt := len(b) - 8
	if xxhash.Sum64(b[:sumAt]) != binary.LittleEndian.Uint64(b[sumAt:]) {
		return 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	n := uint64(binary.LittleEndian.Uint32(b[sumAt-4:]))
	if n > uint64(len(b)-headLen-tailLen) {
		return 0, fmt.Errorf("%w: body length %d exceeds the value", ErrCorrupt, n)
	}
	return len(b) - tailLen - int(n), nil
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

func decodeMeta(meta string) (*policy.Response, error) {
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
