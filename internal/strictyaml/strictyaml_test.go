package strictyaml

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Every problem of a document is reported, sorted by line, each with its
// path and what is allowed.
func TestProblemsAllReportedInLineOrder(t *testing.T) {
	var doc yaml.Node
	src := "b: [1, x]\na: 3\nc: {d: 1}\nzz: 1\n"
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	var p Parser
	m, ok := p.Mapping(doc.Content[0], "", []string{"a", "b", "c"})
	if !ok {
		t.Fatal("not a mapping")
	}
	seq, _ := p.Sequence(m["b"], "b")
	for _, n := range seq {
		p.Integer(n, "b[]")
	}
	var v string
	p.Enum(m["a"], "a", []string{"1", "2"}, &v)
	p.Mapping(m["c"], "c", []string{"e"})
	err := p.Err("f.yaml")
	want := []string{
		`f.yaml:1: b[]: expected an integer, got "x"`,
		`f.yaml:2: a: "3" is not allowed (allowed: 1, 2)`,
		`f.yaml:3: c: unknown key "d" (allowed: e)`,
		`f.yaml:4: unknown key "zz" (allowed: a, b, c)`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
	if (&Parser{}).Err("x") != nil {
		t.Fatal("no problems gave an error")
	}
}
