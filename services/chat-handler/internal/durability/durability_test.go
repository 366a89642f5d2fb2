package durability

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	varz := func(body string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) }))
		t.Cleanup(s.Close)
		return s.URL
	}
	always := varz(`{"jetstream":{"config":{"sync_interval":120000000000,"sync_always":true}}}`)
	lazy := varz(`{"jetstream":{"config":{"sync_interval":120000000000}}}`)
	noJS := varz(`{"server_id":"x"}`)
	tests := []struct {
		name     string
		mode     Mode
		replicas int
		monitor  string
		wantErr  string
	}{
		{"replicated with R3", Replicated, 3, "", ""},
		{"replicated with R1", Replicated, 1, "", "needs the CHAT stream to have 3 replicas"},
		{"fsync unverified", Fsync, 1, "", ""},
		{"fsync verified", Fsync, 1, always, ""},
		{"fsync on a lazy server", Fsync, 1, lazy, "does not fsync every write"},
		{"fsync without jetstream config", Fsync, 1, noJS, "no JetStream configuration"},
		{"none", None, 1, lazy, ""},
	}
	for _, tt := range tests {
		note, err := Check(context.Background(), tt.mode, tt.replicas, tt.monitor, nil)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
		case err == nil && note == "":
			t.Errorf("%s: no note for the log", tt.name)
		}
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]Mode{"": Fsync, "FSYNC": Fsync, " replicated ": Replicated, "none": None} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Parse("sometimes"); err == nil {
		t.Error(`Parse("sometimes") succeeded`)
	}
}
