package main

import (
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wspush/wspush/server"
)

func TestEnvFillsFlagsNotGiven(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    string // -max-buffered after parsing
		wantErr bool
	}{
		{"default", nil, nil, "1024", false},
		{"from env", map[string]string{"WSPUSH_MAX_BUFFERED": "2048"}, nil, "2048", false},
		{"flag wins", map[string]string{"WSPUSH_MAX_BUFFERED": "2048"}, []string{"-max-buffered", "4096"}, "4096", false},
		{"bad env", map[string]string{"WSPUSH_MAX_BUFFERED": "lots"}, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			v := fs.Int("max-buffered", 1024, "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := applyEnv(fs)
			if (err != nil) != tt.wantErr {
				t.Fatalf("applyEnv: %v, want error %v", err, tt.wantErr)
			}
			if err == nil && fs.Lookup("max-buffered").Value.String() != tt.want {
				t.Fatalf("max-buffered %d, want %s", *v, tt.want)
			}
		})
	}
	if envName("handshake-timeout") != "WSPUSH_HANDSHAKE_TIMEOUT" {
		t.Fatal(envName("handshake-timeout"))
	}
}

// TestFlagDefaultsAreServerDefaults: with no flags and no environment the
// server runs with server.Defaults, field for field, and each list and
// duration flag lands in its Config field.
func TestFlagDefaultsAreServerDefaults(t *testing.T) {
	cfg, level, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := server.Defaults()
	cfg.Logger, want.Logger = nil, nil
	if !reflect.DeepEqual(cfg, want) || level != "info" {
		t.Fatalf("flag defaults\n%+v\nwant server.Defaults()\n%+v", cfg, want)
	}
	cfg, _, err = parseFlags([]string{"-close-timeout", "7s", "-allowed-origins", " https://a.example, ,https://b.example", "-loops", "3"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CloseTimeout != 7*time.Second || cfg.Loops != 3 ||
		!reflect.DeepEqual(cfg.AllowedOrigins, []string{"https://a.example", "https://b.example"}) {
		t.Fatalf("parsed %+v", cfg)
	}
}

func TestVersionFlag(t *testing.T) {
	_, _, err := parseFlags([]string{"-version"})
	if !errors.Is(err, errVersionPrinted) {
		t.Fatalf("parseFlags(-version): %v, want errVersionPrinted", err)
	}
}

func TestHistoryFlags(t *testing.T) {
	tests := []struct {
		args    []string
		off     bool
		size    int
		wantErr string
	}{
		{nil, false, 100, ""},
		{[]string{"-history-size", "0"}, true, 0, ""},
		{[]string{"-history-size", "7", "-history-ttl", "1m", "-history-max-bytes", "1000"}, false, 7, ""},
		{[]string{"-history-size", "-1"}, false, 0, "-history-size -1"},
		{[]string{"-history-ttl", "0s"}, false, 0, "-history-ttl 0s"},
		{[]string{"-history-max-bytes", "0"}, false, 0, "-history-max-bytes 0"},
	}
	for _, tt := range tests {
		cfg, _, err := parseFlags(tt.args)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: err %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || cfg.HistoryOff != tt.off || cfg.HistorySize != tt.size {
			t.Errorf("%v: off %v size %d err %v, want off %v size %d", tt.args, cfg.HistoryOff, cfg.HistorySize, err, tt.off, tt.size)
		}
	}
}
