package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wspush/wspush/internal/testsupport"
)

// postBatch POSTs body to path over the admin API with contentType and
// returns the status, the answer's Content-Type and its body.
func postBatch(t testing.TB, s *Server, path, contentType, body string, header ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.adminURL(path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s answer: %v", path, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// answerList decodes a JSON array answer into one compact JSON text per entry.
func answerList(t testing.TB, body string) []string {
	t.Helper()
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatalf("answer %q is not a JSON array: %v", body, err)
	}
	out := make([]string, len(raw))
	for i, r := range raw {
		out[i] = string(r)
	}
	return out
}

// wantAnswers checks the entries one by one: an entry starting with "error:"
// must be an error whose message starts with the rest; any other must equal
// the entry once its "epoch" (v1.1), which must be there, is removed. (A
// topic without subscribers takes a seq too: the Hub keeps its history.)
func wantAnswers(t testing.TB, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d answers, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		var m map[string]any
		if err := json.Unmarshal([]byte(got[i]), &m); err != nil {
			t.Fatalf("answer %d %q: %v", i, got[i], err)
		}
		if prefix, ok := strings.CutPrefix(want[i], "error:"); ok {
			msg, _ := m["error"].(string)
			if len(m) != 1 || !strings.HasPrefix(msg, prefix) {
				t.Errorf("answer %d is %s, want an error starting %q", i, got[i], prefix)
			}
			continue
		}
		if e, _ := m["epoch"].(string); e == "" {
			t.Errorf("answer %d %s has no epoch", i, got[i])
		}
		delete(m, "epoch")
		b, _ := json.Marshal(m)
		if string(b) != want[i] {
			t.Errorf("answer %d is %s, want %s", i, got[i], want[i])
		}
	}
}

func TestBatchAnswersEveryItemInOrder(t *testing.T) {
	s := startServer(t, Config{})
	a := dial(t, s, "/ws?topics=a")
	b := dial(t, s, "/ws?topics=b")
	testsupport.ReadJSON(t, a)
	testsupport.ReadJSON(t, b)
	body := "[" + strings.Join([]string{
		`{"topic":"a","data":1}`,
		`{"topic":"b","data":{"x":[1,2]}}`,
		`{"topic":"bad topic","data":1}`,
		`{"topic":"a"}`,
		`5`,
		`{"topic":7,"data":1}`,
		"{\"topic\":\"a\",\"data\":\"\xff\xfe\"}",
		"{\"topic\":\"\xff\",\"data\":1}",
		`{"topic":"nobody","data":null}`,
		`{"topic":"a","data":"last","extra":true}`,
	}, ",\n ") + "]"
	code, ctype, answer := postBatch(t, s, "/publish/batch", "application/json", body)
	if code != http.StatusOK || ctype != "application/json" {
		t.Fatalf("batch answered %d %s %s", code, ctype, answer)
	}
	wantAnswers(t, answerList(t, answer), []string{
		`{"seq":1,"subscribers":1,"topic":"a"}`,
		`{"seq":1,"subscribers":1,"topic":"b"}`,
		`error:invalid topic name "bad topic"`,
		`error:missing "data"`,
		`error:item is not a JSON object`,
		`error:"topic" must be a string`,
		`error:data is not valid UTF-8`,
		`error:invalid topic name`,
		`{"seq":1,"subscribers":0,"topic":"nobody"}`,
		`{"seq":2,"subscribers":1,"topic":"a"}`,
	})
	for _, want := range []string{"map[data:1 seq:1 topic:a]", "map[data:last seq:2 topic:a]"} {
		if got := fmt.Sprint(testsupport.ReadJSON(t, a)); got != want {
			t.Fatalf("a got %s, want %s", got, want)
		}
	}
	if got := fmt.Sprint(testsupport.ReadJSON(t, b)); got != "map[data:map[x:[1 2]] seq:1 topic:b]" {
		t.Fatalf("b got %s", got)
	}
	if got := testutil.ToFloat64(s.batch.items.WithLabelValues(outcomeError)); got != 6 {
		t.Errorf("wspush_batch_items_total{outcome=error} = %v, want 6", got)
	}
}

func TestBatchNDJSON(t *testing.T) {
	s := startServer(t, Config{})
	c := dial(t, s, "/ws?topics=n")
	testsupport.ReadJSON(t, c)
	body := "{\"topic\":\"n\",\"data\":\"one\"}\n\n  {not json\r\n{\"topic\":\"n\",\"data\":\"two\"}\r\n[1]\n{\"topic\":\"n\",\"data\":\"three\"}"
	code, ctype, answer := postBatch(t, s, "/publish/batch", "application/x-ndjson; charset=utf-8", body)
	if code != http.StatusOK || ctype != ndjsonType {
		t.Fatalf("batch answered %d %s %s", code, ctype, answer)
	}
	var got []string
	sc := bufio.NewScanner(strings.NewReader(answer))
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	wantAnswers(t, got, []string{
		`{"seq":1,"subscribers":1,"topic":"n"}`,
		`error:data is not valid JSON`,
		`{"seq":2,"subscribers":1,"topic":"n"}`,
		`error:item is not a JSON object`,
		`{"seq":3,"subscribers":1,"topic":"n"}`,
	})
	for i, want := range []string{"one", "two", "three"} {
		if m := testsupport.ReadJSON(t, c); m["data"] != want || m["seq"] != float64(i+1) {
			t.Fatalf("push %d is %v, want %s", i, m, want)
		}
	}
}

