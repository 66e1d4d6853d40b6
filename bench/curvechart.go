package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
)

// The curve's picture: one SVG with two log-log panels, latency (p50 dashed,
// p99 solid) against the offered rate with the knee bound as a line, and
// the delivered rate against the offered rate beside it, with "delivered =
// offered" as the reference diagonal. It is inlined in the HTML report and
// written alone by WriteCurveSVG.

// logAxis maps [lo, hi] on a log10 scale to pixels [p0, p1].
type logAxis struct{ lo, hi, p0, p1 float64 }

func (a logAxis) at(v float64) float64 {
	v = math.Max(v, a.lo)
	return a.p0 + (math.Log10(v)-math.Log10(a.lo))/(math.Log10(a.hi)-math.Log10(a.lo))*(a.p1-a.p0)
}

// decades returns lo and hi widened to whole powers of ten.
func decades(lo, hi float64) (float64, float64) {
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi <= lo {
		hi = lo * 10
	}
	return lo, hi
}

// logTicks are 1, 2 and 5 times the powers of ten within [lo, hi].
func logTicks(lo, hi float64) []float64 {
	var out []float64
	for d := lo; d <= hi*1.0001; d *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if v := d * m; v <= hi*1.0001 {
				out = append(out, v)
			}
		}
	}
	return out
}

// tickLabel writes 0.5, 20, 500, 20k, 1M.
func tickLabel(v float64) string {
	if v >= 1e4 {
		return fmtShort(v)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

type curveLine struct {
	name   string
	color  string
	dashed bool
	pts    [][2]float64
}

// panel draws one log-log panel at x0 of width w.
func panel(b *strings.Builder, x0, w, top, h float64, title, ylabel string, x, y logAxis, lines []curveLine, hline float64, diagonal bool) {
	x.p0, x.p1 = x0, x0+w
	y.p0, y.p1 = top+h, top
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="13" font-weight="bold">%s</text>`, x0, top-10, html.EscapeString(title))
	fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#999"/>`, x0, top, w, h)
	for _, v := range logTicks(y.lo, y.hi) {
		py := y.at(v)
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`,
			x0, x0+w, py, py, x0-4, py+4, tickLabel(v))
	}
	for _, v := range logTicks(x.lo, x.hi) {
		px := x.at(v)
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`,
			px, px, top, top+h, px, top+h+14, tickLabel(v))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">offered deliveries/s (log)</text>`, x0+w/2, top+h+32)
	fmt.Fprintf(b, `<text transform="translate(%.1f %.1f) rotate(-90)" text-anchor="middle">%s</text>`, x0-48, top+h/2, html.EscapeString(ylabel))
	if hline > 0 {
		py := y.at(hline)
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="2 3"/><text x="%.1f" y="%.1f" fill="#666">%s ms</text>`,
			x0, x0+w, py, py, x0+4, py-3, fmtShort(hline))
	}
	if diagonal {
		lo, hi := math.Max(x.lo, y.lo), math.Min(x.hi, y.hi)
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="2 3"/>`, x.at(lo), x.at(hi), y.at(lo), y.at(hi))
	}
	for _, l := range lines {
		var pts strings.Builder
		for _, p := range l.pts {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x.at(p[0]), y.at(p[1]))
		}
		dash := ""
		if l.dashed {
			dash = ` stroke-dasharray="6 3"`
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.8"%s points="%s"/>`, l.color, dash, pts.String())
		for _, p := range l.pts {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`, x.at(p[0]), y.at(p[1]), l.color)
		}
	}
}

// curveSVG draws the curves of the results that have one; "" if none has.
func curveSVG(rs []*Result) string {
	type item struct {
		name string
		c    *Curve
	}
	var items []item
	for _, n := range expand(rs) {
		if n.r.Curve != nil && len(n.r.Curve.Steps) > 0 {
			items = append(items, item{n.name, n.r.Curve})
		}
	}
	if len(items) == 0 {
		return ""
	}
	xlo, xhi, ylo, yhi, dlo, dhi := math.Inf(1), 0.0, math.Inf(1), 0.0, math.Inf(1), 0.0
	var lat, del []curveLine
	bound := 0.0
	for i, it := range items {
		color := palette[i%len(palette)]
		var p50, p99, dr [][2]float64
		for _, s := range it.c.Steps {
			xlo, xhi = math.Min(xlo, s.Offered), math.Max(xhi, s.Offered)
			dlo, dhi = math.Min(dlo, s.Offered), math.Max(dhi, s.Offered)
			if s.DeliveredPerSec > 0 {
				dr = append(dr, [2]float64{s.Offered, s.DeliveredPerSec})
				dlo, dhi = math.Min(dlo, s.DeliveredPerSec), math.Max(dhi, s.DeliveredPerSec)
			}
			if l := s.Latency; l != nil {
				p50 = append(p50, [2]float64{s.Offered, math.Max(l.P50, 0.01)})
				p99 = append(p99, [2]float64{s.Offered, math.Max(l.P99, 0.01)})
				ylo, yhi = math.Min(ylo, math.Max(l.P50, 0.01)), math.Max(yhi, l.P99)
			}
		}
		bound = it.c.KneeP99
		knee := "none"
		if it.c.Knee > 0 {
			knee = fmtShort(it.c.Knee) + "/s"
		}
		lat = append(lat, curveLine{it.name + " p99 (knee " + knee + ")", color, false, p99}, curveLine{it.name + " p50", color, true, p50})
		del = append(del, curveLine{it.name + " delivered", color, false, dr})
	}
	if xhi <= 0 {
		return ""
	}
	if yhi <= 0 {
		ylo, yhi = 1, 1000
	}
	yhi = math.Max(yhi, bound)
	xa := logAxis{}
	xa.lo, xa.hi = decades(xlo, xhi)
	ya := logAxis{}
	ya.lo, ya.hi = decades(ylo, yhi)
	da := logAxis{}
	da.lo, da.hi = decades(dlo, dhi)
	const W, top, ph, pw, gap, ml = 880.0, 40.0, 300.0, 340.0, 90.0, 70.0
	legend := float64(len(lat)) * 16
	H := top + ph + 50 + legend
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`, W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%.0f" height="%.0f" fill="#fff"/>`, W, H)
	panel(&b, ml, pw, top, ph, "Latency from the due time vs offered rate", "ms (log)", xa, ya, lat, bound, false)
	panel(&b, ml+pw+gap, pw, top, ph, "Delivered vs offered", "delivered/s (log)", xa, da, del, 0, true)
	for i, l := range lat {
		ly := top + ph + 50 + float64(i)*16
		dash := ""
		if l.dashed {
			dash = ` stroke-dasharray="6 3"`
		}
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5"%s/><text x="%.0f" y="%.1f">%s</text>`,
			ml, ml+24, ly-4, ly-4, l.color, dash, ml+30, ly, html.EscapeString(l.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// WriteCurveSVG writes the curve picture of rs alone (an SVG file).
func WriteCurveSVG(w io.Writer, rs ...*Result) error {
	s := curveSVG(rs)
	if s == "" {
		return fmt.Errorf("no curve in the results")
	}
	_, err := io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+s)
	return err
}
