//go:build !race

package server

// raceDetector is set in race builds (see race_test.go).
const raceDetector = false
