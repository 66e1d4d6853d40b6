package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// The reconnect scenario (issue 11): a storm of clients resubscribing from
// their position. Clients subscribe and note their (epoch, seq), all leave,
// Messages pushes per topic are published while they are away, then all of
// them reconnect at once with ?since= and must each get recovered:true and
// exactly the missed pushes, in order. It measures the time of the storm
// and the server CPU it takes. The clients are plain goroutines over
// gobwas/ws (the scenario is about the server's work, and 10,000 of them fit
// in one process); the other scenarios use the epoll client.

// ReconnectConfig describes a reconnect run.
type ReconnectConfig struct {
	URL         string        // ws://host:port/ws
	Admin       string        // http://host:port of the admin API
	Conns       int           // clients
	Topics      int           // client i listens to topic i mod Topics
	Messages    int           // published per topic while the clients are away: how far back they resume
	Size        int           // bytes of each published JSON value
	Concurrency int           // handshakes in flight at once
	ServerPID   int           // for the server CPU figure; 0: none
	Timeout     time.Duration // bounds the whole run
}

// ReconnectResult is what a reconnect run measured.
type ReconnectResult struct {
	Conns       int   `json:"conns"`
	Topics      int   `json:"topics"`
	Messages    int   `json:"messages"`
	Recovered   int   `json:"recovered"`   // clients answered recovered:true with exactly the missed pushes, in order
	Unrecovered int   `json:"unrecovered"` // answered recovered:false
	Failed      int   `json:"failed"`      // errors, wrong or missing pushes
	Replayed    int64 `json:"replayed"`    // pushes received in replays

	Connect          time.Duration `json:"connect_ns"`   // first connection of all clients
	Publish          time.Duration `json:"publish_ns"`   // publishing while they are away
	Storm            time.Duration `json:"storm_ns"`     // from the first reconnect to the last client's last replayed push
	ServerCPUSeconds float64       `json:"server_cpu_s"` // server CPU during the storm (ServerPID); 0 when unknown
	FirstError       string        `json:"first_error,omitempty"`
}

