package bench

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// openLoop publishes one curve step open-loop: message j of the step is due
// at start + j/rate whatever happened to the messages before it, and carries
// its due time, so a server that stalls the publisher (slow answers, a full
// pool) cannot hide the stall: the wait shows up in the subscribers'
// latency. One dispatcher goroutine hands due messages to a pool of workers
// goroutines, each owning one keep-alive connection of client; a message
// waits in the dispatcher's queue only while every worker is busy, and that
// wait is measured (sendLag) so the report shows whether the publisher kept
// its schedule.
type openLoop struct {
	admin   string
	topics  []string
	size    int
	workers int
	client  *http.Client
	tallies []stepTally // one per worker, allocated once (prepare) so no step starts late
}

// prepare allocates the workers' tallies; call it before the first step.
func (o *openLoop) prepare() {
	o.tallies = make([]stepTally, o.workers)
	for i := range o.tallies {
		o.tallies[i] = stepTally{lag: newHist(), rtt: newHist()}
	}
}

// pubJob is one due message.
type pubJob struct {
	j   int
	due time.Time
}

// stepTally is what the publisher saw of one step.
type stepTally struct {
	scheduled int
	ok        int
	unsent    int // due, but not sent before the step's bound
	errs      map[string]int
	subs      int64 // sum of "subscribers" in the answers
	lag       *hdrhistogram.Histogram
	rtt       *hdrhistogram.Histogram
	maxBusy   int
}

// stepMessages is how many messages a step of d at rate messages/s publishes.
func stepMessages(rate float64, d time.Duration) int {
	return max(1, int(math.Round(rate*d.Seconds())))
}

// run publishes step k: stepMessages(rate, d) messages from start; sends
// not begun by bound are counted unsent.
func (o *openLoop) run(ctx context.Context, k int, start time.Time, rate float64, d time.Duration, bound time.Time) stepTally {
	n := stepMessages(rate, d)
	jobs := make(chan pubJob, n)
	ctx, cancel := context.WithDeadline(ctx, bound)
	defer cancel()
	go o.dispatch(ctx, jobs, n, start, rate)
	return o.publish(ctx, k, n, jobs)
}

// dispatch queues message j at its due time.
func (o *openLoop) dispatch(ctx context.Context, jobs chan<- pubJob, n int, start time.Time, rate float64) {
	defer close(jobs)
	for j := 0; j < n; j++ {
		due := start.Add(time.Duration(float64(j) / rate * float64(time.Second)))
		if w := time.Until(due); w > 0 {
			t := time.NewTimer(w)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		jobs <- pubJob{j: j, due: due}
	}
}

// publish sends the queued messages from the workers and merges their tallies.
func (o *openLoop) publish(ctx context.Context, k, n int, jobs <-chan pubJob) stepTally {
	var busy, maxBusy atomic.Int64
	if len(o.tallies) != o.workers {
		o.prepare()
	}
	tallies := o.tallies
	var wg sync.WaitGroup
	for w := range tallies {
		t := &tallies[w]
		t.lag.Reset()
		t.rtt.Reset()
		t.ok, t.unsent, t.subs, t.errs = 0, 0, 0, map[string]int{}
		wg.Add(1)
		go func(t *stepTally) {
			defer wg.Done()
			var body []byte
			for job := range jobs {
				if ctx.Err() != nil {
					t.unsent++
					continue
				}
				b := busy.Add(1)
				for m := maxBusy.Load(); b > m && !maxBusy.CompareAndSwap(m, b); m = maxBusy.Load() {
				}
				t0 := time.Now()
				recordUS(t.lag, t0.Sub(job.due).Nanoseconds())
				body = makeStepPayload(body, job.due.UnixNano(), k, o.size)
				p := publisher{admin: o.admin, client: o.client}
				ans, err := p.post(ctx, o.topics[job.j%len(o.topics)], body)
				recordUS(t.rtt, time.Since(t0).Nanoseconds())
				busy.Add(-1)
				if err != nil {
					t.errs[err.Error()]++
					continue
				}
				t.ok++
				t.subs += ans.Subscribers
			}
		}(&tallies[w])
	}
	wg.Wait()
	out := stepTally{scheduled: n, errs: map[string]int{}, lag: newHist(), rtt: newHist(), maxBusy: int(maxBusy.Load())}
	sent := 0
	for _, t := range tallies {
		out.ok += t.ok
		out.unsent += t.unsent
		out.subs += t.subs
		out.errs = addCounts(out.errs, t.errs)
		out.lag.Merge(t.lag)
		out.rtt.Merge(t.rtt)
		sent += t.ok + sum(t.errs) + t.unsent
	}
	// messages the dispatcher never queued (its context ended first)
	out.unsent += n - sent
	return out
}

// makeStepPayload is makePayload with the step index: {"t":due,"s":k,"p":"x…"}.
func makeStepPayload(dst []byte, t int64, k, size int) []byte {
	dst = append(dst[:0], `{"t":`...)
	dst = strconv.AppendInt(dst, t, 10)
	dst = append(dst, `,"s":`...)
	dst = strconv.AppendInt(dst, int64(k), 10)
	dst = append(dst, `,"p":"`...)
	for len(dst) < size-2 {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// payloadStep extracts the step index from a curve payload.
func payloadStep(data []byte) (int, bool) {
	i := bytes.Index(data, []byte(`"s":`))
	if i < 0 {
		return 0, false
	}
	i += 4
	k, n := 0, 0
	for ; i < len(data) && data[i] >= '0' && data[i] <= '9' && n < 6; i++ {
		k = k*10 + int(data[i]-'0')
		n++
	}
	return k, n > 0
}
