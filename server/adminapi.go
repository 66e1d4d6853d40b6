package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"github.com/wspush/wspush/netpoll"
	"github.com/wspush/wspush/pubsub"
)

// The server API of issue 12 on the admin port: disconnect a user, end a
// user's subscription, list topics and who is subscribed. Every handler
// works on the loops' state through Group.Each, on each loop's goroutine;
// nothing here touches a session from the admin goroutine. The answers are
// about this node. With a cluster broker, /disconnect and /unsubscribe are
// also sent to every other node as control messages over NATS
// (natsbroker.SendControl), which each node carries out on its own loops.

// Limits of the listing endpoints' ?limit=.
const (
	defaultListLimit = 1000   // entries listed when ?limit= is absent
	maxListLimit     = 100000 // the largest ?limit= accepted
)

// allowMethod answers 405 unless r uses method.
func allowMethod(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || (method == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	w.Header().Set("Allow", method)
	writeJSONError(w, http.StatusMethodNotAllowed, "use "+method)
	return false
}

// userParam reads the required ?user=.
func userParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	u := r.URL.Query().Get("user")
	if u == "" {
		writeJSONError(w, http.StatusBadRequest, `"user" query parameter required: the sub of the tokens`)
		return "", false
	}
	return u, true
}

// limitParam reads ?limit=, defaultListLimit when absent.
func limitParam(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return defaultListLimit, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxListLimit {
		writeJSONError(w, http.StatusBadRequest, "limit must be an integer from 0 to "+strconv.Itoa(maxListLimit))
		return 0, false
	}
	return n, true
}

// eachUserConn runs fn on every open connection of user and every one
// whose 101 waits for the cluster (stateJoining), each on its own loop, and
// returns how many fn counted.
func (s *Server) eachUserConn(user string, fn func(*session) bool) int {
	counts := make([]int, len(s.loops))
	s.group.Each(func(l *netpoll.Loop) {
		// fn may close connections, which edits the index: walk a copy.
		for _, ss := range slices.Clone(s.loops[l.ID()].auth.users[user]) {
			if (ss.state == stateOpen || ss.state == stateJoining) && fn(ss) {
				counts[l.ID()]++
			}
		}
	})
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// disconnectLocal closes every connection of user on this node with 4002.
func (s *Server) disconnectLocal(user string) int {
	n := s.eachUserConn(user, func(ss *session) bool {
		ss.disconnect()
		return true
	})
	s.log.Info("server API: user disconnected", "user", user, "connections", n)
	return n
}

// unsubscribeLocal ends user's subscriptions to topic on this node.
func (s *Server) unsubscribeLocal(user, topic string) int {
	return s.eachUserConn(user, func(ss *session) bool {
		if ss.state == stateJoining {
			return ss.leaveWhileJoining(topic) // pending.go
		}
		if !ss.holds(topic) {
			return false
		}
		ss.unsubscribe(topic)
		ss.reply(reply{Op: "unsubscribed", Topic: topic})
		ss.abandonWait(topic) // pending.go
		return true
	})
}

// handleDisconnect is POST /disconnect?user=42: every connection of the
// user is closed with 4002, on this node and, in cluster mode, on every
// other. disconnected counts this node's.
func (s *Server) handleDisconnect(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodPost) {
		return
	}
	user, ok := userParam(w, r)
	if !ok {
		return
	}
	n := s.disconnectLocal(user)
	s.answerControl(w, controlMsg{Op: controlDisconnect, User: user}, map[string]any{"user": user, "disconnected": n})
}

// handleUnsubscribe is POST /unsubscribe?user=42&topic=a: the user's
// connections on this node holding topic leave it and are told with
// {"op":"unsubscribed","topic":"a"}.
func (s *Server) handleUnsubscribe(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodPost) {
		return
	}
	user, ok := userParam(w, r)
	if !ok {
		return
	}
	topic := r.URL.Query().Get("topic")
	if err := pubsub.CheckTopic(topic); err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	n := s.unsubscribeLocal(user, topic)
	s.answerControl(w, controlMsg{Op: controlUnsubscribe, User: user, Topic: topic},
		map[string]any{"user": user, "topic": topic, "unsubscribed": n})
}

