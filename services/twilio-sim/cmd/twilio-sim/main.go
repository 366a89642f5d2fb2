// Command twilio-sim runs the Twilio emulator on its own.
//
// Environment:
//
//	TWILIO_SIM_ADDR                   listen address (default 127.0.0.1:8089)
//	TWILIO_SIM_ACCOUNTS_FILE          accounts file, JSON or YAML ({"accounts": [...]})
//	TWILIO_SIM_CONTRACT_DIR           folder with Twilio's OpenAPI documents: strict contract mode
//	TWILIO_SIM_STATUS_DELAY           wait before each status change (Go duration, default 100ms)
//	TWILIO_SIM_CONVERSATIONS_TIMEOUT  Conversations webhook timeout (default 5s)
//	TWILIO_SIM_MESSAGING_TIMEOUT      Messaging webhook timeout (default 15s)
//	TWILIO_SIM_WEBHOOK_RETRIES        retries after a connection failure (default 1, -1 for none)
//	TWILIO_SIM_LOG_LEVEL              debug, info, warn or error (default info)
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	twiliosim "github.com/switchboard-cc/switchboard/services/twilio-sim"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(os.Getenv("TWILIO_SIM_LOG_LEVEL"))}))
	if err := run(log); err != nil {
		log.Error("twilio-sim stopped", "error", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	cfg, err := configFromEnv()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return twiliosim.Run(ctx, cfg, twiliosim.Deps{}, log)
}

func configFromEnv() (twiliosim.Config, error) {
	cfg := twiliosim.Config{
		Addr:        os.Getenv("TWILIO_SIM_ADDR"),
		ContractDir: os.Getenv("TWILIO_SIM_CONTRACT_DIR"),
	}
	var errs []error
	if path := os.Getenv("TWILIO_SIM_ACCOUNTS_FILE"); path != "" {
		accounts, err := twiliosim.ReadAccountsFile(path)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.Accounts = accounts
	}
	durations := []struct {
		env string
		dst *time.Duration
	}{
		{"TWILIO_SIM_STATUS_DELAY", &cfg.StatusDelay},
		{"TWILIO_SIM_CONVERSATIONS_TIMEOUT", &cfg.ConversationsWebhookTimeout},
		{"TWILIO_SIM_MESSAGING_TIMEOUT", &cfg.MessagingWebhookTimeout},
	}
	for _, d := range durations {
		if v := os.Getenv(d.env); v != "" {
			parsed, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("parse %s %q: %w", d.env, v, err))
			}
			*d.dst = parsed
		}
	}
	if v := os.Getenv("TWILIO_SIM_WEBHOOK_RETRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("parse TWILIO_SIM_WEBHOOK_RETRIES %q: %w", v, err))
		}
		cfg.WebhookRetries = n
	}
	return cfg, errors.Join(errs...)
}

func logLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
