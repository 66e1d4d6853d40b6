package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// publisher posts messages to the admin API from a few goroutines sharing
// one keep-alive HTTP client. Each goroutine keeps its own tallies; they are
// merged when all are done.
type publisher struct {
	admin   string
	topics  []string
	total   int // messages, all topics together
	size    int
	rate    float64 // messages per second, 0: as fast as the server answers
	workers int
	batch   int // messages per POST /publish/batch; <= 1: one POST /publish each (inbox.go)
	until   time.Time
	client  *http.Client
	sent    atomic.Int64
}

type pubTally struct {
	ok     int
	errs   map[string]int
	lat    *hdrhistogram.Histogram
	ranges map[string][2]int64
	queued int64
}

type pubAnswer struct {
	Topic       string `json:"topic"`
	Seq         int64  `json:"seq"`
	Subscribers int64  `json:"subscribers"`
}

func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: 30 * time.Second,
			DisableCompression: true,
		},
	}
}

func (p *publisher) run(ctx context.Context) pubTally {
	if p.batch > 1 {
		return p.runBatches(ctx)
	}
	var next atomic.Int64
	start := time.Now()
	tallies := make([]pubTally, p.workers)
	var wg sync.WaitGroup
	for w := range tallies {
		wg.Add(1)
		go func(t *pubTally) {
			defer wg.Done()
			t.errs, t.lat, t.ranges = map[string]int{}, newHist(), map[string][2]int64{}
			var body []byte
			for {
				k := int(next.Add(1) - 1)
				if k >= p.total || ctx.Err() != nil || time.Now().After(p.until) {
					return
				}
				stamp := time.Time{}
				if p.rate > 0 {
					due := start.Add(time.Duration(float64(k) / p.rate * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
					}
					stamp = due // paced: latency counts from the due time, so a stalled publisher cannot hide it
				}
				topic := p.topics[k%len(p.topics)]
				t0 := time.Now()
				if stamp.IsZero() {
					stamp = t0
				}
				body = makePayload(body, stamp.UnixNano(), p.size)
				ans, err := p.post(ctx, topic, body)
				recordUS(t.lat, time.Since(t0).Nanoseconds())
				p.sent.Add(1)
				if err != nil {
					t.errs[err.Error()]++
					continue
				}
				t.ok++
				t.queued += ans.Subscribers
				r, seen := t.ranges[topic]
				if !seen || ans.Seq < r[0] {
					r[0] = ans.Seq
				}
				r[1] = max(r[1], ans.Seq)
				t.ranges[topic] = r
			}
		}(&tallies[w])
	}
	wg.Wait()
	return mergeTallies(tallies)
}

// mergeTallies adds up the publishing goroutines' tallies.
func mergeTallies(tallies []pubTally) pubTally {
	out := pubTally{errs: map[string]int{}, lat: newHist(), ranges: map[string][2]int64{}}
	for _, t := range tallies {
		out.ok += t.ok
		out.queued += t.queued
		out.errs = addCounts(out.errs, t.errs)
		out.lat.Merge(t.lat)
		for k, r := range t.ranges {
			o, seen := out.ranges[k]
			if !seen || r[0] < o[0] {
				o[0] = r[0]
			}
			o[1] = max(o[1], r[1])
			out.ranges[k] = o
		}
	}
	return out
}

// post publishes one message; errors are short kinds fit for a table.
func (p *publisher) post(ctx context.Context, topic string, body []byte) (pubAnswer, error) {
	var a pubAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.admin+"/publish?topic="+url.QueryEscape(topic), bytes.NewReader(body))
	if err != nil {
		return a, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return a, fmt.Errorf("transport")
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return a, fmt.Errorf("read")
	}
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("http_%s", strconv.Itoa(resp.StatusCode))
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("bad_answer")
	}
	return a, nil
}
