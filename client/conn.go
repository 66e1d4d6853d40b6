package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// wsConn is one WebSocket connection of a Client, with its read and write
// goroutines. Fields after mu-owned are owned by Client.mu.
type wsConn struct {
	ws     *websocket.Conn
	token  string
	ctx    context.Context // ended when the connection ends
	cancel context.CancelFunc
	wake   chan struct{} // capacity 1: the writer has work
	done   chan struct{} // closed when the read goroutine has ended
	wg     sync.WaitGroup
	err    error // why the read goroutine ended, set before done is closed

	// Owned by Client.mu.
	ctrl    []*outMsg // commands not yet written: before any publish
	answers []pending // answers expected, in the order the commands were written
	exp     int64     // the exp of the last refreshed answer
}

// outMsg is one frame waiting for the write goroutine.
type outMsg struct {
	frame  []byte
	expect []pending  // answers the command expects, queued when it is written
	done   chan error // publishes only: the outcome of the write
	taken  bool       // the writer has it: Publish can no longer withdraw it
}

// pending is an answer the server owes for a command written on this
// connection. The server answers in command order, so the first pending
// entry of the right kind is the one an answer belongs to.
type pending struct {
	op    string
	topic string
	done  chan error // unsub and refresh: told the outcome
}

func (w *wsConn) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// closeNormal ends the connection with the close handshake, code 1000.
func (w *wsConn) closeNormal() {
	w.ws.Close(websocket.StatusNormalClosure, "")
}

// connect dials once: fetches a token, makes the handshake, installs the
// connection and queues the resubscription of every held topic.
func (c *Client) connect(ctx context.Context) (*wsConn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.dialTimeout)
	defer cancel()
	var token string
	if c.cfg.token != nil {
		t, err := c.cfg.token(ctx)
		if err != nil {
			return nil, fmt.Errorf("token source: %w", err)
		}
		token = t
	}
	u, h := c.url, c.cfg.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if token != "" {
		if c.cfg.tokenInQuery {
			pu, _ := url.Parse(u) // parsed in Dial already
			q := pu.Query()
			q.Set("token", token)
			pu.RawQuery = q.Encode()
			u = pu.String()
		} else {
			h.Set("Authorization", "Bearer "+token)
		}
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h, HTTPClient: c.cfg.httpClient})
	if err != nil {
		err = redact(err, token)
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			var body []byte
			if resp.Body != nil {
				body, _ = io.ReadAll(io.LimitReader(resp.Body, 1024))
				resp.Body.Close()
			}
			return nil, &HandshakeError{StatusCode: resp.StatusCode, Body: strings.TrimSpace(string(body)), Err: err}
		}
		return nil, err
	}
	ws.SetReadLimit(c.cfg.readLimit)
	w := &wsConn{ws: ws, token: token, wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(context.Background())

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		w.cancel()
		ws.CloseNow()
		return nil, ErrClosed
	}
	c.conn = w
	if resub := c.resubscribeLocked(); resub != nil {
		w.ctrl = append(w.ctrl, resub)
	}
	c.mu.Unlock()
	w.wg.Add(2)
	go c.readLoop(w)
	go c.writeLoop(w)
	w.signal()
	c.log.Info("wspush connected", "url", redactURL(c.url))
	if c.cfg.onConnect != nil {
		c.cfg.onConnect()
	}
	return w, nil
}

// resubscribeLocked builds the sub of every held topic for a new
// connection, with the position of each topic whose epoch is known: a v1
// server sends no epoch, and a position without one cannot be resumed.
func (c *Client) resubscribeLocked() *outMsg {
	if len(c.topics) == 0 {
		return nil
	}
	cmd := command{Op: opSub, Topics: c.sortedTopicsLocked()}
	m := &outMsg{}
	for _, t := range cmd.Topics {
		s := c.topics[t]
		if s.confirmed && s.pos.Epoch != "" {
			if cmd.Since == nil {
				cmd.Since = make(map[string]Position)
			}
			cmd.Since[t] = s.pos
		}
		m.expect = append(m.expect, pending{op: opSub, topic: t})
	}
	m.frame, _ = json.Marshal(cmd) // strings and numbers only: cannot fail
	return m
}

