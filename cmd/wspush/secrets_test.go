package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wspush/wspush/server"
)

// TestPublishTokenSources: the admin token comes from the flag, the
// environment or a file (its final newline dropped); flag and file together
// are refused.
func TestPublishTokenSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	os.WriteFile(file, []byte("from-file\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    string
		wantErr bool
	}{
		{"flag", nil, []string{"-publish-token", "from-flag"}, "from-flag", false},
		{"env", map[string]string{"WSPUSH_PUBLISH_TOKEN": "from-env"}, nil, "from-env", false},
		{"file", nil, []string{"-publish-token-file", file}, "from-file", false},
		{"file from env", map[string]string{"WSPUSH_PUBLISH_TOKEN_FILE": file}, nil, "from-file", false},
		{"flag and file", nil, []string{"-publish-token", "x", "-publish-token-file", file}, "", true},
		{"empty file", nil, []string{"-publish-token-file", empty}, "", true},
		{"missing file", nil, []string{"-publish-token-file", filepath.Join(dir, "nope")}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, _, err := parseFlags(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseFlags: %v, want error %v", err, tt.wantErr)
			}
			if err == nil && cfg.PublishToken != tt.want {
				t.Fatalf("token %q, want %q", cfg.PublishToken, tt.want)
			}
		})
	}
}

// TestSecretsRedacted: errors never quote the admin token or the password of
// a broker URL, even when the error below them does (url.Parse quotes the
// URL it could not parse).
func TestSecretsRedacted(t *testing.T) {
	cfg := server.Defaults()
	cfg.PublishToken = "tok-123"
	cfg.Broker = "nats://alice:pw-456@host:bad,nats://s3cr3t@other:4222"
	err := redactErr(errors.New(`parse "nats://alice:pw-456@host:bad": invalid port; token tok-123; nats://s3cr3t@other:4222`), cfg)
	for _, secret := range []string{"tok-123", "pw-456", "s3cr3t"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%q still in %q", secret, err)
		}
	}
	// A broker URL that does not even parse, with its password, through
	// the real start-up path.
	cfg = server.Defaults()
	cfg.Listen, cfg.Admin, cfg.Broker = "127.0.0.1:0", "", "nats://alice:pw-789@host:bad"
	_, err = server.New(cfg)
	if err == nil {
		t.Fatal("a broker URL with a bad port was accepted")
	}
	if got := redactErr(err, cfg).Error(); strings.Contains(got, "pw-789") {
		t.Errorf("start-up error quotes the broker password: %s", got)
	}
}
