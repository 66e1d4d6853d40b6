package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/wspush/wspush/server"
)

// secretFlags are the flags whose values are never shown: in errors, in
// logs, anywhere.
var secretFlags = map[string]bool{"publish-token": true, "broker": true}

// redacted stands for a secret in what the process prints.
const redacted = "[redacted]"

// readSecretFile reads a secret kept in a file (a Kubernetes or Docker
// secret, a file only the service user reads): its content without the
// surrounding blanks and final newline.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// secretsOf lists the secrets a configuration holds: the admin token and
// the credentials in broker URLs (nats://user:password@host, nats://token@host).
func secretsOf(cfg server.Config) []string {
	var out []string
	if cfg.PublishToken != "" {
		out = append(out, cfg.PublishToken)
	}
	for _, u := range strings.Split(cfg.Broker, ",") {
		_, rest, ok := strings.Cut(u, "://")
		if !ok {
			continue
		}
		rest, _, _ = strings.Cut(rest, "/")
		if at := strings.LastIndexByte(rest, '@'); at > 0 {
			userinfo := rest[:at]
			out = append(out, userinfo)
			if _, pass, ok := strings.Cut(userinfo, ":"); ok && pass != "" {
				out = append(out, pass)
			}
		}
	}
	return out
}

// redactErr is err with every secret of cfg replaced: errors from below
// (url.Parse of a broker URL...) may quote them.
func redactErr(err error, cfg server.Config) error {
	msg := err.Error()
	secrets := secretsOf(cfg)
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, redacted)
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}
