package testsupport

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Publish POSTs body to topic on the admin API at adminAddr (host:port), as
// a backend sends it, with the header lines given as name, value pairs,
// and returns the status and the decoded JSON answer; it fails the test
// when there is no JSON answer.
func Publish(tb testing.TB, adminAddr, topic, body string, header ...string) (int, map[string]any) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+adminAddr+"/publish?topic="+topic, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	// A browser cannot send application/json across sites without a
	// preflight (server's TestPublishFromBrowserContextRefused): a backend's
	// request is what the tests send.
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		tb.Fatalf("publish answer: %v", err)
	}
	return resp.StatusCode, m
}
