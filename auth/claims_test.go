package auth

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wspush/wspush/internal/testsupport"
)

// TestPersonalTopics: a topic holding '#' belongs to the user after its
// first '#', whatever the patterns say.
func TestPersonalTopics(t *testing.T) {
	k := newTestKeys(t)
	v := newVerifier(t, Config{HMACSecret: k.secret})
	verify := func(c jwt.MapClaims) *Claims {
		t.Helper()
		got, err := v.Verify(testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", c))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	u42 := verify(claims("42"))                                                                          // no patterns at all
	u4 := verify(testsupport.WithClaims(claims("4"), "topics", []string{"*"}, "publish", []string{"*"})) // everything
	hashy := verify(claims("a#b"))
	tests := []struct {
		name  string
		c     *Claims
		topic string
		sub   Reason
		pub   Reason
	}{
		{"own inbox, no pattern", u42, "inbox#42", "", ReasonForbidden},
		{"own topic of any name", u42, "x.y#42", "", ReasonForbidden},
		{"other user's inbox", u42, "inbox#43", ReasonNotOwner, ReasonNotOwner},
		{"suffix of the sub is not the sub", u4, "inbox#42", ReasonNotOwner, ReasonNotOwner},
		{"star does not open personal topics", u4, "inbox#42", ReasonNotOwner, ReasonNotOwner},
		{"star with own personal topic", u4, "inbox#4", "", ""},
		{"owner is the rest after the first #", hashy, "inbox#a#b", "", ReasonForbidden},
		{"last # is not the owner", u42, "x#y#42", ReasonNotOwner, ReasonNotOwner},
		{"empty owner belongs to nobody", u4, "inbox#", ReasonNotOwner, ReasonNotOwner},
		{"public topic without pattern", u42, "news", ReasonForbidden, ReasonForbidden},
		{"public topic with star", u4, "news", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReasonOf(tt.c.CheckSubscribe(tt.topic)); got != tt.sub {
				t.Errorf("subscribe: %q, want %q", got, tt.sub)
			}
			if got := ReasonOf(tt.c.CheckPublish(tt.topic)); got != tt.pub {
				t.Errorf("publish: %q, want %q", got, tt.pub)
			}
		})
	}
}

func TestCheckRefresh(t *testing.T) {
	k := newTestKeys(t)
	v := newVerifier(t, Config{HMACSecret: k.secret, AnonymousTopics: []string{"public"}})
	verify := func(sub string) *Claims {
		t.Helper()
		got, err := v.Verify(testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", claims(sub)))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	anon, err := v.Anonymous()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		old, next *Claims
		want      Reason
	}{
		{"same sub", verify("42"), verify("42"), ""},
		{"other sub", verify("42"), verify("43"), ReasonSubMismatch},
		{"anonymous to user", anon, verify("42"), ReasonSubMismatch},
		{"user to anonymous", verify("42"), anon, ReasonSubMismatch},
	}
	for _, tt := range tests {
		if got := ReasonOf(tt.old.CheckRefresh(tt.next)); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestReasons(t *testing.T) {
	seen := map[Reason]bool{}
	for _, r := range Reasons() {
		if r == "" || seen[r] {
			t.Fatalf("reason %q empty or listed twice", r)
		}
		seen[r] = true
	}
	if ReasonForbidden.Status() != 403 || ReasonNotOwner.Status() != 403 || ReasonExpired.Status() != 401 {
		t.Fatal("statuses")
	}
	if ReasonOf(nil) != "" || ReasonOf(jwt.ErrTokenExpired) != "" {
		t.Fatal("ReasonOf of a non-refusal")
	}
}
