//go:build !linux

package netpoll

// netpoll is built on Linux's epoll, eventfd, timerfd and accept4: there is
// no port to other systems, and wspush with it runs on Linux only. This
// deliberately undefined name makes a build elsewhere fail with one line that
// says so, rather than a list of undefined symbols.
var _ = netpoll_requires_Linux_epoll_eventfd_timerfd__wspush_runs_on_Linux_only