func (c *ReconnectConfig) defaults() error {
	if c.URL == "" || c.Admin == "" {
		return errors.New("reconnect needs -url and -admin")
	}
	if c.Conns <= 0 {
		c.Conns = 10000
	}
	if c.Topics <= 0 {
		c.Topics = 100
	}
	if c.Messages <= 0 {
		c.Messages = 50
	}
	if c.Size <= 0 {
		c.Size = 128
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 500
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	return nil
}

// position is a client's place in its topic.
type position struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// RunReconnect runs the reconnect scenario once.
func RunReconnect(ctx context.Context, cfg ReconnectConfig) (*ReconnectResult, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	res := &ReconnectResult{Conns: cfg.Conns, Topics: cfg.Topics, Messages: cfg.Messages}
	topic := func(i int) string { return fmt.Sprintf("reconnect.%d", i%cfg.Topics) }

	// 1. Every client subscribes and notes its position, then leaves.
	pos := make([]position, cfg.Conns)
	start := time.Now()
	err := forEach(ctx, cfg.Conns, cfg.Concurrency, func(i int) error {
		c, err := dialWS(ctx, cfg.URL+"?topics="+url.QueryEscape(topic(i)))
		if err != nil {
			return err
		}
		defer c.Close()
		var a struct {
			Op string `json:"op"`
			position
		}
		if err := readJSONFrame(c, &a); err != nil || a.Op != "subscribed" || a.Epoch == "" {
			return fmt.Errorf("first subscribe: %+v, %v (needs a v1.1 server)", a, err)
		}
		pos[i] = a.position
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Connect = time.Since(start)

	// 2. Messages per topic while they are away.
	start = time.Now()
	value := []byte(`"` + strings.Repeat("x", max(cfg.Size-2, 0)) + `"`)
	// Each topic's seqs as the publish answers give them: consecutive on a
	// single node, with gaps on a cluster node (the stream's).
	published := make([][]uint64, cfg.Topics)
	err = forEach(ctx, cfg.Topics, 8, func(t int) error {
		for m := 0; m < cfg.Messages; m++ {
			seq, err := publishOnce(ctx, cfg.Admin, topic(t), value)
			if err != nil {
				return err
			}
			published[t] = append(published[t], seq)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Publish = time.Since(start)

	// 3. The storm: everyone back at once, from its position.
	obs := &observer{pid: cfg.ServerPID}
	before := obs.sample(ctx)
	var recovered, unrecovered, failed atomic.Int64
	var replayed atomic.Int64
	var firstErr sync.Once
	back := make([]*wsConn, cfg.Conns) // held until the storm is over: the server has them all at the end
	defer func() {
		for _, c := range back {
			if c != nil {
				c.Close()
			}
		}
	}()
	start = time.Now()
	forEach(ctx, cfg.Conns, cfg.Concurrency, func(i int) error {
		var err error
		back[i], err = resumeOne(ctx, cfg, topic(i), pos[i], published[i%cfg.Topics], &replayed)
		switch {
		case err == nil:
			recovered.Add(1)
		case errors.Is(err, errUnrecovered):
			unrecovered.Add(1)
		default:
			failed.Add(1)
			firstErr.Do(func() { res.FirstError = err.Error() })
		}
		return nil // count, do not stop the storm
	})
	res.Storm = time.Since(start)
	if after := obs.sample(ctx); cfg.ServerPID > 0 {
		res.ServerCPUSeconds = after.CPUSeconds - before.CPUSeconds
	}
	res.Recovered, res.Unrecovered, res.Failed = int(recovered.Load()), int(unrecovered.Load()), int(failed.Load())
	res.Replayed = replayed.Load()
	return res, ctx.Err()
}

var errUnrecovered = errors.New("answered recovered:false")

// resumeOne reconnects one client from p and checks its answer and
// replay; the connection, if it opened, is the caller's to close.
func resumeOne(ctx context.Context, cfg ReconnectConfig, topic string, p position, want []uint64, replayed *atomic.Int64) (*wsConn, error) {
	since, _ := json.Marshal(map[string]position{topic: p})
	c, err := dialWS(ctx, cfg.URL+"?topics="+url.QueryEscape(topic)+"&since="+url.QueryEscape(string(since)))
	if err != nil {
		return nil, err
	}
	return c, checkReplay(c, topic, want, replayed)
}

// checkReplay reads the answer and the replay of a resume: exactly the
// seqs want, in order.
func checkReplay(c *wsConn, topic string, want []uint64, replayed *atomic.Int64) error {
	var a struct {
		Op        string `json:"op"`
		Seq       uint64 `json:"seq"`
		Recovered *bool  `json:"recovered"`
	}
	if err := readJSONFrame(c, &a); err != nil {
		return err
	}
	switch {
	case a.Op != "subscribed" || a.Recovered == nil:
		return fmt.Errorf("resubscribe answered %+v", a)
	case !*a.Recovered:
		return errUnrecovered
	}
	for _, seq := range want {
		var push struct {
			Topic string `json:"topic"`
			Seq   uint64 `json:"seq"`
		}
		if err := readJSONFrame(c, &push); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		if push.Topic != topic || push.Seq != seq {
			return fmt.Errorf("replay: got %s/%d, want %s/%d", push.Topic, push.Seq, topic, seq)
		}
		replayed.Add(1)
	}
	return nil
}

// wsConn is a client connection with its reader.
type wsConn struct {
	net.Conn
	r *wsutil.Reader
}

func dialWS(ctx context.Context, u string) (*wsConn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dialer{}.Dial(ctx, u)
	if err != nil {
		return nil, err
	}
	var src interface {
		Read([]byte) (int, error)
	} = conn
	if br != nil {
		src = br // bytes the server sent right after the 101
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	return &wsConn{Conn: conn, r: &wsutil.Reader{Source: src, State: ws.StateClientSide, CheckUTF8: true}}, nil
}

// readJSONFrame reads one text message into v, skipping control frames.
func readJSONFrame(c *wsConn, v any) error {
	for {
		h, err := c.r.NextFrame()
		if err != nil {
			return err
		}
		if h.OpCode.IsControl() {
			if err := c.r.Discard(); err != nil {
				return err
			}
			if h.OpCode == ws.OpClose {
				return errors.New("closed by the server")
			}
			continue
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(c.r); err != nil {
			return err
		}
		return json.Unmarshal(b.Bytes(), v)
	}
}

func publishOnce(ctx context.Context, admin, topic string, value []byte) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, admin+"/publish?topic="+url.QueryEscape(topic), bytes.NewReader(value))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json") // a server without an admin token refuses other types (415)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("publish to %s: %s", topic, resp.Status)
	}
	var ans struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || ans.Seq == 0 {
		return 0, fmt.Errorf("publish to %s: answer %+v, %v", topic, ans, err)
	}
	return ans.Seq, nil
}

// forEach runs fn(0..n-1) with at most par at once and returns the first
// error, after every started call has returned.
func forEach(ctx context.Context, n, par int, fn func(i int) error) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, par)
	var once sync.Once
	var first error
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
