package mainrun

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestEnvCollectsEveryProblem(t *testing.T) {
	vars := map[string]string{"A": "x", "N": "nope", "D": "5", "B": "maybe", "L": " a, b ,,c ", "OK": "90s"}
	e := &Env{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
	if got := e.String("A", "d"); got != "x" {
		t.Errorf("String = %q", got)
	}
	if got := e.String("MISSING", "d"); got != "d" {
		t.Errorf("String default = %q", got)
	}
	if got := e.Duration("OK", 0); got != 90*time.Second {
		t.Errorf("Duration = %v", got)
	}
	e.Int("N", 1)
	e.Duration("D", time.Second)
	e.Bool("B", false)
	if got := e.List("L", nil); len(got) != 3 || got[0] != "a" || got[2] != "c" {
		t.Errorf("List = %q", got)
	}
	err := e.Err()
	if err == nil {
		t.Fatal("Err() = nil, want three problems")
	}
	for _, want := range []string{`N="nope"`, `D="5"`, `B="maybe"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Err() = %q, missing %s", err, want)
		}
	}
}

func TestHealthEndpoint(t *testing.T) {
	stop, err := startHealth("")
	if err != nil {
		t.Fatalf("startHealth(\"\") = %v, want nothing served", err)
	}
	stop()
	if _, err := startHealth("not an address"); err == nil {
		t.Error("startHealth(bad address) = nil error")
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop = serveHealth(lis)
	url := "http://" + lis.Addr().String()
	for _, tt := range []struct {
		path string
		want int
	}{{"/healthz", http.StatusOK}, {"/other", http.StatusNotFound}} {
		resp, err := http.Get(url + tt.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.path, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s = %d, want %d", tt.path, resp.StatusCode, tt.want)
		}
	}
	stop()
	if resp, err := http.Get(url + "/healthz"); err == nil {
		_ = resp.Body.Close()
		t.Error("GET /healthz after stop answered, want the listener closed")
	}
}

func TestMetricsAddr(t *testing.T) {
	for _, tc := range []struct{ set, def, want string }{
		{"", "", ""},
		{"", "127.0.0.1:9464", "127.0.0.1:9464"},
		{"0.0.0.0:9464", "", "0.0.0.0:9464"},
		{"off", "127.0.0.1:9464", ""},
	} {
		e := EnvFrom(func(k string) (string, bool) { return tc.set, k == "METRICS_ADDR" && tc.set != "" })
		if got := MetricsAddr(e, tc.def); got != tc.want {
			t.Errorf("METRICS_ADDR=%q default %q: %q, want %q", tc.set, tc.def, got, tc.want)
		}
	}
}
