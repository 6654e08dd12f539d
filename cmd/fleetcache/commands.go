package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetcache/fleetcache/internal/proxy"
	"github.com/fleetcache/fleetcache/policy"
	"github.com/fleetcache/fleetcache/rediscache"
)

// The administrative commands: fleetcache COMMAND -redis URL -prefix P.
var commands = map[string]string{
	"stats":   "entries, bytes, evictions and capacity, and how they spread over the shards",
	"inspect": "every stored variant of a URL: status, header, age, freshness left, TTL, size",
	"config":  "config get: the capacity in Redis; config set max_entries|max_bytes N: retune it live",
	"clear":   "remove every entry of the prefix (asks first, unless -yes)",
	"purge":   "remove every variant of URLs, or every entry with a tag; -soft marks them stale instead (docs/purge.md)",
}

func isCommand(arg string) bool {
	_, ok := commands[arg]
	return ok
}

// commandTimeout bounds a command's work in Redis, but for clear, which
// walks the whole cache and stops on SIGINT.
const commandTimeout = 30 * time.Second

// cli runs one administrative command, with its surroundings passed in so
// that tests can drive it.
type cli struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
	now            func() time.Time

	redisURL, prefix string
	json, yes        bool
	soft             bool     // purge -soft
	tags             []string // purge -tag, repeated
}

// runCommand runs the command args[0] and returns its exit status: 0 done,
// 1 failed (Redis, no cache at the prefix, clear not confirmed), 2 bad
// input.
func runCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now}
	return c.run(ctx, args)
}

// usageError is bad input: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func (c *cli) run(ctx context.Context, args []string) int {
	name := args[0]
	err := c.command(ctx, name, args[1:])
	var usage usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &usage):
		fmt.Fprintf(c.stderr, "fleetcache %s: %v (see fleetcache %s -h)\n", name, err, name)
		return exitConfig
	}
	fmt.Fprintf(c.stderr, "fleetcache %s: %v\n", name, err)
	return exitFailure
}

func (c *cli) command(ctx context.Context, name string, args []string) error {
	pos, err := c.parse(name, args)
	if err != nil {
		return err
	}
	switch {
	case name == "config" && (len(pos) == 0 || pos[0] != "get" && pos[0] != "set" ||
		pos[0] == "get" && len(pos) != 1 || pos[0] == "set" && len(pos) != 3):
		return usagef("want config get, or config set max_entries|max_bytes N")
	case name == "inspect" && len(pos) != 1:
		return usagef("want one URL")
	case name == "purge" && len(pos) == 0 && len(c.tags) == 0:
		return usagef("want URLs or -tag T (each as often as needed)")
	case name != "inspect" && name != "config" && name != "purge" && len(pos) > 0:
		return usagef("unexpected argument %q", pos[0])
	}
	// Everything the command was given is checked before Redis is asked.
	var target string
	var limit int64
	switch {
	case name == "inspect":
		if target, err = normalize(pos[0]); err != nil {
			return err
		}
	case name == "config" && pos[0] == "set":
		if limit, err = parseLimit(pos[1], pos[2]); err != nil {
			return err
		}
	case name == "purge":
		for i, raw := range pos {
			if pos[i], err = normalize(raw); err != nil {
				return err
			}
		}
		if slices.Contains(c.tags, "") {
			return usagef("an empty -tag")
		}
	}
	store, closeStore, err := c.open()
	if err != nil {
		return err
	}
	defer closeStore()
	if name != "clear" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, commandTimeout)
		defer cancel()
	}
	cfg, err := store.Config(ctx)
	if errors.Is(err, rediscache.ErrNoCache) {
		return fmt.Errorf("no cache at prefix %q on this Redis (is -prefix right?)", c.prefix)
	}
	if err != nil {
		return err
	}
	switch name {
	case "stats":
		return c.stats(ctx, store, cfg)
	case "inspect":
		return c.inspect(ctx, store, target)
	case "clear":
		return c.clear(ctx, store)
	case "purge":
		return c.purge(ctx, store, pos)
	}
	if pos[0] == "get" {
		return c.configGet(cfg)
	}
	return c.configSet(ctx, store, cfg, pos[1], limit)
}

