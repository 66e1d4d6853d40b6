//go:build linux

package netpoll

// AfterFlush runs fn once on the loop's goroutine, right after the output
// queued in the current callback has been written (the writev of every
// connection that got output, see flushDirty). It is for measuring how long
// the loop took to get something onto the wire: a fan-out task that wants to
// know when its pushes left calls it. Loop goroutine only (a task or a
// Handler callback); fn must not queue output or call AfterFlush itself.
//
// A connection whose socket buffer is full is not written by that flush: its
// bytes go on EPOLLOUT, when the peer reads. fn does not wait for it.
func (l *Loop) AfterFlush(fn func()) { l.after = append(l.after, fn) }

// runAfter runs the functions AfterFlush queued, oldest first.
func (l *Loop) runAfter() {
	for i, fn := range l.after {
		fn()
		l.after[i] = nil
	}
	l.after = l.after[:0]
}
