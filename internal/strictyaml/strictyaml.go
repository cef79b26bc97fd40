// Package strictyaml is the strict reading of the project's YAML files
// (experiments, testbeds): every key known, every value of the expected kind
// and range, and every problem of a file reported at once, each with its line
// and key path and what would be allowed, instead of the first one alone or a
// silent default. A file's own parser embeds Parser, walks the yaml.Node tree
// with its helpers, and returns Parser.Err.
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong in a file.
type Problem struct {
	// Line is the 1-based line in the file (0 when the problem has no line).
	Line int
	// Path is the key concerned, as a path: "workload.rates[2]",
	// "stacks[1].name"; empty for the top level.
	Path string
	// Msg says what is wrong and what is allowed.
	Msg string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

// Error lists every problem found in a file.
type Error struct {
	// File is the file name the problems refer to.
	File string
	// Problems are sorted by line.
	Problems []Problem
}

// Error prints one problem per line, as "file:line: path: message".
func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Parser collects problems while a file's parser walks its tree.
type Parser struct {
	Problems []Problem
}

// Err returns the problems as an *Error for file, sorted by line, or nil.
func (p *Parser) Err(file string) error {
	if len(p.Problems) == 0 {
		return nil
	}
	sort.SliceStable(p.Problems, func(i, j int) bool { return p.Problems[i].Line < p.Problems[j].Line })
	return &Error{File: file, Problems: p.Problems}
}

// Add records a problem at n's line (0 for a nil n).
func (p *Parser) Add(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.Problems = append(p.Problems, Problem{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// AddErr folds an error that may start with "line N: " (as yaml's errors
// do) into a problem; without a line it uses n's.
func (p *Parser) AddErr(n *yaml.Node, path string, err error) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		// Each entry of a yaml.TypeError carries its own line; keep the
		// context that wrapped it ("options of stack "null"").
		prefix := strings.TrimSuffix(err.Error(), te.Error())
		for _, e := range te.Errors {
			p.AddLine(n, path, prefix, e)
		}
		return
	}
	p.AddLine(n, path, "", err.Error())
}

// AddLine adds prefix+msg as a problem, taking the line from a "line N: " at
// the start of msg, else from n.
func (p *Parser) AddLine(n *yaml.Node, path, prefix, msg string) {
	msg = strings.TrimSpace(msg)
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.Problems = append(p.Problems, Problem{Line: line, Path: path, Msg: prefix + m[2]})
		return
	}
	p.Add(n, path, "%s%s", prefix, strings.TrimPrefix(msg, "yaml: "))
}

// Document parses data as exactly one YAML document and returns its root
// node (aliases resolved), or nil when there is none to walk. empty is the
// problem for an empty file (what the file must hold), kind names the file in
// the problem of a second document ("an experiment file").
func (p *Parser) Document(data []byte, empty, kind string) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.Add(nil, "", "%s", empty)
		} else {
			p.AddLine(nil, "", "invalid YAML: ", err.Error())
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		p.Add(&extra, "", "a second YAML document: %s holds exactly one", kind)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			p.Add(nil, "", "%s", empty)
			return nil
		}
		root = root.Content[0]
	}
	return Resolve(root)
}

// Resolve follows aliases (*anchor) to the node they name.
func Resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// Mapping checks that n is a mapping whose keys are all allowed and distinct,
// and returns its values by key.
func (p *Parser) Mapping(n *yaml.Node, path string, allowed []string) (map[string]*yaml.Node, bool) {
	n = Resolve(n)
	if n.Kind != yaml.MappingNode {
		p.Add(n, path, "expected a mapping (keys: %s), got %s", strings.Join(allowed, ", "), Describe(n))
		return nil, false
	}
	m := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], Resolve(n.Content[i+1])
		if !slices.Contains(allowed, k.Value) {
			p.Add(k, path, "unknown key %q (allowed: %s)", k.Value, strings.Join(allowed, ", "))
			continue
		}
		if prev, dup := m[k.Value]; dup {
			p.Add(k, path, "duplicate key %q (first given at line %d)", k.Value, prev.Line)
			continue
		}
		m[k.Value] = v
	}
	return m, true
}

// Sequence checks that n is a list and returns its items (aliases resolved).
func (p *Parser) Sequence(n *yaml.Node, path string) ([]*yaml.Node, bool) {
	if n.Kind != yaml.SequenceNode {
		p.Add(n, path, "expected a list, got %s", Describe(n))
		return nil, false
	}
	seq := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		seq[i] = Resolve(c)
	}
	return seq, true
}

// Str reads a scalar as a string; null reads as "".
func (p *Parser) Str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.Add(n, path, "expected a string, got %s", Describe(n))
		return "", false
	}
	if n.ShortTag() == "!!null" {
		return "", true
	}
	return n.Value, true
}

// Enum sets *dst to n's value if it is one of allowed; nil n keeps the default.
func (p *Parser) Enum(n *yaml.Node, path string, allowed []string, dst *string) bool {
	if n == nil {
		return true
	}
	list := strings.Join(allowed, ", ")
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		p.Add(n, path, "expected one of %s, got %s", list, Describe(n))
		return false
	}
	if !slices.Contains(allowed, n.Value) {
		p.Add(n, path, "%q is not allowed (allowed: %s)", n.Value, list)
		return false
	}
	*dst = n.Value
	return true
}

// Integer reads an integer scalar.
func (p *Parser) Integer(n *yaml.Node, path string) (int64, bool) {
	var v int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		p.Add(n, path, "expected an integer, got %s", Describe(n))
		return 0, false
	}
	return v, true
}

// Number reads an integer or float scalar.
func (p *Parser) Number(n *yaml.Node, path string) (float64, bool) {
	var v float64
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&v) != nil {
		p.Add(n, path, "expected a number, got %s", Describe(n))
		return 0, false
	}
	return v, true
}

// Describe names a node's value for "got ..." in messages.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!str":
			return strconv.Quote(n.Value)
		default:
			return n.Value
		}
	}
	return "an unexpected YAML node"
}

// Unique remembers where each value of a list's field was first given, so a
// value given twice is reported with the line of its first use (node names,
// addresses, figure ids).
type Unique[K comparable] map[K]int

// Seen reports whether v was given before (at the line it returns) and, if
// not, records it at n's line.
func (u Unique[K]) Seen(v K, n *yaml.Node) (firstLine int, dup bool) {
	if prev, ok := u[v]; ok {
		return prev, true
	}
	u[v] = n.Line
	return 0, false
}
