package deploy

import (
	"os"
	"testing"

	"go.yaml.in/yaml/v2"
)

const (
	alertRules     = "deploy/prometheus/alerts.yml"
	alertRuleTests = "deploy/prometheus/alerts_test.yml"
)

// TestAlertRules runs promtool on the alert rules: the syntax and semantics
// check, then the unit tests in alerts_test.yml, which write input series and
// expect each alert firing (labels and annotations exact) or quiet.
func TestAlertRules(t *testing.T) {
	promtool := requiredTool(t, "promtool")
	run(t, promtool, "check", "rules", repoFile(alertRules))
	run(t, promtool, "test", "rules", repoFile(alertRuleTests))
}

// ruleFile is the part of a Prometheus rule file the checks read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(repoFile(alertRules))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.UnmarshalStrict(b, &rf); err != nil {
		t.Fatalf("%s: %v", alertRules, err)
	}
	return rf
}

// TestAlertRuleConventions checks what promtool does not: every rule pages
// with a known severity, waits with an explicit for:, and explains itself,
// and each rule promised by the issue is there.
func TestAlertRuleConventions(t *testing.T) {
	severities := map[string]bool{"warning": true, "critical": true}
	seen := map[string]bool{}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: rule %q is not an alert", g.Name, r.Record)
				continue
			}
			seen[r.Alert] = true
			if !severities[r.Labels["severity"]] {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, r.Labels["severity"])
			}
			if r.For == "" {
				t.Errorf("%s: no for:", r.Alert)
			}
			for _, a := range []string{"summary", "description"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
		}
	}
	// The list: slow-consumer drop rate, handshake failure ratio,
	// broker degraded, file-descriptor headroom, goroutine growth.
	for _, a := range []string{"WspushSlowConsumerDrops", "WspushHandshakeFailureRatio", "WspushBrokerDegraded",
		"WspushFileDescriptorsLow", "WspushGoroutineGrowth",
		// and those of the v1.1 load metrics
		"WspushLoopImbalance", "WspushLoopBacklog", "WspushPushLatencyHigh"} {
		if !seen[a] {
			t.Errorf("alert %s missing", a)
		}
	}
}
