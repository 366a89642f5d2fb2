package deploy_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instrumentRe finds the services' instruments (pkg/telemetry.Meter).
var instrumentRe = regexp.MustCompile(`\.(Counter|UpDown|Seconds|Gauge|FloatGauge)\(\s*"(switchboard\.[a-z_.]+)"`)

// exposed is every metric name the services serve on /metrics, as the
// Prometheus exporter names them.
func exposed(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, root := range []string{"../pkg", "../services"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range instrumentRe.FindAllStringSubmatch(string(b), -1) {
				n := strings.ReplaceAll(m[2], ".", "_")
				switch m[1] {
				case "Counter":
					n += "_total"
				case "Seconds", "FloatGauge":
					n += "_seconds"
				}
				names[n] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %d instruments: %v", len(names), names)
	}
	return names
}

var metricRefRe = regexp.MustCompile(`switchboard_[a-z_]+`)

// The alert rules, the Grafana dashboard and docs/operate.md name only
// metrics the services serve.
func TestMetricNamesExist(t *testing.T) {
	names := exposed(t)
	dash, err := os.ReadFile("components/service-monitor/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &d); err != nil || len(d.Panels) == 0 {
		t.Fatalf("dashboard.json: %v (%d panels)", err, len(d.Panels))
	}
	for _, f := range []string{"components/service-monitor/alerts.yaml", "components/service-monitor/dashboard.json", "../docs/operate.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		refs := 0
		for _, ref := range metricRefRe.FindAllString(string(b), -1) {
			base := ref
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				base = strings.TrimSuffix(base, suffix)
			}
			refs++
			if !names[base] {
				t.Errorf("%s names %s, which no service serves", f, ref)
			}
		}
		if refs == 0 {
			t.Errorf("%s names no switchboard_ metric", f)
		}
	}
}
