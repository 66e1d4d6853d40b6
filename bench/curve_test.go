package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestKnee(t *testing.T) {
	step := func(rate float64, pass bool) CurveStep { return CurveStep{Offered: rate, Pass: pass} }
	tests := []struct {
		name  string
		steps []CurveStep
		want  float64
	}{
		{"none", nil, 0},
		{"all pass", []CurveStep{step(10, true), step(20, true)}, 20},
		{"lowest fails", []CurveStep{step(10, false), step(20, true)}, 0},
		{"a pass above a failure does not count", []CurveStep{step(10, true), step(20, false), step(30, true)}, 10},
	}
	for _, tt := range tests {
		if got := knee(tt.steps); got != tt.want {
			t.Errorf("%s: knee %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseRates(t *testing.T) {
	got, err := ParseRates("1M, 10k,2.5e5,300")
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{300, 10e3, 2.5e5, 1e6}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%v, want %v", got, want)
		}
	}
	if _, err := ParseRates("10q"); err == nil {
		t.Error("10q parsed")
	}
}

// TestOpenLoopStampsDueTime checks coordinated omission is avoided: a
// server that holds the only publisher for 300 ms delays the sends, but
// every message still carries its due time and the wait shows as send lag.
func TestOpenLoopStampsDueTime(t *testing.T) {
	var mu sync.Mutex
	var stamps []int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ts, ok := payloadTime(b)
		k, kok := payloadStep(b)
		if !ok || !kok || k != 3 {
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		mu.Lock()
		first := len(stamps) == 0
		stamps = append(stamps, ts)
		mu.Unlock()
		if first {
			time.Sleep(300 * time.Millisecond)
		}
		w.Write([]byte(`{"topic":"t","seq":1,"subscribers":7}`))
	}))
	defer srv.Close()
	o := &openLoop{admin: srv.URL, topics: []string{"t"}, size: 128, workers: 1, client: newHTTPClient(1)}
	o.prepare()
	start := time.Now()
	// 20 messages/s for 0.5 s: 10 messages due 50 ms apart
	tl := o.run(context.Background(), 3, start, 20, 500*time.Millisecond, start.Add(5*time.Second))
	if tl.scheduled != 10 || tl.ok != 10 || tl.unsent != 0 || tl.subs != 70 {
		t.Fatalf("tally: scheduled %d ok %d unsent %d subs %d errs %v", tl.scheduled, tl.ok, tl.unsent, tl.subs, tl.errs)
	}
	for j, ts := range stamps {
		if due := start.Add(time.Duration(j) * 50 * time.Millisecond).UnixNano(); ts != due {
			t.Errorf("message %d stamped %d, due %d", j, ts, due)
		}
	}
	// message 1 was due 50 ms in and sent after the 300 ms stall
	if lag := tl.lag.Max(); lag < 200_000 {
		t.Errorf("max send lag %d us: the stall is hidden", lag)
	}
}

func TestOpenLoopUnsentPastBound(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		w.Write([]byte(`{"topic":"t","seq":1,"subscribers":1}`))
	}))
	defer srv.Close()
	o := &openLoop{admin: srv.URL, topics: []string{"t"}, size: 64, workers: 1, client: newHTTPClient(1)}
	start := time.Now()
	// 10 messages due within 100 ms; the one publisher, 200 ms a message, sends at most 5 before the 1 s bound
	tl := o.run(context.Background(), 0, start, 100, 100*time.Millisecond, start.Add(time.Second))
	if tl.scheduled != 10 || tl.ok+sum(tl.errs)+tl.unsent != 10 || tl.unsent == 0 || tl.ok == 0 {
		t.Errorf("scheduled %d ok %d errs %v unsent %d", tl.scheduled, tl.ok, tl.errs, tl.unsent)
	}
}
