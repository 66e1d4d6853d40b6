package testsupport

import (
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// NATSSubs counts the subscriptions ns holds, over all its connections, to
// exactly subject: for the cluster tests, how many nodes listen for a
// topic's messages.
func NATSSubs(tb testing.TB, ns *natsserver.Server, subject string) int {
	tb.Helper()
	cz, err := ns.Connz(&natsserver.ConnzOptions{Subscriptions: true})
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, c := range cz.Conns {
		for _, s := range c.Subs {
			if s == subject {
				n++
			}
		}
	}
	return n
}
