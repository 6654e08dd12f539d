// Package rulesfile reads per-route rules (package rules) from a YAML
// file, the form the sidecar's -rules flag takes:
//
//	rules:
//	  - host: api.example.com        # or *.example.com; omitted: every host
//	    path: /products/*            # * within a segment, ** across; omitted: every path
//	    max_ttl: 5m                  # cap the freshness lifetime
//	    min_ttl: 30s                 # floor it
//	    stale_while_revalidate: 1m   # windows for responses that name none
//	    stale_if_error: 1h
//	    ignore_query: [utm_*, fbclid]
//	    sort_query: true
//	    ignore_vary: [User-Agent]
//	    normalize:
//	      Accept-Encoding: [br, gzip]
//	  - path: /account/**
//	    no_store: true
//
// The first rule that matches a URL applies. Every error names the file and
// the line. It is a package of its own so that the transport does not
// depend on a YAML parser.
package rulesfile

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fleetcache/fleetcache/rules"
)

// Error is a problem with a rules file, at a line of it.
type Error struct {
	File string
	Line int // 1-based; 0 when the problem is the file as a whole
	Err  error
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Err.Error()
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// maxFileBytes bounds a rules file: a few hundred rules fit in far less.
const maxFileBytes = 1 << 20

// Load reads the rules file at path.
func Load(path string) (*rules.Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse reads rules from data, a file named name (for messages).
func Parse(name string, data []byte) (*rules.Set, error) {
	if len(data) > maxFileBytes {
		return nil, &Error{File: name, Err: fmt.Errorf("larger than %d bytes", maxFileBytes)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(name, err)
	}
	p := parser{file: name}
	rs, err := p.rules(&doc)
	if err != nil {
		return nil, err
	}
	set, err := rules.New(rs...)
	if err != nil {
		return nil, &Error{File: name, Err: err} // each rule was checked at its line: not expected
	}
	return set, nil
}

type parser struct{ file string }

func (p *parser) errorf(n *yaml.Node, format string, args ...any) error {
	return &Error{File: p.file, Line: n.Line, Err: fmt.Errorf(format, args...)}
}

func (p *parser) rules(doc *yaml.Node) ([]rules.Rule, error) {
	if doc.Kind == 0 {
		return nil, nil // empty file: no rules
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, p.errorf(root, "want a mapping with a rules list")
	}
	var list *yaml.Node
	err := p.eachField(root, func(key, val *yaml.Node) error {
		if key.Value != "rules" {
			return p.errorf(key, "unknown key %q (want rules)", key.Value)
		}
		list = val
		return nil
	})
	if err != nil || list == nil {
		return nil, err
	}
	if list.ShortTag() == "!!null" {
		return nil, nil // "rules:" with nothing under it
	}
	if list.Kind != yaml.SequenceNode {
		return nil, p.errorf(list, "rules: want a list of rules")
	}
	out := make([]rules.Rule, 0, len(list.Content))
	for _, item := range list.Content {
		r, err := p.rule(item)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// eachField calls fn with each key and value of a mapping, refusing
// aliases, non-string keys and keys given twice.
func (p *parser) eachField(m *yaml.Node, fn func(key, val *yaml.Node) error) error {
	seen := make(map[string]bool, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, val := m.Content[i], m.Content[i+1]
		if key.Kind != yaml.ScalarNode || val.Kind == yaml.AliasNode {
			return p.errorf(key, "want a plain key and value (no aliases)")
		}
		if seen[key.Value] {
			return p.errorf(key, "%s given twice", key.Value)
		}
		seen[key.Value] = true
		if err := fn(key, val); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) rule(n *yaml.Node) (rules.Rule, error) {
	var r rules.Rule
	if n.Kind != yaml.MappingNode {
		return r, p.errorf(n, "a rule is a mapping of settings")
	}
	err := p.eachField(n, func(key, val *yaml.Node) error {
		var err error
		switch key.Value {
		case "host":
			r.Host, err = p.str(key, val)
		case "path":
			r.Path, err = p.str(key, val)
		case "no_store":
			r.NoStore, err = p.boolean(key, val)
		case "sort_query":
			r.SortQuery, err = p.boolean(key, val)
		case "min_ttl":
			r.MinTTL, err = p.duration(key, val)
		case "max_ttl":
			r.MaxTTL, err = p.duration(key, val)
		case "stale_while_revalidate":
			r.StaleWhileRevalidate, err = p.duration(key, val)
		case "stale_if_error":
			r.StaleIfError, err = p.duration(key, val)
		case "ignore_query":
			r.IgnoreQuery, err = p.strs(key, val)
		case "ignore_vary":
			r.IgnoreVary, err = p.strs(key, val)
		case "normalize":
			r.Normalize, err = p.normalize(key, val)
		default:
			err = p.errorf(key, "unknown setting %q (want one of %s)", key.Value, strings.Join(settings, ", "))
		}
		return err
	})
	if err != nil {
		return r, err
	}
	if err := r.Check(); err != nil {
		return r, &Error{File: p.file, Line: n.Line, Err: err}
	}
	return r, nil
}

var settings = []string{"host", "path", "no_store", "min_ttl", "max_ttl", "stale_while_revalidate", "stale_if_error",
	"ignore_query", "sort_query", "ignore_vary", "normalize"}

func (p *parser) str(key, val *yaml.Node) (string, error) {
	if val.Kind != yaml.ScalarNode || val.ShortTag() == "!!null" {
		return "", p.errorf(val, "%s: want a string", key.Value)
	}
	return val.Value, nil
}

func (p *parser) boolean(key, val *yaml.Node) (bool, error) {
	var b bool
	if val.Kind != yaml.ScalarNode || val.ShortTag() != "!!bool" || val.Decode(&b) != nil {
		return false, p.errorf(val, "%s: want true or false", key.Value)
	}
	return b, nil
}

func (p *parser) duration(key, val *yaml.Node) (time.Duration, error) {
	if val.Kind != yaml.ScalarNode || val.ShortTag() != "!!str" {
		return 0, p.errorf(val, "%s: want a duration such as 90s, 5m or 1h", key.Value)
	}
	d, err := time.ParseDuration(val.Value)
	if err != nil {
		return 0, p.errorf(val, "%s: %q is not a duration such as 90s, 5m or 1h", key.Value, val.Value)
	}
	if d < 0 {
		return 0, p.errorf(val, "%s is negative", key.Value)
	}
	return d, nil
}

func (p *parser) strs(key, val *yaml.Node) ([]string, error) {
	if val.Kind != yaml.SequenceNode {
		return nil, p.errorf(val, "%s: want a list", key.Value)
	}
	out := make([]string, 0, len(val.Content))
	for _, item := range val.Content {
		s, err := p.str(key, item)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (p *parser) normalize(key, val *yaml.Node) (map[string][]string, error) {
	if val.Kind != yaml.MappingNode {
		return nil, p.errorf(val, "%s: want a mapping of field names to lists of values", key.Value)
	}
	out := make(map[string][]string, len(val.Content)/2)
	err := p.eachField(val, func(field, values *yaml.Node) error {
		vs, err := p.strs(field, values)
		out[field.Value] = vs
		return err
	})
	return out, err
}

// syntaxError turns yaml's "yaml: line 3: did not find ..." into an Error
// at that line.
func syntaxError(name string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, after
			}
		}
	}
	return &Error{File: name, Line: line, Err: errors.New(msg)}
}