func TestBatchRefusedWhole(t *testing.T) {
	s := startServer(t, Config{MaxBatchItems: 3, MaxBatchBytes: 200, MaxMessage: 20})
	c := dial(t, s, "/ws?topics=r")
	testsupport.ReadJSON(t, c)
	item := `{"topic":"r","data":1}`
	tests := []struct {
		name, path, ctype, body string
		code                    int
		error                   string
	}{
		{"too many items", "/publish/batch", "application/json", "[" + strings.Repeat(item+",", 3) + item + "]", 413, "too many items"},
		{"too many lines", "/publish/batch", ndjsonType, strings.Repeat(item+"\n", 4), 413, "too many items"},
		{"body too large", "/publish/batch", "application/json", "[" + strings.Repeat(" ", 200) + item + "]", 413, "body larger than 200 bytes"},
		{"not an array", "/publish/batch", "application/json", item, 400, "malformed batch"},
		{"syntax error", "/publish/batch", "application/json", "[" + item + ",{]", 400, "malformed batch at item 1"},
		{"unclosed", "/publish/batch", "application/json", "[" + item, 400, "malformed batch"},
		{"after the array", "/publish/batch", "application/json", "[" + item + "] []", 400, "malformed batch: data after the array"},
		{"broadcast: too many topics", "/broadcast", "application/json", `{"topics":["r","a","b","c"],"data":1}`, 413, "more than 3 topics"},
		{"broadcast: data too large", "/broadcast", "application/json", `{"topics":["r"],"data":"` + strings.Repeat("x", 30) + `"}`, 413, "data larger than 20 bytes"},
		{"broadcast: no topics", "/broadcast", "application/json", `{"data":1}`, 400, `missing "topics"`},
		{"broadcast: no data", "/broadcast", "application/json", `{"topics":["r"]}`, 400, `missing "data"`},
		{"broadcast: bad UTF-8", "/broadcast", "application/json", "{\"topics\":[\"r\"],\"data\":\"\xff\"}", 400, "data is not valid UTF-8"},
		{"broadcast: malformed", "/broadcast", "application/json", `{"topics":["r"],"data":}`, 400, "malformed broadcast"},
		{"broadcast: too large", "/broadcast", "application/json", `{"topics":["r"],"data":1}` + strings.Repeat(" ", 200), 413, "body larger than 200 bytes"},
	}
	for _, tt := range tests {
		code, _, answer := postBatch(t, s, tt.path, tt.ctype, tt.body)
		var m map[string]string
		json.Unmarshal([]byte(answer), &m)
		if code != tt.code || !strings.HasPrefix(m["error"], tt.error) {
			t.Errorf("%s: answered %d %s, want %d %q", tt.name, code, answer, tt.code, tt.error)
		}
	}
	// Nothing of the refused batches was published: the next seq is 1.
	if code, res := publish(t, s, "r", "1"); code != 200 || res["seq"] != 1.0 {
		t.Fatalf("publish after the refused batches answered %d %v", code, res)
	}
	if got := testutil.ToFloat64(s.batch.requests.WithLabelValues(endpointBatch, outcomeTooLarge)); got != 3 {
		t.Errorf("wspush_batch_requests_total{endpoint=batch,outcome=too_large} = %v, want 3", got)
	}
}

func TestBatchGuard(t *testing.T) {
	s := startServer(t, Config{PublishToken: "sesame"})
	for _, path := range []string{"/publish/batch", "/broadcast"} {
		if code, _, answer := postBatch(t, s, path, "application/json", "[]"); code != http.StatusUnauthorized {
			t.Errorf("%s without the token answered %d %s", path, code, answer)
		}
		if code, _, answer := postBatch(t, s, path, "application/json", "[]", "Authorization", "Bearer wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token answered %d %s", path, code, answer)
		}
		req, _ := http.NewRequest(http.MethodGet, s.adminURL(path), nil)
		req.Header.Set("Authorization", "Bearer sesame")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
			t.Errorf("GET %s answered %d", path, resp.StatusCode)
		}
	}
	if code, _, answer := postBatch(t, s, "/publish/batch", "application/json", "[]", "Authorization", "Bearer sesame"); code != 200 || answer != "[]" {
		t.Errorf("an empty batch with the token answered %d %s", code, answer)
	}
	// With the token any Content-Type is taken (a backend), as for /publish.
	if code, _, answer := postBatch(t, s, "/publish/batch", "text/plain", "[]", "Authorization", "Bearer sesame"); code != 200 {
		t.Errorf("text/plain with the token answered %d %s", code, answer)
	}
	// Without a token only JSON (and NDJSON for batches): 415 like /publish.
	open := startServer(t, Config{})
	for _, tt := range []struct {
		path, ctype string
		code        int
	}{
		{"/publish/batch", "text/plain", 415},
		{"/publish/batch", "", 415},
		{"/publish/batch", "application/x-www-form-urlencoded", 415},
		{"/publish/batch", "application/json; charset=utf-8", 200},
		{"/publish/batch", ndjsonType, 200},
		{"/broadcast", ndjsonType, 415},
		{"/broadcast", "text/plain", 415},
	} {
		body := "[]"
		if tt.path == "/broadcast" {
			body = `{"topics":[],"data":1}`
		}
		code, _, answer := postBatch(t, open, tt.path, tt.ctype, body)
		if code != tt.code {
			t.Errorf("%s %q without a token answered %d %s, want %d", tt.path, tt.ctype, code, answer, tt.code)
		}
	}
}

