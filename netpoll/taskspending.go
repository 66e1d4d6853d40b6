//go:build linux

package netpoll

// TasksPending is how many tasks are posted and not yet taken by the loop.
// Safe from any goroutine: it takes the lock Post takes, so it is for
// metrics and the admin page, not for every post.
func (l *Loop) TasksPending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tasks)
}