// parse reads the flags, wherever they stand among the arguments, each
// defaulting to its FLEETCACHE_* variable, and returns the other arguments.
func (c *cli) parse(name string, args []string) ([]string, error) {
	fs := flag.NewFlagSet("fleetcache "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.redisURL, "redis", c.getenv("FLEETCACHE_REDIS"), "Redis `URL` of the cache (FLEETCACHE_REDIS)")
	fs.StringVar(&c.prefix, "prefix", c.getenv("FLEETCACHE_PREFIX"), "the cache's key `prefix` (FLEETCACHE_PREFIX; a sidecar logs its own at start)")
	fs.BoolVar(&c.json, "json", false, "print JSON instead of a table")
	switch name {
	case "clear":
		fs.BoolVar(&c.yes, "yes", false, "do not ask for confirmation")
	case "purge":
		fs.BoolVar(&c.soft, "soft", false, "mark the entries stale (revalidated, still served on error within stale-if-error) instead of removing them")
		fs.Func("tag", "purge every entry with this `tag` (repeat for more)", func(t string) error {
			c.tags = append(c.tags, t)
			return nil
		})
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(c.stderr, "usage: fleetcache %s -redis URL -prefix P [flags]%s\n\n%s.\n\n", name, commandArgs[name], commands[name])
				fs.SetOutput(c.stderr)
				fs.PrintDefaults()
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	switch {
	case c.redisURL == "":
		return nil, usagef("no -redis URL")
	case c.prefix == "":
		return nil, usagef("no -prefix")
	}
	return pos, nil
}

var commandArgs = map[string]string{"inspect": " URL", "config": " get | set max_entries|max_bytes N", "purge": " [-soft] (URL... | -tag T...)"}

// open makes the store without any I/O: the command's first call is its
// first exchange with Redis.
func (c *cli) open() (*rediscache.Store, func(), error) {
	client, err := rediscache.NewClient(c.redisURL)
	if err != nil {
		return nil, nil, usageError{err.Error()}
	}
	store, err := rediscache.New(client, rediscache.Options{Prefix: c.prefix})
	if err != nil {
		client.Close()
		return nil, nil, usageError{err.Error()}
	}
	return store, func() { store.Close(); client.Close() }, nil
}

// normalize turns a URL as an operator types it into the cache's key.
func normalize(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("%q is not an absolute http:// or https:// URL", raw)
	}
	return policy.NormalizeURL(u), nil
}

func parseLimit(field, value string) (int64, error) {
	if field != rediscache.LimitMaxEntries && field != rediscache.LimitMaxBytes {
		return 0, usagef("%q cannot be set: want max_entries or max_bytes (shards is fixed for the life of a prefix)", field)
	}
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil || n < 1 {
		return 0, usagef("%s %q: want a positive integer", field, value)
	}
	return n, nil
}

func (c *cli) emitJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // for shells and jq: a URL's & as it is
	return enc.Encode(v)
}

func (c *cli) table() *tabwriter.Writer {
	return tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
}

type statsJSON struct {
	Entries    int64       `json:"entries"`
	Bytes      int64       `json:"bytes"`
	Evictions  int64       `json:"evictions"`
	Expired    int64       `json:"expired"`
	MaxEntries int64       `json:"max_entries"`
	MaxBytes   int64       `json:"max_bytes"`
	Shards     []shardJSON `json:"shards"`
}

type shardJSON struct {
	Entries   int64 `json:"entries"`
	Bytes     int64 `json:"bytes"`
	Evictions int64 `json:"evictions"`
	Expired   int64 `json:"expired"`
}

