//go:build linux

package netpoll

import (
	"errors"

	epoll "github.com/mailru/easygo/netpoll"
)

// AcceptGate admits connections before they are accepted, so that what a
// connection would cost (a TLS handshake slot) can be refused while the
// connection still waits in the kernel's accept backlog, costing the process
// nothing. Both methods are called on the loop's goroutine.
type AcceptGate interface {
	// Admit reserves room for the next connection. False leaves the
	// backlog alone: the loop stops polling its listener (PauseAccept),
	// and the gate calls Loop.ResumeAccept, through Loop.Post, once it has
	// room again.
	Admit(l *Loop) bool
	// Unadmit gives back a reservation that accept4 did not use (the
	// backlog was empty) or whose connection failed before Handler.Open.
	Unadmit(l *Loop)
}

// PauseAccept stops polling the listener: connections wait in the accept
// backlog until ResumeAccept. Loop goroutine only.
func (l *Loop) PauseAccept() {
	l.acceptPaused = true
	l.pollListener()
}

// ResumeAccept polls the listener again after PauseAccept; the backlog,
// level-triggered, wakes the loop at once. Loop goroutine only: from
// elsewhere, Post it.
func (l *Loop) ResumeAccept() {
	l.acceptPaused = false
	l.pollListener()
}

// pollListener puts the listener in the epoll set, or takes it out, to match
// the two reasons to stop polling it: the accept gate's (PauseAccept) and
// running out of descriptors with none spare (pauseListener, until the next
// tick). Either keeps it out; it comes back when neither holds.
func (l *Loop) pollListener() {
	want := l.lfd >= 0 && !l.acceptPaused && !l.lpaused
	if want == l.listening || l.ep == nil || (want && !l.accepting) {
		return
	}
	var err error
	if want {
		err = l.ep.Add(l.lfd, epoll.EPOLLIN, l.onAccept)
	} else {
		err = l.ep.Del(l.lfd)
	}
	if err != nil {
		if !errors.Is(err, epoll.ErrClosed) { // the loop is stopping: tasks posted meanwhile still run
			l.log.Error("epoll_ctl listener", "add", want, "err", err)
		}
		return
	}
	l.listening = want
}

// AcceptPaused reports whether the loop has stopped polling its listener.
// Loop goroutine only.
func (l *Loop) AcceptPaused() bool { return l.acceptPaused }
