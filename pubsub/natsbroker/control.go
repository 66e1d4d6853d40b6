package natsbroker

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// controlPrefix is where the nodes send each other the server API's
// commands (disconnect a user, end a user's subscription): core NATS, not the
// stream, since a command is for the nodes up now and is not replayed.
const controlPrefix = "wspush.control."

// SendControl sends a command of the given kind (one subject token:
// letters, digits, '-' or '_') to every node, this one included, and waits
// one round trip so that the NATS server has it. It fails, wrapping
// ErrUnavailable, while NATS is not reachable; the caller says the other
// nodes were not told.
func (b *Broker) SendControl(kind string, data []byte) error {
	if !plainToken(kind) {
		return fmt.Errorf("natsbroker: control kind %q is not a plain subject token", kind)
	}
	if st := b.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("%w: NATS connection %s", ErrUnavailable, st)
	}
	if err := b.nc.Publish(controlPrefix+kind, data); err != nil {
		return fmt.Errorf("%w: control %s: %w", ErrUnavailable, kind, err)
	}
	if err := b.nc.FlushTimeout(b.cfg.FlushTimeout); err != nil {
		return fmt.Errorf("%w: control %s: %w", ErrUnavailable, kind, err)
	}
	return nil
}

// OnControl calls handle with every command sent with SendControl by any
// node, this one included, on a goroutine of the NATS connection, one at a
// time. Call it once, at startup; the subscription follows reconnects.
func (b *Broker) OnControl(handle func(kind string, data []byte)) error {
	_, err := b.nc.Subscribe(controlPrefix+"*", func(m *nats.Msg) {
		handle(strings.TrimPrefix(m.Subject, controlPrefix), m.Data)
	})
	if err != nil {
		return fmt.Errorf("natsbroker: control subscription: %w", err)
	}
	return nil
}

func plainToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) {
			return false
		}
	}
	return true
}