func (c *cli) stats(ctx context.Context, store *rediscache.Store, cfg rediscache.Config) error {
	shards, err := store.ShardStats(ctx)
	if err != nil {
		return err
	}
	doc := statsJSON{MaxEntries: cfg.MaxEntries, MaxBytes: cfg.MaxBytes, Shards: make([]shardJSON, len(shards))}
	for i, sh := range shards {
		doc.Entries += sh.Entries
		doc.Bytes += sh.Bytes
		doc.Evictions += sh.Evictions
		doc.Expired += sh.Expired
		doc.Shards[i] = shardJSON(sh)
	}
	if c.json {
		return c.emitJSON(doc)
	}
	w := c.table()
	fmt.Fprintf(w, "entries\t%d\tof %d\t(%s)\n", doc.Entries, doc.MaxEntries, percent(doc.Entries, doc.MaxEntries))
	fmt.Fprintf(w, "bytes\t%d\tof %d\t(%s)\n", doc.Bytes, doc.MaxBytes, percent(doc.Bytes, doc.MaxBytes))
	fmt.Fprintf(w, "evictions\t%d\n", doc.Evictions)
	fmt.Fprintf(w, "expired\t%d\n", doc.Expired)
	w.Flush()
	// Each shard holds 1/shards of the capacity: one much fuller than the
	// others evicts while the cache as a whole has room.
	n := int64(len(shards))
	perEntries, perBytes := max(cfg.MaxEntries/n, 1), max(cfg.MaxBytes/n, 1)
	fmt.Fprintf(c.stdout, "\n%d shards, each holding at most %d entries and %d bytes\n", n, perEntries, perBytes)
	w = c.table()
	fmt.Fprintln(w, "shard\tentries\tbytes\tevictions\texpired\tfull")
	for i, sh := range shards {
		full := max(float64(sh.Entries)/float64(perEntries), float64(sh.Bytes)/float64(perBytes))
		fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%d\t%.1f%%\n", i, sh.Entries, sh.Bytes, sh.Evictions, sh.Expired, 100*full)
	}
	return w.Flush()
}

func percent(part, whole int64) string {
	if whole <= 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(part)*100/float64(whole), 'f', 1, 64) + "%"
}

type variantJSON struct {
	URL        string            `json:"url"`
	Vary       map[string]string `json:"vary,omitempty"`
	Status     int               `json:"status,omitempty"`
	StoredAt   *time.Time        `json:"stored_at,omitempty"`
	AgeSeconds float64           `json:"age_seconds"`
	FreshFor   float64           `json:"freshness_left_seconds"`
	TTLSeconds float64           `json:"ttl_seconds"`
	Size       int64             `json:"size"`
	Tags       []string          `json:"tags,omitempty"`
	SoftPurged *time.Time        `json:"soft_purged_at,omitempty"`
	Header     http.Header       `json:"header,omitempty"`
	Error      string            `json:"error,omitempty"`
}

func (c *cli) inspect(ctx context.Context, store *rediscache.Store, target string) error {
	found, err := store.Inspect(ctx, target)
	if err != nil {
		return err
	}
	p := policy.New(policy.Options{})
	now := c.now()
	out := make([]variantJSON, len(found))
	for i, st := range found {
		v := variantJSON{URL: target, Size: st.Size, TTLSeconds: st.TTL.Round(time.Millisecond).Seconds()}
		if st.Err != nil {
			v.Error = st.Err.Error()
			out[i] = v
			continue
		}
		r := st.Response
		age, fresh := p.Freshness(r, now)
		received := r.ResponseTime.UTC()
		v.Status, v.StoredAt, v.AgeSeconds, v.FreshFor = r.Status, &received, age.Seconds(), fresh.Seconds()
		v.Header, v.Tags = r.Header, r.Tags
		if !r.Purged.IsZero() {
			v.SoftPurged = &r.Purged
		}
		if len(r.Vary) > 0 {
			v.Vary = make(map[string]string, len(r.Vary))
			for j, name := range r.Vary {
				v.Vary[name] = r.VaryValues[j]
			}
		}
		out[i] = v
	}
	// Variants in a stable order: by their Vary values.
	sort.SliceStable(out, func(i, j int) bool { return varyKey(out[i]) < varyKey(out[j]) })
	if c.json {
		return c.emitJSON(out)
	}
	if len(out) == 0 {
		fmt.Fprintf(c.stdout, "nothing stored for %s\n", target)
		return nil
	}
	for i, v := range out {
		if i > 0 {
			fmt.Fprintln(c.stdout)
		}
		fmt.Fprintf(c.stdout, "%s  (variant %d of %d)\n", v.URL, i+1, len(out))
		w := c.table()
		if v.Error != "" {
			fmt.Fprintf(w, "  error\t%s\n", v.Error)
		} else {
			fmt.Fprintf(w, "  vary\t%s\n", varyKey(v))
			fmt.Fprintf(w, "  status\t%d\n", v.Status)
			fmt.Fprintf(w, "  stored\t%s\n", v.StoredAt.Format(time.RFC3339))
			fmt.Fprintf(w, "  age\t%s\n", seconds(v.AgeSeconds))
			if v.FreshFor >= 0 {
				fmt.Fprintf(w, "  fresh\tfor %s more\n", seconds(v.FreshFor))
			} else {
				fmt.Fprintf(w, "  fresh\tno: stale by %s\n", seconds(-v.FreshFor))
			}
		}
		fmt.Fprintf(w, "  ttl\t%s in Redis\n", seconds(v.TTLSeconds))
		fmt.Fprintf(w, "  size\t%d bytes\n", v.Size)
		if len(v.Tags) > 0 {
			fmt.Fprintf(w, "  tags\t%s\n", strings.Join(v.Tags, ", "))
		}
		if v.SoftPurged != nil {
			fmt.Fprintf(w, "  purged\tsoft, at %s\n", v.SoftPurged.Format(time.RFC3339))
		}
		w.Flush()
		if v.Error == "" {
			fmt.Fprintln(c.stdout, "  header:")
			names := make([]string, 0, len(v.Header))
			for k := range v.Header {
				names = append(names, k)
			}
			slices.Sort(names)
			for _, k := range names {
				for _, val := range v.Header[k] {
					fmt.Fprintf(c.stdout, "    %s: %s\n", k, val)
				}
			}
		}
	}
	return nil
}

