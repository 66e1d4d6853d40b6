package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is stamped by `make build` (-ldflags "-X main.version=..."); a
// plain `go build` leaves "dev" and the VCS revision Go records, if any.
var version = "dev"

// errVersionPrinted ends the run after -version has printed the version.
var errVersionPrinted = errors.New("version printed")

// printVersion writes "wspush VERSION (GOVERSION[, vcs REVISION])" to w.
func printVersion(w io.Writer) error {
	extra := ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				extra = ", vcs " + s.Value[:12]
			}
		}
	}
	fmt.Fprintf(w, "wspush %s (%s%s)\n", version, runtime.Version(), extra)
	return errVersionPrinted
}
