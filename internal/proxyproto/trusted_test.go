package proxyproto

import (
	"net/netip"
	"testing"
)

func TestParseTrusted(t *testing.T) {
	tests := []struct {
		list    string
		want    string
		wantErr bool
	}{
		{list: "10.0.0.0/8", want: "10.0.0.0/8"},
		{list: " 10.0.0.0/8 , 192.168.1.7,2001:db8::/32,", want: "10.0.0.0/8,192.168.1.7/32,2001:db8::/32"},
		{list: "10.1.2.3/8", want: "10.0.0.0/8"},
		{list: "::1", want: "::1/128"},
		{list: "0.0.0.0/0", want: "0.0.0.0/0"},
		{list: "", wantErr: true},
		{list: " , ", wantErr: true},
		{list: "10.0.0.0/33", wantErr: true},
		{list: "10.0.0/8", wantErr: true},
		{list: "lb.example.com", wantErr: true},
		{list: "fe80::1%eth0", wantErr: true},
		{list: "10.0.0.0/8;192.168.0.0/16", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseTrusted(tt.list)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseTrusted(%q) error = %v, want error %v", tt.list, err, tt.wantErr)
			continue
		}
		if err == nil && got.String() != tt.want {
			t.Errorf("ParseTrusted(%q) = %q, want %q", tt.list, got, tt.want)
		}
	}
}

func TestTrustedContains(t *testing.T) {
	tr, err := ParseTrusted("10.0.0.0/8,192.168.1.7,2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		peer string
		want bool
	}{
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"11.0.0.1", false},
		{"192.168.1.7", true},
		{"192.168.1.8", false},
		{"::ffff:10.1.2.3", true}, // IPv4 peer on a dual-stack socket
		{"::ffff:11.1.2.3", false},
		{"2001:db8::5", true},
		{"2001:db9::5", false},
		{"::1", false},
	}
	for _, tt := range tests {
		if got := tr.Contains(netip.MustParseAddr(tt.peer)); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.peer, got, tt.want)
		}
	}
	if tr.Contains(netip.Addr{}) {
		t.Error("Contains(zero Addr) = true")
	}
	if (Trusted{}).Contains(netip.MustParseAddr("10.0.0.1")) {
		t.Error("zero Trusted trusts a peer")
	}
	p := tr.Prefixes()
	p[0] = netip.MustParsePrefix("0.0.0.0/0")
	if tr.Contains(netip.MustParseAddr("11.0.0.1")) {
		t.Error("Prefixes returned the Trusted's own slice")
	}
}