func varyKey(v variantJSON) string {
	if len(v.Vary) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(v.Vary))
	for k, val := range v.Vary {
		parts = append(parts, k+"="+strconv.Quote(val))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// seconds prints a duration to the second.
func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}

type configJSON struct {
	MaxEntries int64 `json:"max_entries"`
	MaxBytes   int64 `json:"max_bytes"`
	Shards     int   `json:"shards"`
	Version    int64 `json:"version"`
}

func (c *cli) configGet(cfg rediscache.Config) error {
	if c.json {
		return c.emitJSON(configJSON(cfg))
	}
	w := c.table()
	fmt.Fprintf(w, "max_entries\t%d\n", cfg.MaxEntries)
	fmt.Fprintf(w, "max_bytes\t%d\n", cfg.MaxBytes)
	fmt.Fprintf(w, "shards\t%d\n", cfg.Shards)
	fmt.Fprintf(w, "version\t%d\n", cfg.Version)
	return w.Flush()
}

func (c *cli) configSet(ctx context.Context, store *rediscache.Store, before rediscache.Config, field string, n int64) error {
	if err := store.SetLimit(ctx, field, n); err != nil {
		return err
	}
	after, err := store.Config(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.emitJSON(configJSON(after))
	}
	old := before.MaxEntries
	if field == rediscache.LimitMaxBytes {
		old = before.MaxBytes
	}
	fmt.Fprintf(c.stdout, "%s set to %d (was %d); every instance applies it within 5 seconds\n", field, n, old)
	return nil
}

func (c *cli) clear(ctx context.Context, store *rediscache.Store) error {
	st, err := store.Stats(ctx)
	if err != nil {
		return err
	}
	if !c.yes {
		fmt.Fprintf(c.stderr, "Remove all %d entries of prefix %q? Type yes to go on: ", st.Entries, c.prefix)
		line, _ := bufio.NewReader(c.stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return errors.New("not confirmed; nothing removed")
		}
	}
	if err := store.Clear(ctx); err != nil {
		return err
	}
	if c.json {
		return c.emitJSON(map[string]int64{"entries_before": st.Entries})
	}
	fmt.Fprintf(c.stdout, "cleared prefix %q (it held %d entries)\n", c.prefix, st.Entries)
	return nil
}

func (c *cli) purge(ctx context.Context, store *rediscache.Store, keys []string) error {
	res, err := proxy.Purge(ctx, store, keys, c.tags, c.soft)
	if err != nil {
		return err
	}
	if c.json {
		return c.emitJSON(res)
	}
	did := "removed"
	if c.soft {
		did = "marked stale"
	}
	w := c.table()
	for _, k := range keys {
		fmt.Fprintf(w, "url\t%s\t%d %s\n", k, res.URLs[k], did)
	}
	for _, t := range c.tags {
		fmt.Fprintf(w, "tag\t%s\t%d %s\n", t, res.Tags[t], did)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%d entries %s in prefix %q\n", res.Entries, did, c.prefix)
	return err
}
