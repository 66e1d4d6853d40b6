package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const dashboardFile = "deploy/grafana/wspush.json"

// dashboard is the part of a Grafana dashboard model the checks read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// dashboardDatasource is how every panel names its data source: the
// dashboard's datasource variable, so the file imports and provisions
// unchanged on any Grafana.
var dashboardDatasource = datasource{Type: "prometheus", UID: "${datasource}"}

// labelValues is a Grafana variable query, label_values(selector, label).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(repoFile(dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels lists the panels, those inside collapsed rows included.
func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// queries returns every PromQL expression of the dashboard, named for error
// messages: panel targets and the selectors of variable queries.
func (d dashboard) queries(t *testing.T) map[string]string {
	t.Helper()
	qs := map[string]string{}
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			qs[fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID)] = tg.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: query: %v", v.Name, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("variable %s: query %q is not label_values(selector, label)", v.Name, q.Query)
		}
		qs["variable "+v.Name] = m[1]
	}
	return qs
}

// TestDashboard checks the dashboard's model: a recent schema, the
// datasource variable used by every panel and query, unique panel ids,
// panels inside the 24-column grid, and the panels the issue asks for.
func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both needed for provisioning", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want 36 or later (datasource references by uid)", d.SchemaVersion)
	}
	hasDatasourceVar := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && string(v.Query) == `"prometheus"` {
			hasDatasourceVar = true
		}
		if v.Type == "query" && (v.Datasource == nil || *v.Datasource != dashboardDatasource) {
			t.Errorf("variable %s: datasource %+v, want %+v", v.Name, v.Datasource, dashboardDatasource)
		}
	}
	if !hasDatasourceVar {
		t.Error(`no "datasource" variable of type datasource for prometheus`)
	}
	ids := map[int]bool{}
	titles := map[string]bool{}
	for _, p := range d.allPanels() {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		titles[p.Title] = true
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %d %q: gridPos %+v outside the 24-column grid", p.ID, p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || *p.Datasource != dashboardDatasource {
			t.Errorf("panel %d %q: datasource %+v, want %+v", p.ID, p.Title, p.Datasource, dashboardDatasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %d %q: no query", p.ID, p.Title)
		}
		for _, tg := range p.Targets {
			if tg.RefID == "" || strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %d %q: target without refId or expr", p.ID, p.Title)
			}
			if tg.Datasource == nil || *tg.Datasource != dashboardDatasource {
				t.Errorf("panel %d %q target %s: datasource %+v", p.ID, p.Title, tg.RefID, tg.Datasource)
			}
		}
	}
	for _, want := range []string{"Connections", "Handshake failures by reason", "Deliveries/s", "CPU per delivery",
		"Slow-consumer drops", "bufferedAmount distribution", "Loop wake-ups/s", "Broker state",
		// the v1.1 load metrics
		"Push latency", "Push latency p50 / p99", "Connections per loop", "Tasks pending per loop"} {
		if !titles[want] {
			t.Errorf("panel %q missing", want)
		}
	}
}

// grafanaVariables are replaced by values Prometheus accepts, so promtool
// can parse the dashboard's queries.
var grafanaVariables = strings.NewReplacer(
	"${__rate_interval}", "5m", "$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
	"$job", ".*", "$instance", ".*",
)

// TestDashboardQueriesParse has Prometheus's own parser, through promtool,
// check every dashboard query: each becomes a recording rule in a file
// written for `promtool check rules`.
func TestDashboardQueriesParse(t *testing.T) {
	promtool := requiredTool(t, "promtool")
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for name, expr := range readDashboard(t).queries(t) {
		expr = grafanaVariables.Replace(expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: unknown Grafana variable in %q", name, expr)
		}
		n++
		q, _ := json.Marshal(expr) // a JSON string is a YAML string
		fmt.Fprintf(&b, "      - record: dashboard:query_%d\n        expr: %s\n", n, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard_rules.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, promtool, "check", "rules", path)
}