// serve runs while w is open: it refreshes the token before it expires and
// returns why the connection ended, once its goroutines have.
func (c *Client) serve(w *wsConn) error {
	var refresh <-chan time.Time
	var answer chan error // the pending refresh's outcome
	var next time.Time    // the exp of the token being refreshed to
	exp, hasExp := tokenExpiry(w.token)
	schedule := func(d time.Duration) { refresh = time.After(d) }
	// A failed refresh is tried again while the token is valid, at halving
	// intervals: a bounded number of attempts before exp.
	retry := func(err error) {
		c.notifyError(fmt.Errorf("wspush: token refresh: %w", err))
		if d := min(time.Until(exp)/2, 5*time.Second); d >= minRefreshRetry {
			schedule(d)
		}
	}
	if c.cfg.token != nil && !c.cfg.staticToken && hasExp {
		schedule(refreshDelay(time.Now(), exp, c.cfg.refreshBefore))
	}
	for {
		select {
		case <-w.done:
			w.wg.Wait()
			c.dropConn(w)
			return connError(w.err)
		case <-refresh:
			refresh = nil
			token, err := c.fetchToken(w.ctx)
			if err == nil {
				var ok bool
				if next, ok = tokenExpiry(token); !ok || !next.After(exp) {
					err = errors.New("the token source returned no token expiring later than the current one")
				}
			}
			if err != nil {
				retry(err)
				continue
			}
			answer = make(chan error, 1)
			frame, _ := json.Marshal(command{Op: opRefresh, Token: token})
			c.mu.Lock()
			w.ctrl = append(w.ctrl, &outMsg{frame: frame, expect: []pending{{op: opRefresh, done: answer}}})
			c.mu.Unlock()
			w.signal()
		case err := <-answer:
			answer = nil
			if err != nil {
				retry(err)
				continue
			}
			exp = next
			c.mu.Lock()
			if w.exp > 0 { // the server's word, from the refreshed answer
				exp = time.Unix(w.exp, 0)
			}
			c.mu.Unlock()
			c.log.Debug("wspush token refreshed", "exp", exp)
			if time.Until(exp) > 0 {
				schedule(refreshDelay(time.Now(), exp, c.cfg.refreshBefore))
			}
		}
	}
}

// minRefreshRetry is the shortest wait before retrying a refresh: closer to
// exp the server's close 4001 and a reconnect take over.
const minRefreshRetry = 10 * time.Millisecond

func (c *Client) fetchToken(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.dialTimeout)
	defer cancel()
	return c.cfg.token(ctx)
}

// dropConn forgets the ended connection w: commands it owed answers to are
// settled (an unsub is done: the next connection does not hold the topic).
func (c *Client) dropConn(w *wsConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == w {
		c.conn = nil
	}
	settle := func(p pending) {
		if p.done == nil {
			return
		}
		if p.op == opUnsub {
			p.done <- nil
		} else {
			p.done <- ErrConnectionLost
		}
	}
	for _, p := range w.answers {
		settle(p)
	}
	for _, m := range w.ctrl {
		for _, p := range m.expect {
			settle(p)
		}
	}
	w.answers, w.ctrl = nil, nil
}

// connError turns how the read goroutine ended into the error the client
// reports: a *CloseError when the server sent a close frame.
func connError(err error) error {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return &CloseError{Code: int(ce.Code), Reason: ce.Reason}
	}
	return fmt.Errorf("%w: %w", ErrConnectionLost, err)
}

// readLoop reads and dispatches every frame of w until it ends.
func (c *Client) readLoop(w *wsConn) {
	defer w.wg.Done()
	defer close(w.done)
	defer w.cancel()
	for {
		typ, b, err := w.ws.Read(w.ctx)
		if err != nil {
			w.err = err
			return
		}
		if typ != websocket.MessageText {
			c.log.Debug("wspush: binary frame dropped", "bytes", len(b))
			continue
		}
		c.dispatch(w, b)
	}
}

// writeLoop writes w's commands, then the client's publishes, until w ends.
func (c *Client) writeLoop(w *wsConn) {
	defer w.wg.Done()
	for {
		c.mu.Lock()
		var m *outMsg
		switch {
		case len(w.ctrl) > 0:
			m, w.ctrl = w.ctrl[0], w.ctrl[1:]
		case len(c.pubs) > 0 && c.conn == w:
			m, c.pubs = c.pubs[0], c.pubs[1:]
			m.taken = true
		}
		if m != nil {
			w.answers = append(w.answers, m.expect...)
		}
		c.mu.Unlock()
		if m == nil {
			select {
			case <-w.wake:
				continue
			case <-w.ctx.Done():
				return
			}
		}
		ctx, cancel := context.WithTimeout(w.ctx, c.cfg.writeTimeout)
		err := w.ws.Write(ctx, websocket.MessageText, m.frame)
		cancel()
		if m.done != nil {
			c.mu.Lock()
			c.buffered -= len(m.frame)
			c.mu.Unlock()
			if err != nil {
				m.done <- fmt.Errorf("%w: %w", ErrConnectionLost, err)
			} else {
				m.done <- nil
			}
		}
		if err != nil {
			w.ws.CloseNow() // the read goroutine then ends the connection
			return
		}
	}
}

// redact removes the token from an error that may quote the URL.
func redact(err error, token string) error {
	if token == "" || !strings.Contains(err.Error(), token) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), token, "REDACTED"), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactURL drops the query, which may hold a token, from a URL for logs.
func redactURL(raw string) string {
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		return raw[:i]
	}
	return raw
}
