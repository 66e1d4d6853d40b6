// Package haproxytest runs the real haproxy binary for tests: wspush's own
// deploy configuration or one generated from a few options (TLS
// termination, send-proxy or send-proxy-v2 to a backend, TCP or HTTP mode
// with WebSocket tunnels), on loopback sockets the test owns, stopped at the
// test's cleanup.
//
// Frontend sockets are created by the test process and inherited by haproxy
// (bind "fd@N"), so ports are chosen by the kernel once and never raced
// for. Start returns only when haproxy serves: it polls a monitor frontend
// the harness adds, within a timeout, and fails the test with haproxy's
// output if haproxy exits or does not answer.
//
// Without haproxy installed the tests skip, or fail when CI is set
// (scripts/test-deps.sh installs it).
package haproxytest
