package auth

import "testing"

func TestQueryToken(t *testing.T) {
	tests := []struct {
		target string
		want   string
		reason Reason
	}{
		{"/ws?token=abc.def.ghi", "abc.def.ghi", ""},
		{"/ws?topics=a,b&token=abc.def.ghi&x=1", "abc.def.ghi", ""},
		{"/ws?token=abc%2Edef.ghi", "abc.def.ghi", ""},
		{"/ws", "", ReasonMissing},
		{"/ws?topics=a", "", ReasonMissing},
		{"/ws?token=", "", ReasonMissing},
		{"/ws?tokens=abc", "", ReasonMissing},
		{"/ws?xtoken=abc", "", ReasonMissing},
		{"/ws?token", "", ReasonMissing},
		{"/ws?token=a&token=b", "", ReasonMalformed},
		{"/ws?token=%zz", "", ReasonMalformed},
	}
	for _, tt := range tests {
		got, err := QueryToken(tt.target)
		if got != tt.want || ReasonOf(err) != tt.reason {
			t.Errorf("QueryToken(%q) = %q, %v; want %q, %q", tt.target, got, err, tt.want, tt.reason)
		}
		gotb, err := QueryToken([]byte(tt.target))
		if string(gotb) != tt.want || ReasonOf(err) != tt.reason {
			t.Errorf("QueryToken([]byte %q) = %q, %v", tt.target, gotb, err)
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		value  string
		want   string
		reason Reason
	}{
		{"Bearer abc.def.ghi", "abc.def.ghi", ""},
		{"bearer   abc.def.ghi  ", "abc.def.ghi", ""},
		{"BEARER\tabc", "abc", ""},
		{"", "", ReasonMissing},
		{"  ", "", ReasonMissing},
		{"Bearer", "", ReasonMalformed},
		{"Bearer   ", "", ReasonMalformed},
		{"Bearerabc", "", ReasonMalformed},
		{"Basic dXNlcjpwYXNz", "", ReasonMalformed},
	}
	for _, tt := range tests {
		got, err := BearerToken(tt.value)
		if got != tt.want || ReasonOf(err) != tt.reason {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %q", tt.value, got, err, tt.want, tt.reason)
		}
		gotb, err := BearerToken([]byte(tt.value))
		if string(gotb) != tt.want || ReasonOf(err) != tt.reason {
			t.Errorf("BearerToken([]byte %q) = %q, %v", tt.value, gotb, err)
		}
	}
}

func TestRequestToken(t *testing.T) {
	tests := []struct {
		target, authorization string
		want                  string
		reason                Reason
	}{
		{"/ws?token=q", "", "q", ""},
		{"/ws", "Bearer h", "h", ""},
		{"/ws?topics=a", "Bearer h", "h", ""},
		{"/ws?token=q", "Bearer h", "", ReasonMalformed},
		{"/ws", "", "", ReasonMissing},
		{"/ws", "Basic x", "", ReasonMissing},
		{"/ws?token=q", "Basic dXNlcjpwYXNz", "q", ""},
		{"/ws?token=q", "Bearer", "", ReasonMalformed},
		{"/ws?token=q", "Bearerish x", "q", ""},
		{"/ws?token=a&token=b", "Bearer h", "", ReasonMalformed},
	}
	for _, tt := range tests {
		got, err := RequestToken(tt.target, tt.authorization)
		if got != tt.want || ReasonOf(err) != tt.reason {
			t.Errorf("RequestToken(%q, %q) = %q, %v; want %q, %q", tt.target, tt.authorization, got, err, tt.want, tt.reason)
		}
	}
}

// TestTokenExtractionNoAlloc: the server hands its handshake bytes over;
// finding the token in them must not copy.
func TestTokenExtractionNoAlloc(t *testing.T) {
	target := []byte("/ws?topics=a,b&token=abc.def.ghi")
	header := []byte("Bearer abc.def.ghi")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := QueryToken(target); err != nil {
			t.Fatal(err)
		}
		if _, err := BearerToken(header); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
}
