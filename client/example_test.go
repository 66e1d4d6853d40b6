package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wspush/wspush/client"
	"github.com/wspush/wspush/server"
)

// A backend subscribes to a topic, is told whether a resubscription after a
// reconnect lost anything, and publishes.
func Example() {
	// A wspush to talk to (in production: its public address).
	srv, err := server.New(server.Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", ClientPublish: true,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+srv.Addr().String()+"/ws",
		// client.WithTokenSource(fetchToken), with auth on (issue 12)
		client.WithBackoff(100*time.Millisecond, 10*time.Second),
		client.WithRecoveryHandler(func(r client.Recovery) {
			if !r.Recovered {
				log.Printf("pushes of %s may be lost: reload its state", r.Topic)
			}
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	orders := make(chan client.Message, 64)
	err = c.Subscribe(ctx, "orders", func(m client.Message) {
		orders <- m // hand over: the handler runs on the read goroutine
	})
	if err != nil {
		log.Fatal(err)
	}

	// Someone publishes over the admin API...
	resp, err := http.Post("http://"+srv.AdminAddr()+"/publish?topic=orders", "application/json",
		strings.NewReader(`{"id":1}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	// ... or from this client (the server runs with -client-publish).
	if err := c.Publish(ctx, "orders", json.RawMessage(`{"id":2}`)); err != nil {
		log.Fatal(err)
	}

	for range 2 {
		m := <-orders
		fmt.Println(m.Topic, m.Seq, string(m.Data))
	}
	// Output:
	// orders 1 {"id":1}
	// orders 2 {"id":2}
}

// Publish refuses to queue past WithMaxBuffered: the caller decides what to
// do with a message a stalled connection cannot take.
func ExampleClient_Publish() {
	var c *client.Client // from client.Dial(ctx, url, client.WithMaxBuffered(256<<10))
	ctx := context.Background()
	err := c.Publish(ctx, "metrics", json.RawMessage(`{"cpu":0.42}`))
	switch {
	case errors.Is(err, client.ErrBufferFull):
		// The connection is stalled or down: drop this sample, or retry later.
	case err != nil:
		log.Print(err)
	}
}