// Control message kinds, the NATS subject's last token.
const (
	controlDisconnect  = "disconnect"
	controlUnsubscribe = "unsubscribe"
)

// controlMsg is a server API command sent to the other nodes.
type controlMsg struct {
	Op     string `json:"op"`
	Origin string `json:"origin"` // the sending node's id: it has done its part
	User   string `json:"user"`
	Topic  string `json:"topic,omitempty"`
}

// answerControl sends m to the other nodes in cluster mode and answers the
// request with body: 200, or 503 with an "error" when the other nodes
// could not be told (this node's part is done; the request may be retried).
func (s *Server) answerControl(w http.ResponseWriter, m controlMsg, body map[string]any) {
	if s.nats == nil {
		writeJSON(w, http.StatusOK, body)
		return
	}
	m.Origin = s.nodeID
	data, _ := json.Marshal(m)
	if err := s.nats.SendControl(m.Op, data); err != nil {
		body["error"] = "this node is done, the other nodes were not told: " + err.Error()
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// startControl gives the node its id and, in cluster mode, carries out the
// commands other nodes send.
func (s *Server) startControl() error {
	var id [8]byte
	rand.Read(id[:])
	s.nodeID = hex.EncodeToString(id[:])
	if s.nats == nil {
		return nil
	}
	return s.nats.OnControl(s.onControl)
}

// onControl runs a command from another node, on a NATS goroutine (never
// a loop's: the loops are reached with Group.Each).
func (s *Server) onControl(kind string, data []byte) {
	var m controlMsg
	if err := json.Unmarshal(data, &m); err != nil || m.Op != kind || m.User == "" {
		s.log.Warn("server API: ignoring a malformed control message", "kind", kind)
		return
	}
	if m.Origin == s.nodeID || s.shuttingDown.Load() {
		return
	}
	switch m.Op {
	case controlDisconnect:
		s.disconnectLocal(m.User)
	case controlUnsubscribe:
		if pubsub.CheckTopic(m.Topic) == nil {
			s.unsubscribeLocal(m.User, m.Topic)
		}
	}
}

// handleTopics is GET /topics?prefix=p&limit=n: this node's topics with
// their subscriber counts, sorted by name.
func (s *Server) handleTopics(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodGet) {
		return
	}
	limit, ok := limitParam(w, r)
	if !ok {
		return
	}
	list, matched := s.hub.Topics(r.URL.Query().Get("prefix"), limit)
	if list == nil {
		list = []pubsub.TopicCount{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"topics": list, "count": matched})
}

// handlePresence is GET /presence?topic=a&limit=n: the users subscribed to
// topic on this node. count is the number of distinct users, always; users
// lists at most limit of their ids, sorted; connections counts every
// subscribed connection, anonymous ones included.
func (s *Server) handlePresence(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodGet) {
		return
	}
	topic := r.URL.Query().Get("topic")
	if err := pubsub.CheckTopic(topic); err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, ok := limitParam(w, r)
	if !ok {
		return
	}
	perLoop := make([][]string, len(s.loops))
	conns := make([]int, len(s.loops))
	s.group.Each(func(l *netpoll.Loop) {
		for _, c := range l.Conns() {
			ss := c.Data.(*session)
			if ss.state != stateOpen || !ss.holds(topic) {
				continue
			}
			conns[l.ID()]++
			if u := ss.user(); u != "" && !ss.claims.Anonymous {
				perLoop[l.ID()] = append(perLoop[l.ID()], u)
			}
		}
	})
	var users []string
	total := 0
	for i, u := range perLoop {
		users = append(users, u...)
		total += conns[i]
	}
	slices.Sort(users)
	users = slices.Compact(users)
	count := len(users)
	if len(users) > limit {
		users = users[:limit]
	}
	if users == nil {
		users = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"topic": topic, "count": count, "users": users, "connections": total})
}
