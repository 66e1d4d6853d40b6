package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// The inbox scenario: many topics of one subscriber each (personal
// inboxes), fed by a backend through POST /publish/batch. It is a fanout run
// with Topics = Conns whose publisher sends Batch messages per request; the
// run is paced open-loop (each message's latency counts from its scheduled
// time). RunInbox puts it beside the same inboxes fed by single POST
// /publish requests, to set the server CPU per publish of both side by side.

// InboxConfig describes an inbox run.
type InboxConfig struct {
	Batched Config // Scenario "inbox", Batch items per request, PubRate and Messages set
	// Single, when its Messages > 0, runs the same inboxes with one POST
	// /publish per message (Batch 0) for the CPU per publish beside the batches.
	Single Config
}

// InboxResult is the batched run and the single-publish run beside it.
type InboxResult struct {
	Batched *Result `json:"batched"`
	Single  *Result `json:"single,omitempty"`
}

// RunInbox runs the batched phase, then the single one (each with a fresh
// server when ServerCmd is set).
func RunInbox(ctx context.Context, ic InboxConfig) (*InboxResult, error) {
	out := &InboxResult{}
	b := ic.Batched
	b.Scenario = "inbox"
	if b.Batch <= 1 {
		return nil, errors.New("inbox: the batched phase needs -batch > 1")
	}
	r, err := Run(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("inbox, batched: %w", err)
	}
	out.Batched = r
	if ic.Single.Messages <= 0 {
		return out, nil
	}
	sleepCtx(ctx, time.Second)
	s := ic.Single
	s.Scenario, s.Batch = "inbox", 0
	if out.Single, err = Run(ctx, s); err != nil {
		return out, fmt.Errorf("inbox, single publishes: %w", err)
	}
	return out, nil
}

// cpuPerPublishUS is the server's CPU per accepted publish from the first
// publish to the last delivery, in microseconds.
func (r *Result) cpuPerPublishUS() float64 {
	if r.Server == nil || r.Published == 0 || r.Server.End.CPUSeconds <= 0 {
		return 0
	}
	return (r.Server.End.CPUSeconds - r.Server.PubStart.CPUSeconds) / float64(r.Published) * 1e6
}

// WriteTable writes both phases and the side-by-side summary.
func (ir *InboxResult) WriteTable(w io.Writer) {
	phases := []*Result{ir.Batched}
	if ir.Single != nil {
		phases = append(phases, ir.Single)
	}
	for _, r := range phases {
		r.WriteTable(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "inbox\tper request\toffered/s\taccepted/s\tdelivered/s\tp50 ms\tp99 ms\tlost\tserver CPU per publish\t\n")
	for _, r := range phases {
		per := "1 (POST /publish)"
		if r.Batch > 1 {
			per = strconv.Itoa(r.Batch) + " (POST /publish/batch)"
		}
		offered := "as accepted"
		if r.PubRate > 0 {
			offered = fmtShort(r.PubRate)
		}
		p50, p99 := "-", "-"
		if r.Latency != nil {
			p50, p99 = fmt.Sprintf("%.1f", r.Latency.P50), fmt.Sprintf("%.1f", r.Latency.P99)
		}
		fmt.Fprintf(tw, "%d topics x 1\t%s\t%s\t%.0f\t%.0f\t%s\t%s\t%d\t%.2f µs\t\n", r.Topics, per, offered,
			r.PublishPerSec, r.DeliveriesPerSec, p50, p99, r.Lost, r.cpuPerPublishUS())
	}
	tw.Flush()
}

// batchItemAnswer is one entry of a POST /publish/batch answer.
type batchItemAnswer struct {
	pubAnswer
	Error string `json:"error"`
}

// runBatches is run for p.batch > 1: batch k carries messages k*batch to
// (k+1)*batch-1, message i to topic i mod len(topics); paced, batch k is due
// at k*batch/rate and its messages are stamped with that time.
func (p *publisher) runBatches(ctx context.Context) pubTally {
	var next atomic.Int64
	start := time.Now()
	batches := (p.total + p.batch - 1) / p.batch
	tallies := make([]pubTally, p.workers)
	var wg sync.WaitGroup
	for w := range tallies {
		t := &tallies[w]
		t.errs, t.lat, t.ranges = map[string]int{}, newHist(), map[string][2]int64{}
		wg.Go(func() {
			var body, payload []byte
			for {
				k := int(next.Add(1) - 1)
				if k >= batches || ctx.Err() != nil || time.Now().After(p.until) {
					return
				}
				first := k * p.batch
				n := min(p.batch, p.total-first)
				stamp := time.Time{}
				if p.rate > 0 {
					due := start.Add(time.Duration(float64(first) / p.rate * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
					}
					stamp = due
				}
				t0 := time.Now()
				if stamp.IsZero() {
					stamp = t0
				}
				payload = makePayload(payload, stamp.UnixNano(), p.size)
				body = append(body[:0], '[')
				for i := range n {
					if i > 0 {
						body = append(body, ',')
					}
					body = append(body, `{"topic":`...)
					body = strconv.AppendQuote(body, p.topics[(first+i)%len(p.topics)])
					body = append(body, `,"data":`...)
					body = append(body, payload...)
					body = append(body, '}')
				}
				body = append(body, ']')
				answers, err := p.postBatch(ctx, body)
				recordUS(t.lat, time.Since(t0).Nanoseconds())
				p.sent.Add(int64(n))
				if err == nil && len(answers) != n {
					err = errors.New("answer_count")
				}
				if err != nil {
					t.errs[err.Error()] += n
					continue
				}
				for _, a := range answers {
					if a.Error != "" {
						t.errs["item_error"]++
						continue
					}
					t.ok++
					t.queued += a.Subscribers
					r, seen := t.ranges[a.Topic]
					if !seen || a.Seq < r[0] {
						r[0] = a.Seq
					}
					r[1] = max(r[1], a.Seq)
					t.ranges[a.Topic] = r
				}
			}
		})
	}
	wg.Wait()
	return mergeTallies(tallies)
}

// postBatch posts one batch; errors are short kinds fit for a table.
func (p *publisher) postBatch(ctx context.Context, body []byte) ([]batchItemAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.admin+"/publish/batch", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, errors.New("transport")
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, errors.New("read")
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("http_%d", resp.StatusCode)
	}
	var out []batchItemAnswer
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, errors.New("bad_answer")
	}
	return out, nil
}
