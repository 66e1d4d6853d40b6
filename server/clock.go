package server

import "time"

// monoTime is an instant on the server's monotonic clock: nanoseconds since
// Server.epoch. It is 8 bytes where a time.Time is 24, and every session
// holds one (session.lastRead, read on every input), so it is counted in the
// idle connection's size (TestSessionSizeClass). Being monotonic, a wall
// clock step moves no ping, idle deadline or rate-limit bucket.
type monoTime int64

// mono is t on the server's monotonic clock. t must carry a monotonic
// reading (time.Now does) for the difference to ignore wall clock steps.
func (s *Server) mono(t time.Time) monoTime { return monoTime(t.Sub(s.epoch)) }

// wall is m as a time.Time, for deadlines (netpoll.Conn.SetTimer).
func (s *Server) wall(m monoTime) time.Time { return s.epoch.Add(time.Duration(m)) }
