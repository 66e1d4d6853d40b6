package deploy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// selector is a metric a PromQL expression reads: its name and the label
// matchers written in braces after it.
type selector struct {
	name     string
	matchers []matcher
}

// matcher is one label matcher: label op "value".
type matcher struct {
	label, op, value string
}

// promqlWords are the identifiers that are not metric names when they are
// not followed by "(": binary operators, modifiers, number literals and the
// aggregation operators, which may be followed by a grouping clause instead.
var promqlWords = map[string]bool{
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
	"inf": true, "nan": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// labelListWords are followed by a parenthesized list of label names.
var labelListWords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// selectors returns the metric selectors of a PromQL expression, Grafana
// variables ($job, ${x}, $__rate_interval) allowed. It is a small lexer, not
// a parser: an identifier is a metric name unless it is followed by "(" (a
// function or aggregation), is an operator or keyword, or is a label name in
// braces or in a grouping list. Strings, durations and numbers are skipped.
// Syntax itself is checked by promtool (TestDashboardQueriesParse).
func selectors(expr string) ([]selector, error) {
	l := lexer{s: expr}
	var out []selector
	depth := 0
	for {
		l.space()
		if l.done() {
			break
		}
		c := l.s[l.i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			if _, err := l.str(); err != nil {
				return nil, err
			}
		case c == '#':
			for !l.done() && l.s[l.i] != '\n' {
				l.i++
			}
		case c == '$':
			l.variable()
		case c == '[':
			if err := l.skipTo(']'); err != nil {
				return nil, err
			}
		case c == '{':
			return nil, fmt.Errorf("offset %d: selector without a metric name", l.i)
		case c == '(':
			depth++
			l.i++
		case c == ')':
			if depth--; depth < 0 {
				return nil, fmt.Errorf("offset %d: unbalanced )", l.i)
			}
			l.i++
		case isDigit(c) || (c == '.' && l.i+1 < len(l.s) && isDigit(l.s[l.i+1])):
			for !l.done() && (isIdent(l.s[l.i]) || l.s[l.i] == '.') {
				l.i++
			}
		case isIdentStart(c):
			word := l.ident()
			l.space()
			next := l.peek()
			lower := strings.ToLower(word)
			switch {
			case labelListWords[lower] && next == '(':
				if err := l.skipTo(')'); err != nil {
					return nil, err
				}
			case next == '(' || promqlWords[lower]:
				// a function, an aggregation or a keyword
			default:
				sel := selector{name: word}
				if next == '{' {
					ms, err := l.matchers()
					if err != nil {
						return nil, fmt.Errorf("%s: %w", word, err)
					}
					sel.matchers = ms
				}
				out = append(out, sel)
			}
		default:
			l.i++ // an operator or a comma
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced (")
	}
	return out, nil
}

// lexer walks a PromQL expression byte by byte.
type lexer struct {
	s string
	i int
}

func (l *lexer) done() bool { return l.i >= len(l.s) }

func (l *lexer) peek() byte {
	if l.done() {
		return 0
	}
	return l.s[l.i]
}

func (l *lexer) space() {
	for !l.done() && strings.IndexByte(" \t\r\n", l.s[l.i]) >= 0 {
		l.i++
	}
}

func (l *lexer) ident() string {
	start := l.i
	for !l.done() && isIdent(l.s[l.i]) {
		l.i++
	}
	return l.s[start:l.i]
}

// variable skips a Grafana variable: $name or ${name...}.
func (l *lexer) variable() {
	l.i++
	if l.peek() == '{' {
		for !l.done() && l.s[l.i] != '}' {
			l.i++
		}
		l.i++
		return
	}
	l.ident()
}

// str reads a quoted string and returns its contents, escapes undone.
func (l *lexer) str() (string, error) {
	q, start := l.s[l.i], l.i
	l.i++
	var b strings.Builder
	for !l.done() {
		c := l.s[l.i]
		l.i++
		switch {
		case c == q:
			return b.String(), nil
		case c == '\\' && q != '`' && !l.done():
			b.WriteByte(l.s[l.i])
			l.i++
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("offset %d: unterminated string", start)
}

// skipTo skips past the closing byte matching the opening one at l.i,
// strings included.
func (l *lexer) skipTo(closing byte) error {
	start := l.i
	l.i++
	for !l.done() {
		switch c := l.s[l.i]; {
		case c == closing:
			l.i++
			return nil
		case c == '"' || c == '\'' || c == '`':
			if _, err := l.str(); err != nil {
				return err
			}
		default:
			l.i++
		}
	}
	return fmt.Errorf("offset %d: no closing %c", start, closing)
}

// matchers reads {label op "value", ...} at l.i.
func (l *lexer) matchers() ([]matcher, error) {
	l.i++ // {
	var ms []matcher
	for {
		l.space()
		switch l.peek() {
		case '}':
			l.i++
			return ms, nil
		case ',':
			l.i++
			continue
		case 0:
			return nil, fmt.Errorf("no closing }")
		}
		if !isIdentStart(l.peek()) {
			return nil, fmt.Errorf("offset %d: label name expected", l.i)
		}
		m := matcher{label: l.ident()}
		l.space()
		for !l.done() && strings.IndexByte("=!~", l.s[l.i]) >= 0 {
			m.op += string(l.s[l.i])
			l.i++
		}
		switch m.op {
		case "=", "!=", "=~", "!~":
		default:
			return nil, fmt.Errorf("label %s: bad operator %q", m.label, m.op)
		}
		l.space()
		if c := l.peek(); c != '"' && c != '\'' && c != '`' {
			return nil, fmt.Errorf("label %s: quoted value expected", m.label)
		}
		v, err := l.str()
		if err != nil {
			return nil, err
		}
		m.value = v
		ms = append(ms, m)
	}
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdent(c byte) bool      { return isIdentStart(c) || isDigit(c) }

func TestSelectors(t *testing.T) {
	sel := func(name string, ms ...matcher) selector { return selector{name: name, matchers: ms} }
	tests := []struct {
		expr string
		want []selector
	}{
		{`up`, []selector{sel("up")}},
		{`rate(foo_total[5m])`, []selector{sel("foo_total")}},
		{`sum by (instance, reason) (rate(x_total{job=~"$job",reason!="a}b"}[$__rate_interval])) > 0`,
			[]selector{sel("x_total", matcher{"job", "=~", "$job"}, matcher{"reason", "!=", "a}b"})}},
		{`sum(a) by (le) / on(instance) group_left(version) b`, []selector{sel("a"), sel("b")}},
		{`a / ignoring (x) group_right b`, []selector{sel("a"), sel("b")}},
		{`histogram_quantile(0.99, sum without (pod) (h_bucket))`, []selector{sel("h_bucket")}},
		{`min_over_time(go_goroutines[15m] offset 1h) - min_over_time(go_goroutines[15m])`,
			[]selector{sel("go_goroutines"), sel("go_goroutines")}},
		{`max_over_time(rate(x[5m])[1h:1m])`, []selector{sel("x")}},
		{"a and b or c unless d\n# comment mentions not_a_metric\n", []selector{sel("a"), sel("b"), sel("c"), sel("d")}},
		{`1e3 * x + Inf - NaN + 0x1f + .5`, []selector{sel("x")}},
		{`count_values("value", build_info)`, []selector{sel("build_info")}},
		{`label_replace(up, "dst", "$1", "src", "(.*)")`, []selector{sel("up")}},
		{`SUM BY (x) (y) > bool 1`, []selector{sel("y")}},
		{`job:rate5m{le='1\'2'}`, []selector{sel("job:rate5m", matcher{"le", "=", "1'2"})}},
		{`topk(5, x{a="1" , b =~ "2",})`, []selector{sel("x", matcher{"a", "=", "1"}, matcher{"b", "=~", "2"})}},
		{`sum(rate(x[${__rate_interval}])) @ end()`, []selector{sel("x")}},
		{`vector(1)`, nil},
	}
	for _, tc := range tests {
		got, err := selectors(tc.expr)
		if err != nil {
			t.Errorf("selectors(%q): %v", tc.expr, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("selectors(%q)\n got %+v\nwant %+v", tc.expr, got, tc.want)
		}
	}
}

func TestSelectorsErrors(t *testing.T) {
	for _, expr := range []string{
		`{__name__="x"}`,
		`x{a="b}`,
		`rate(x[5m]`,
		`x)`,
		`x{a=1}`,
		`x{a<"1"}`,
		`rate(x[5m)`,
	} {
		if got, err := selectors(expr); err == nil {
			t.Errorf("selectors(%q) = %+v, want an error", expr, got)
		}
	}
}
