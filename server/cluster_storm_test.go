package server

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/pubsub"
)

// BenchmarkResumeStorm: 1,000 clients, 10 per topic on 100 topics, resume
// with ?since= 50 messages back, all at once; one op is the whole storm,
// until every client has its 50 replayed pushes. The cluster node reads
// the stream; the single node, its own history, for comparison in the same
// run. Run with -benchtime 1x; it reports the clients recovered and the
// wall time (docs/benchmarks.md "Cluster recovery").
func BenchmarkResumeStorm(b *testing.B) {
	b.Run("single", func(b *testing.B) { resumeStorm(b, "") })
	b.Run("cluster", func(b *testing.B) {
		resumeStorm(b, testsupport.StartNATS(b, -1, b.TempDir()).ClientURL())
	})
}

func resumeStorm(b *testing.B, broker string) {
	const clients, perTopic, back = 1000, 10, 50
	s := startServer(b, Config{Broker: broker, MaxConnsPerIP: 2 * clients, CommandRate: 1000})
	testsupport.WaitFor(b, "node healthy", func() bool { code, _ := health(b, s); return code == 200 })
	ctx := context.Background()
	topics := clients / perTopic
	first, epochs := make([]uint64, topics), make([]string, topics)
	for i := range topics {
		for j := range back + 1 {
			res, err := s.Publish(ctx, fmt.Sprint("storm-", i), []byte(`{"n":12345,"text":"a push of about sixty bytes"}`))
			if err != nil {
				b.Fatal(err)
			}
			if j == 0 {
				first[i], epochs[i] = res.Seq, res.Epoch
			}
		}
	}
	for _, e := range epochs {
		if !pubsub.ValidEpoch(e) {
			b.Fatalf("epoch %q", e)
		}
	}
	for b.Loop() {
		var wg sync.WaitGroup
		var mu sync.Mutex
		recovered, pushes := 0, 0
		conns := make([]*websocket.Conn, clients)
		start := time.Now()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				topic := fmt.Sprint("storm-", c%topics)
				since := fmt.Sprintf(`{%q:{"epoch":%q,"seq":%d}}`, topic, epochs[c%topics], first[c%topics])
				dctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				conn, _, err := websocket.Dial(dctx, s.wsURL("/ws?topics="+topic+"&since="+url.QueryEscape(since)), nil)
				if err != nil {
					b.Errorf("dial: %v", err)
					return
				}
				conn.SetReadLimit(1 << 20)
				conns[c] = conn
				_, msg, err := conn.Read(dctx)
				if err != nil {
					b.Errorf("answer: %v", err)
					return
				}
				ok := containsRecovered(msg)
				n := 0
				for ; ok && n < back; n++ {
					if _, _, err := conn.Read(dctx); err != nil {
						b.Errorf("push: %v", err)
						return
					}
				}
				mu.Lock()
				if ok {
					recovered++
				}
				pushes += n
				mu.Unlock()
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		for _, c := range conns {
			if c != nil {
				c.CloseNow()
			}
		}
		b.ReportMetric(float64(recovered), "recovered")
		b.ReportMetric(float64(pushes), "replayed")
		b.ReportMetric(elapsed.Seconds(), "storm-s")
	}
}

func containsRecovered(msg []byte) bool { return strings.Contains(string(msg), `"recovered":true`) }
