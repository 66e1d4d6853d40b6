package auth

import (
	"fmt"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wspush/wspush/internal/testsupport"
)

// TestVerifySharesGrants: tokens of different users granting the same
// patterns, in any order, share one grants value; other patterns, patterns
// moved from topics to publish, and names that only concatenate alike do
// not; a token granting nothing holds none.
func TestVerifySharesGrants(t *testing.T) {
	k := newTestKeys(t)
	v := newVerifier(t, Config{HMACSecret: k.secret})
	verify := func(sub string, kv ...any) *Claims {
		t.Helper()
		c, err := v.Verify(testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(claims(sub), kv...)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := verify("1", "topics", []string{"news.*", "ticker"}, "publish", []string{"chat.*"})
	cases := []struct {
		name  string
		kv    []any
		share bool
	}{
		{"same lists", []any{"topics", []string{"news.*", "ticker"}, "publish", []string{"chat.*"}}, true},
		{"another order, a duplicate", []any{"topics", []string{"ticker", "news.*", "ticker"}, "publish", []string{"chat.*"}}, true},
		{"a covered prefix", []any{"topics", []string{"news.*", "news.uk.*", "ticker"}, "publish", []string{"chat.*"}}, true},
		{"another topic", []any{"topics", []string{"news.*", "tickers"}, "publish", []string{"chat.*"}}, false},
		{"no publish", []any{"topics", []string{"news.*", "ticker"}}, false},
		{"publish as topics", []any{"topics", []string{"news.*", "ticker", "chat.*"}}, false},
		{"names that concatenate alike", []any{"topics", []string{"news.*", "tick", "er"}, "publish", []string{"chat.*"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := verify("2", tc.kv...)
			if got := c.grants == base.grants; got != tc.share {
				t.Fatalf("shared %v, want %v (%v / %v)", got, tc.share, c.Subscribe(), c.Publish())
			}
			if c.Subject != "2" {
				t.Fatalf("subject %q", c.Subject)
			}
		})
	}
	if c := verify("3"); c.grants != nil || c.CheckSubscribe("news.a") == nil {
		t.Fatalf("a token granting nothing: grants %v", c.grants)
	}
	if c := verify("4", "topics", []string{"news.*"}); c.CheckSubscribe("news.a") != nil || c.CheckSubscribe("other") == nil || c.CheckPublish("news.a") == nil {
		t.Fatal("shared grants do not check as the token's own")
	}
}

// TestGrantsTableBounded: tokens that each grant their own patterns do not
// grow the table past maxGrantsShared.
func TestGrantsTableBounded(t *testing.T) {
	var table grantsTable
	for i := range maxGrantsShared + 10 {
		p, err := CompilePatterns([]string{fmt.Sprintf("user.%d.*", i)})
		if err != nil {
			t.Fatal(err)
		}
		if table.share(grants{subscribe: p}) == nil {
			t.Fatal("no grants")
		}
	}
	if n := len(table.shared); n > maxGrantsShared {
		t.Fatalf("%d grants kept, over %d", n, maxGrantsShared)
	}
}

// TestGrantsShareAllocs: finding grants already shared allocates nothing.
func TestGrantsShareAllocs(t *testing.T) {
	var table grantsTable
	p, err := CompilePatterns([]string{"news.*", "ticker"})
	if err != nil {
		t.Fatal(err)
	}
	g := grants{subscribe: p}
	table.share(g)
	if n := testing.AllocsPerRun(100, func() { table.share(g) }); n != 0 {
		t.Fatalf("%v allocations per lookup, want 0", n)
	}
}
