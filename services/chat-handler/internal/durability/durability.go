// Package durability states and checks what makes a webhook event that
// chat-handler acknowledged to Twilio survive a crash or power loss.
package durability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Mode is chat-handler's durability requirement on the CHAT stream.
type Mode string

const (
	// Fsync: the NATS server fsyncs every write before the PubAck
	// (sync_interval: always). This is the default. chat-handler checks it
	// at start-up when it is given the server's monitoring URL.
	Fsync Mode = "fsync"
	// Replicated: the CHAT stream has at least MinReplicas replicas, so a
	// PubAck means a quorum of servers has the event. Checked at start-up.
	Replicated Mode = "replicated"
	// None: no requirement; acknowledged events can be lost on power loss.
	// For development and benchmarks only.
	None Mode = "none"
)

// MinReplicas is the replica count Replicated requires.
const MinReplicas = 3

// Parse reads a mode; empty is Fsync.
func Parse(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return Fsync, nil
	case Fsync, Replicated, None:
		return m, nil
	}
	return "", fmt.Errorf("durability %q: want fsync, replicated or none", s)
}

// Check verifies mode against the CHAT stream's replica count and, for
// Fsync with a monitorURL (the NATS server's http monitoring base), the
// server's sync_always setting. It returns a note for the start-up log
// saying what was and was not verified.
func Check(ctx context.Context, mode Mode, replicas int, monitorURL string, hc *http.Client) (string, error) {
	switch mode {
	case Replicated:
		if replicas < MinReplicas {
			return "", fmt.Errorf("durability replicated needs the CHAT stream to have %d replicas, it has %d", MinReplicas, replicas)
		}
		return fmt.Sprintf("CHAT stream has %d replicas: a PubAck means a quorum stored the event", replicas), nil
	case None:
		return "no durability requirement: events acknowledged to Twilio may be lost on power loss (development only)", nil
	}
	if monitorURL == "" {
		return "fsync per write is assumed, not verified: run NATS with sync_interval: always and set the monitoring URL to have it checked", nil
	}
	always, err := syncAlways(ctx, monitorURL, hc)
	if err != nil {
		return "", err
	}
	if !always {
		return "", fmt.Errorf("durability fsync: the NATS server at %s does not fsync every write; set jetstream sync_interval: always, or use durability replicated with R3", monitorURL)
	}
	return "NATS server fsyncs every write (sync_always verified)", nil
}

// syncAlways reads jetstream.config.sync_always from the server's /varz.
func syncAlways(ctx context.Context, monitorURL string, hc *http.Client) (bool, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	u := strings.TrimRight(monitorURL, "/") + "/varz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, fmt.Errorf("check durability at %q: %w", u, err)
	}
	res, err := hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("check durability at %q: %w", u, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return false, fmt.Errorf("check durability at %q: status %d", u, res.StatusCode)
	}
	var v struct {
		JetStream struct {
			Config *struct {
				SyncAlways bool `json:"sync_always"`
			} `json:"config"`
		} `json:"jetstream"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 4<<20)).Decode(&v); err != nil {
		return false, fmt.Errorf("check durability at %q: decode varz: %w", u, err)
	}
	if v.JetStream.Config == nil {
		return false, fmt.Errorf("check durability at %q: the server reports no JetStream configuration", u)
	}
	return v.JetStream.Config.SyncAlways, nil
}
