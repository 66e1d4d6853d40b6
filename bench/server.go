package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// ServerSample is one observation of the server process and its /metrics.
// Fields are zero when unknown.
type ServerSample struct {
	At         time.Time `json:"at"`
	RSS        int64     `json:"rss_bytes"`
	Threads    int       `json:"threads"`
	CPUSeconds float64   `json:"cpu_seconds"`
	// From /metrics; negative when the metric is absent.
	Goroutines    float64 `json:"goroutines"`
	HeapInuse     float64 `json:"heap_inuse_bytes"`
	StackInuse    float64 `json:"stack_inuse_bytes"`
	Connections   float64 `json:"connections"`
	SlowDropped   float64 `json:"slow_dropped"`
	Delivered     float64 `json:"delivered"`
	HandshakesTot float64 `json:"handshakes"`
}

// observer samples a server: /proc for pid > 0, /metrics when admin is set.
type observer struct {
	pid    int
	admin  string
	client *http.Client
}

const clockTicks = 100 // USER_HZ on Linux

func (o *observer) sample(ctx context.Context) ServerSample {
	s := ServerSample{At: time.Now(), Goroutines: -1, HeapInuse: -1, StackInuse: -1, Connections: -1, SlowDropped: -1, Delivered: -1, HandshakesTot: -1}
	if o.pid > 0 {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", o.pid)); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				k, v, _ := strings.Cut(line, ":")
				f := strings.Fields(v)
				if len(f) == 0 {
					continue
				}
				switch k {
				case "VmRSS":
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					s.RSS = kb << 10
				case "Threads":
					s.Threads, _ = strconv.Atoi(f[0])
				}
			}
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", o.pid)); err == nil {
			// Fields after the parenthesised command name; utime and stime are fields 14 and 15.
			if i := bytes.LastIndexByte(b, ')'); i > 0 {
				f := strings.Fields(string(b[i+1:]))
				if len(f) > 13 {
					ut, _ := strconv.ParseFloat(f[11], 64)
					st, _ := strconv.ParseFloat(f[12], 64)
					s.CPUSeconds = (ut + st) / clockTicks
				}
			}
		}
	}
	if o.admin != "" {
		if m, err := o.metrics(ctx); err == nil {
			get := func(name string) float64 {
				if v, ok := m[name]; ok {
					return v
				}
				return -1
			}
			s.Goroutines = get("go_goroutines")
			s.HeapInuse = get("go_memstats_heap_inuse_bytes")
			s.StackInuse = get("go_memstats_stack_inuse_bytes")
			s.Connections = get("wspush_connections")
			s.SlowDropped = get("wspush_slow_consumers_dropped_total")
			s.Delivered = get("wspush_messages_delivered_total")
			s.HandshakesTot = get("wspush_handshakes_total")
		}
	}
	return s
}

// warm scrapes /metrics once and drops the answer, before the first sample:
// the server's first scrape costs it memory of its own (the admin
// connection's goroutine and buffers, the collectors' first gathering, about
// 0.8 MiB of RSS here), which would otherwise count as the connections'
// between the RSS before a ramp and after it.
func (o *observer) warm(ctx context.Context) {
	if o.admin != "" {
		o.metrics(ctx)
	}
}

// metrics reads /metrics; series with labels are summed under their name.
func (o *observer) metrics(ctx context.Context) (m map[string]float64, err error) {
	err = o.scrape(ctx, func(r io.Reader) error {
		m, err = parseMetrics(r)
		return err
	})
	return m, err
}

// scrape GETs the server's /metrics and hands the body to read.
func (o *observer) scrape(ctx context.Context, read func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.admin+"/metrics", nil)
	if err != nil {
		return fmt.Errorf("metrics request: %w", err)
	}
	// Uncompressed: the observer is on loopback, and a gzip answer makes the
	// server under measurement build a compressor (about 1 MiB, its RSS
	// for a while) between the RSS samples it is judged by.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := o.client.Do(req)
	if err != nil {
		return fmt.Errorf("get metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("get metrics: status %d", resp.StatusCode)
	}
	return read(resp.Body)
}

func parseMetrics(r io.Reader) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			// labels may hold spaces: take the value after the closing brace
			j := strings.IndexByte(line, '}')
			if j < 0 {
				continue
			}
			name, rest = line[:i], line[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		m[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return m, nil
}
