package main

import (
	"testing"

	"github.com/switchboard-cc/switchboard/pkg/mainrun"
	outboundsender "github.com/switchboard-cc/switchboard/services/outbound-sender"
)

func envOf(vars map[string]string) *mainrun.Env {
	return mainrun.EnvFrom(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
}

// OutboundService is served where GRPC_ADDR says, and on its default
// address when it is unset: a deployed outbound-sender answers sessions'
// opt-out and window checks. The documented sending limits are read too.
func TestConfigFromEnvironment(t *testing.T) {
	d := outboundsender.Defaults()
	if got := config(envOf(nil)).GRPCAddr; got != d.GRPCAddr || got == "" {
		t.Errorf("GRPCAddr without GRPC_ADDR = %q, want the default %q", got, d.GRPCAddr)
	}
	env := envOf(map[string]string{
		"GRPC_ADDR": "0.0.0.0:9093", "SMS_RATE": "3seg/s", "WHATSAPP_RATE": "80msg/s",
		"RATE_LIMITS": "connector:main=1seg/s", "TWILIO_RETRIES": "2", "MAX_CONCURRENT_CALLS": "8",
		"MAX_PENDING": "500", "SWITCHBOARD_AUTH_KEYS": "00",
	})
	cfg := config(env)
	if err := env.Err(); err != nil {
		t.Fatalf("env.Err() = %v", err)
	}
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"GRPCAddr", cfg.GRPCAddr, "0.0.0.0:9093"},
		{"SMSRate", cfg.SMSRate, "3seg/s"},
		{"WhatsAppRate", cfg.WhatsAppRate, "80msg/s"},
		{"RateLimits", cfg.RateLimits, "connector:main=1seg/s"},
		{"Retries", cfg.Retries, 2},
		{"MaxConcurrentCalls", cfg.MaxConcurrentCalls, 8},
		{"MaxPending", cfg.MaxPending, 500},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}
