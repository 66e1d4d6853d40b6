package server

import (
	"errors"

	"github.com/wspush/wspush/netpoll"
)

// DropConnections closes every WebSocket connection at once, without a
// close frame, as a network failure between the node and its clients would,
// and returns how many it closed. It is for operators who need the clients
// elsewhere now and for tests of reconnection and recovery (v1.1): the
// topics, their positions and history stay, so clients that reconnect with
// "since" recover what was published meanwhile.
func (s *Server) DropConnections() int {
	n := 0
	counts := make([]int, len(s.loops))
	s.group.Each(func(l *netpoll.Loop) {
		// Closing removes connections from l.Conns: walk a copy.
		for _, c := range append([]*netpoll.Conn(nil), l.Conns()...) {
			if sess, ok := c.Data.(*session); ok && sess.upgraded {
				c.Close(errDropped)
				counts[l.ID()]++
			}
		}
	})
	for _, c := range counts {
		n += c
	}
	return n
}

var errDropped = errors.New("dropped by Server.DropConnections")
