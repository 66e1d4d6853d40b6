package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// The HTML report: one self-contained page, charts drawn here as inline SVG.

type series struct {
	name string
	pts  [][2]float64
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// pctX maps a percentile to the x axis of a percentile curve: log10(1/(1-p)).
func pctX(p float64) float64 {
	if p >= 99.999 {
		return 5
	}
	return math.Log10(100 / (100 - p))
}

// svgChart draws line series. With pct, x values are percentiles.
func svgChart(b *strings.Builder, title, xlabel, ylabel string, ss []series, pct bool) {
	const W, H, ml, mr, mt, mb = 760.0, 320.0, 70.0, 160.0, 30.0, 45.0
	pw, ph := W-ml-mr, H-mt-mb
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	n := 0
	for _, s := range ss {
		for _, p := range s.pts {
			x := p[0]
			if pct {
				x = pctX(x)
			}
			xmin, xmax, ymax = math.Min(xmin, x), math.Max(xmax, x), math.Max(ymax, p[1])
			n++
		}
	}
	if n == 0 {
		return
	}
	if pct {
		xmin, xmax = 0, 5
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	if ymax <= 0 {
		ymax = 1
	}
	ymax = niceCeil(ymax)
	sx := func(x float64) float64 { return ml + (x-xmin)/(xmax-xmin)*pw }
	sy := func(y float64) float64 { return mt + ph - y/ymax*ph }
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`, W, H, W, H)
	fmt.Fprintf(b, `<text x="%.0f" y="18" font-size="13" font-weight="bold">%s</text>`, ml, html.EscapeString(title))
	fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#999"/>`, ml, mt, pw, ph)
	for i := 0; i <= 4; i++ {
		y := ymax * float64(i) / 4
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`,
			ml, ml+pw, sy(y), sy(y), ml-4, sy(y)+4, fmtShort(y))
	}
	if pct {
		for i, l := range []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"} {
			x := sx(float64(i))
			fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`,
				x, x, mt, mt+ph, x, mt+ph+14, l)
		}
	} else {
		for i := 0; i <= 5; i++ {
			v := xmin + (xmax-xmin)*float64(i)/5
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, sx(v), mt+ph+14, fmtNum(v))
		}
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, ml+pw/2, H-8, html.EscapeString(xlabel))
	fmt.Fprintf(b, `<text transform="translate(14 %.1f) rotate(-90)" text-anchor="middle">%s</text>`, mt+ph/2, html.EscapeString(ylabel))
	for i, s := range ss {
		color := palette[i%len(palette)]
		var pts strings.Builder
		for _, p := range s.pts {
			x := p[0]
			if pct {
				x = pctX(x)
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", sx(x), sy(p[1]))
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>`, color, pts.String())
		ly := mt + 10 + float64(i)*16
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/><text x="%.1f" y="%.1f">%s</text>`,
			ml+pw+10, ml+pw+28, ly, ly, color, ml+pw+32, ly+4, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
}

// fmtShort formats axis labels: 1.5k, 2M.
func fmtShort(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strings.TrimSuffix(fmt.Sprintf("%.2f", v/1e6), ".00") + "M"
	case a >= 1e4:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", v/1e3), ".0") + "k"
	}
	return fmtNum(v)
}

func niceCeil(v float64) float64 {
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

// named is a result with its legend name.
type named struct {
	name string
	r    *Result
}

func expand(rs []*Result) []named {
	var out []named
	for _, r := range rs {
		name := r.Label
		if name == "" {
			name = r.Scenario
		}
		if r.Baseline != nil {
			out = append(out, named{name + " no slow", r.Baseline}, named{name + " slow", r})
			continue
		}
		out = append(out, named{name, r})
	}
	return out
}

func writeCharts(b *strings.Builder, rs []*Result) {
	b.WriteString(curveSVG(rs))
	ns := expand(rs)
	curve := func(title string, get func(*Result) *Latency) {
		var ss []series
		for _, n := range ns {
			if l := get(n.r); l != nil {
				ss = append(ss, series{n.name, l.Curve})
			}
		}
		svgChart(b, title, "percentile", "ms", ss, true)
	}
	curve("Publish-to-deliver latency by percentile", func(r *Result) *Latency { return r.Latency })
	curve("Handshake latency by percentile", func(r *Result) *Latency { return r.Handshake })
	curve("Churn cycle latency by percentile", func(r *Result) *Latency { return r.Cycle })
	over := func(title, ylabel string, get func(Sample) float64) {
		var ss []series
		for _, r := range rs {
			var s series
			s.name = r.Label
			if s.name == "" {
				s.name = r.Scenario
			}
			nz := false
			for _, t := range r.Timeline {
				v := get(t)
				nz = nz || v != 0
				s.pts = append(s.pts, [2]float64{t.T, v})
			}
			if nz {
				ss = append(ss, s)
			}
		}
		svgChart(b, title, "seconds", ylabel, ss, false)
	}
	over("Open connections", "connections", func(s Sample) float64 { return float64(s.Open) })
	over("Deliveries per second", "deliveries/s", func(s Sample) float64 { return s.DeliveriesPerSec })
	over("Churn cycles per second", "cycles/s", func(s Sample) float64 { return s.CyclesPerSec })
	over("Server RSS", "MiB", func(s Sample) float64 { return float64(s.RSS) / (1 << 20) })
	over("Server CPU", "cores", func(s Sample) float64 { return s.ServerCPU })
}

const reportHead = `<!doctype html><html><head><meta charset="utf-8"><title>%s</title><style>
body{font-family:sans-serif;margin:24px;color:#222}pre{background:#f6f6f6;padding:10px;overflow:auto}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}
td:first-child{text-align:left}svg{display:block;margin:12px 0}</style></head><body><h1>%s</h1>
`

// WriteHTML writes a report for single runs.
func WriteHTML(w io.Writer, title string, rs ...*Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, reportHead, html.EscapeString(title), html.EscapeString(title))
	for _, r := range rs {
		var t strings.Builder
		r.WriteTable(&t)
		fmt.Fprintf(&b, "<pre>%s</pre>\n", html.EscapeString(t.String()))
	}
	writeCharts(&b, rs)
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteHTML writes a report for a comparison.
func (c *Comparison) WriteHTML(w io.Writer, title string) error {
	var b strings.Builder
	fmt.Fprintf(&b, reportHead, html.EscapeString(title), html.EscapeString(title))
	fmt.Fprintf(&b, "<h2>%s: A/B over %d rounds</h2>\n<table><tr><th>figure</th><th>unit</th><th>better</th><th>median A</th><th>median B</th><th>A/B per round</th><th>median A/B</th></tr>\n", html.EscapeString(c.Scenario), c.Rounds)
	for _, f := range c.Figures {
		var rs []string
		for _, r := range f.Ratios {
			rs = append(rs, fmt.Sprintf("%.2f", r))
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td><b>%.2f</b></td></tr>\n",
			html.EscapeString(f.Name), f.Unit, f.Better, fmtNum(f.MedianA), fmtNum(f.MedianB), strings.Join(rs, " "), f.MedianRatio)
	}
	b.WriteString("</table>\n")
	all := append(append([]*Result(nil), c.A...), c.B...)
	writeCharts(&b, all)
	for _, r := range all {
		var t strings.Builder
		r.WriteTable(&t)
		fmt.Fprintf(&b, "<pre>%s</pre>\n", html.EscapeString(t.String()))
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
