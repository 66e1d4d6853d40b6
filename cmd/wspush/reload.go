package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/wspush/wspush/server"
)

// reloadOnHUP reloads the TLS certificate on every SIGHUP, for the life of
// the process. A bad pair keeps the old one; Server.ReloadTLS logs it.
func reloadOnHUP(srv *server.Server, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	for range hup {
		log.Info("SIGHUP: reloading the TLS certificate")
		srv.ReloadTLS()
	}
}
