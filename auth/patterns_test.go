package auth

import (
	"slices"
	"testing"
)

func TestPatternsMatch(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		yes, no  []string
	}{
		{"empty", nil, nil, []string{"a", "*"}},
		{"exact", []string{"ticker", "news"}, []string{"ticker", "news"}, []string{"tick", "tickers", "news.a", ""}},
		{"prefix", []string{"news.*"}, []string{"news.", "news.sport", "news.sport.uk"}, []string{"news", "new", "sport.news.a"}},
		{"all", []string{"*"}, []string{"a", "news.sport.uk", "x#1"}, nil},
		{"all among others", []string{"a", "b.*", "*"}, []string{"zzz"}, nil},
		{"prefix without separator", []string{"user*"}, []string{"user", "users", "user.42"}, []string{"use"}},
		{"mixed", []string{"a.*", "b", "a.b.*", "c.*", "b"}, []string{"a.x", "a.b.c", "b", "c.d"}, []string{"bb", "c", "d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CompilePatterns(slices.Clone(tt.patterns))
			if err != nil {
				t.Fatal(err)
			}
			for _, topic := range tt.yes {
				if !p.Match(topic) {
					t.Errorf("%v does not match %q", tt.patterns, topic)
				}
			}
			for _, topic := range tt.no {
				if p.Match(topic) {
					t.Errorf("%v matches %q", tt.patterns, topic)
				}
			}
			if p.Empty() != (len(tt.patterns) == 0) {
				t.Errorf("Empty() = %v", p.Empty())
			}
		})
	}
}

// TestPatternsCompiled checks the compiled form: exact names deduplicated
// and sorted, covered prefixes dropped.
func TestPatternsCompiled(t *testing.T) {
	p, err := CompilePatterns([]string{"news.sport.*", "z", "news.*", "a", "news.a*", "z", "nz.*"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.exact, []string{"a", "z"}) || !slices.Equal(p.prefixes, []string{"news.", "nz."}) {
		t.Fatalf("exact %q prefixes %q", p.exact, p.prefixes)
	}
	if got := p.String(); got != "a,z,news.*,nz.*" {
		t.Fatalf("String() = %q", got)
	}
}

func TestPatternsInvalid(t *testing.T) {
	long := make([]byte, maxPatternLen+1)
	for i := range long {
		long[i] = 'a'
	}
	for _, bad := range [][]string{{""}, {"a*b"}, {"**"}, {"news.*.uk"}, {"ok", string(long)}} {
		if _, err := CompilePatterns(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func BenchmarkPatternsMatch(b *testing.B) {
	p, err := CompilePatterns([]string{"ticker", "news.*", "chat.room.*", "user.42", "status", "prices.*"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !p.Match("prices.eur.usd") || p.Match("secret") {
			b.Fatal("wrong match")
		}
	}
}
