//go:build linux

package netpoll

// TasksPending is how many tasks are posted and not yet taken by the loop
// (Stats.Tasks, which -max-loop-tasks bounds). Safe from any goroutine.
func (l *Loop) TasksPending() int { return int(l.Stats.Tasks.Load()) }
