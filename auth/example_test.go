package auth_test

import (
	"fmt"
	"log"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wspush/wspush/auth"
)

// A backend mints a connection token with golang-jwt (docs/auth.md); wspush
// verifies it and checks subscriptions against it.
func Example_mintToken() {
	secret := []byte("change-me-to-32-random-bytes-!!!") // what -auth-hmac-secret-file holds

	// Backend side: mint a token for user 42, valid 15 minutes.
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":     "42",
		"exp":     time.Now().Add(15 * time.Minute).Unix(),
		"aud":     "wspush",
		"topics":  []string{"news.*", "ticker"},
		"publish": []string{"chat.42"},
	}).SignedString(secret)
	if err != nil {
		log.Fatal(err)
	}

	// wspush side.
	v, err := auth.New(auth.Config{HMACSecret: secret, Audience: "wspush"})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	claims, err := v.Verify(token)
	if err != nil {
		log.Fatal(err)
	}
	for _, topic := range []string{"news.sport", "ticker", "inbox#42", "inbox#7", "weather"} {
		verdict := "allowed"
		if err := claims.CheckSubscribe(topic); err != nil {
			verdict = string(auth.ReasonOf(err))
		}
		fmt.Printf("%s: %s\n", topic, verdict)
	}
	// Output:
	// news.sport: allowed
	// ticker: allowed
	// inbox#42: allowed
	// inbox#7: not_owner
	// weather: forbidden
}
