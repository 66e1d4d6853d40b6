//go:build race

package server

// raceDetector is set in race builds, where sync.Pool drops a share of what
// it is given on purpose: allocation counts there say nothing (gobwas/ws's
// pooled bufio buffers are remade now and then).
const raceDetector = true
