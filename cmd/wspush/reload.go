package main

import (
	"log/slog"
	"os"

	"github.com/wspush/wspush/server"
)

// reloadOnHUP reloads the TLS certificate on every SIGHUP that hup
// delivers, for the life of the process. A bad pair keeps the old one;
// Server.ReloadTLS logs it.
func reloadOnHUP(srv *server.Server, hup <-chan os.Signal, log *slog.Logger) {
	for range hup {
		log.Info("SIGHUP: reloading the TLS certificate")
		srv.ReloadTLS()
	}
}