func TestBroadcast(t *testing.T) {
	s := startServer(t, Config{})
	x := dial(t, s, "/ws?topics=x")
	y := dial(t, s, "/ws?topics=y,x")
	testsupport.ReadJSON(t, x)
	testsupport.ReadJSON(t, y)
	testsupport.ReadJSON(t, y)
	code, _, answer := postBatch(t, s, "/broadcast", "application/json", `{"topics":["x","y","x","bad topic","empty"],"data":{"alert":"<hi>"}}`)
	if code != http.StatusOK {
		t.Fatalf("broadcast answered %d %s", code, answer)
	}
	wantAnswers(t, answerList(t, answer), []string{
		`{"seq":1,"subscribers":2,"topic":"x"}`,
		`{"seq":1,"subscribers":1,"topic":"y"}`,
		`error:topic listed twice`,
		`error:invalid topic name`,
		`{"seq":1,"subscribers":0,"topic":"empty"}`,
	})
	if got := fmt.Sprint(testsupport.ReadJSON(t, x)); got != "map[data:map[alert:<hi>] seq:1 topic:x]" {
		t.Fatalf("x got %s", got)
	}
	// y holds both topics: one push of each, in the order published.
	for _, want := range []string{"x", "y"} {
		if m := testsupport.ReadJSON(t, y); m["topic"] != want || m["seq"] != 1.0 {
			t.Fatalf("y got %v, want topic %s seq 1", m, want)
		}
	}
}

// TestBatchesDeliverEveryMessageOnceInOrder posts batches from several
// publishers at once, with a single in-flight token so that the batches
// contend for it, and checks that every subscriber receives each of its
// topic's messages exactly once, in seq order, and that the answers' seqs
// match.
func TestBatchesDeliverEveryMessageOnceInOrder(t *testing.T) {
	const (
		topics     = 20
		publishers = 4
		batches    = 5
		perBatch   = 100 // items per batch, spread over the topics
	)
	s := startServer(t, Config{MaxInFlight: 1})
	subs := make([]*websocket.Conn, topics)
	for i := range subs {
		subs[i] = dial(t, s, fmt.Sprintf("/ws?topics=t%d", i))
		testsupport.ReadJSON(t, subs[i])
	}
	var wg sync.WaitGroup
	errs := make(chan error, publishers*batches)
	for p := range publishers {
		wg.Go(func() {
			for b := range batches {
				var body bytes.Buffer
				body.WriteByte('[')
				for i := range perBatch {
					if i > 0 {
						body.WriteByte(',')
					}
					fmt.Fprintf(&body, `{"topic":"t%d","data":{"p":%d,"b":%d,"i":%d}}`, i%topics, p, b, i)
				}
				body.WriteByte(']')
				resp, err := http.Post(s.adminURL("/publish/batch"), "application/json", &body)
				if err != nil {
					errs <- err
					return
				}
				var answers []struct {
					Topic string
					Seq   uint64
					Error string
				}
				err = json.NewDecoder(resp.Body).Decode(&answers)
				resp.Body.Close()
				if err != nil || len(answers) != perBatch {
					errs <- fmt.Errorf("publisher %d batch %d: %d answers, %v", p, b, len(answers), err)
					return
				}
				for i, a := range answers {
					if a.Error != "" || a.Topic != fmt.Sprintf("t%d", i%topics) || a.Seq == 0 {
						errs <- fmt.Errorf("publisher %d batch %d item %d answered %+v", p, b, i, a)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	perTopic := publishers * batches * perBatch / topics
	for i, c := range subs {
		seen := map[string]bool{}
		for seq := 1; seq <= perTopic; seq++ {
			m := testsupport.ReadJSON(t, c)
			if m["topic"] != fmt.Sprintf("t%d", i) || m["seq"] != float64(seq) {
				t.Fatalf("subscriber %d: push %v, want seq %d", i, m, seq)
			}
			key := fmt.Sprint(m["data"])
			if seen[key] {
				t.Fatalf("subscriber %d: %s received twice", i, key)
			}
			seen[key] = true
		}
	}
	if st := s.hub.Stats(); st.Published != publishers*batches*perBatch || st.Delivered != publishers*batches*perBatch {
		t.Fatalf("hub stats %+v, want %d published and delivered", st, publishers*batches*perBatch)
	}
}
