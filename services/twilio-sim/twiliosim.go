// Package twiliosim is the Twilio emulator: Twilio's REST endpoints for
// Programmable Messaging and Conversations, webhooks signed and delivered the
// way Twilio sends them, and a /sim API that plays the customer's phone. The
// all-in-one binary and tests of other services start it with Run.
package twiliosim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/contract"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/sim"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/simapi"
)

// DefaultAddr is where the emulator listens unless told otherwise.
const DefaultAddr = "127.0.0.1:8089"

// Account configuration types, shared with the /sim API and simclient.
type (
	Account              = simapi.Account
	PhoneNumber          = simapi.PhoneNumber
	ConversationsService = simapi.ConversationsService
	MessagingService     = simapi.MessagingService
	ContentTemplate      = simapi.ContentTemplate
)

// Config configures the emulator.
type Config struct {
	// Addr is the listen address; DefaultAddr when empty.
	Addr     string
	Accounts []Account
	// ContractDir, when set, is a folder holding Twilio's OpenAPI documents
	// (twilio_api_v2010.json, twilio_conversations_v1.json): every REST
	// request and response is checked against them and violations are kept
	// for GET /sim/contract/violations.
	ContractDir string
	// ConversationsWebhookTimeout bounds each Conversations webhook request;
	// 5 s (Twilio's limit) when zero.
	ConversationsWebhookTimeout time.Duration
	// MessagingWebhookTimeout bounds each Messaging webhook and status
	// callback request; 15 s (Twilio's limit) when zero.
	MessagingWebhookTimeout time.Duration
	// WebhookRetries is how often a webhook is repeated after a connection
	// failure or timeout; 1 (Twilio's default) when zero, none when negative.
	WebhookRetries int
	// StatusDelay is the wait before each status change of an outbound
	// message; 100 ms when zero, none when negative.
	StatusDelay time.Duration
}

// Validate reports every problem in cfg at once.
func (c Config) Validate() error {
	var errs []error
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
		}
	}
	if err := sim.ValidateAccounts(c.Accounts); err != nil {
		errs = append(errs, err)
	}
	if c.ContractDir != "" {
		if st, err := os.Stat(c.ContractDir); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("contract dir %q is not a readable directory", c.ContractDir))
		}
	}
	if c.ConversationsWebhookTimeout < 0 || c.MessagingWebhookTimeout < 0 {
		errs = append(errs, errors.New("webhook timeouts must not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.ConversationsWebhookTimeout == 0 {
		c.ConversationsWebhookTimeout = 5 * time.Second
	}
	if c.MessagingWebhookTimeout == 0 {
		c.MessagingWebhookTimeout = 15 * time.Second
	}
	switch {
	case c.WebhookRetries == 0:
		c.WebhookRetries = 1
	case c.WebhookRetries < 0:
		c.WebhookRetries = 0
	}
	switch {
	case c.StatusDelay == 0:
		c.StatusDelay = 100 * time.Millisecond
	case c.StatusDelay < 0:
		c.StatusDelay = 0
	}
	return c
}

// Deps are things Run would otherwise build from Config.
type Deps struct {
	// Listener serves the emulator instead of listening on Config.Addr.
	Listener net.Listener
	// WebhookClient sends webhooks and status callbacks.
	WebhookClient *http.Client
}

// ReadAccountsFile loads accounts from a JSON or YAML file (by extension;
// .yaml and .yml are YAML) of the form {"accounts": [...]}.
func ReadAccountsFile(path string) ([]Account, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read accounts file %q: %w", path, err)
	}
	var f simapi.File
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		err = dec.Decode(&f)
	default:
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		err = dec.Decode(&f)
	}
	if err != nil {
		return nil, fmt.Errorf("parse accounts file %q: %w", path, err)
	}
	return f.Accounts, nil
}

// Run serves the emulator until ctx is cancelled, then shuts down and
// returns nil.
func Run(ctx context.Context, cfg Config, deps Deps, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("validate config: %w", err)
	}
	cfg = cfg.withDefaults()

	opts := sim.Options{
		Accounts:             cfg.Accounts,
		ConversationsTimeout: cfg.ConversationsWebhookTimeout,
		MessagingTimeout:     cfg.MessagingWebhookTimeout,
		WebhookRetries:       cfg.WebhookRetries,
		StatusDelay:          cfg.StatusDelay,
		WebhookClient:        deps.WebhookClient,
	}
	if cfg.ContractDir != "" {
		c, err := contract.Load(cfg.ContractDir, log)
		if err != nil {
			return fmt.Errorf("load contract: %w", err)
		}
		opts.Contract = c
	}
	engine := sim.New(opts, log)
	defer engine.Close()

	ln := deps.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen %q: %w", cfg.Addr, err)
		}
	}
	srv := &http.Server{Handler: engine.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.InfoContext(ctx, "twilio emulator listening", "addr", ln.Addr().String(), "accounts", len(cfg.Accounts), "contract", cfg.ContractDir != "")

	select {
	case err := <-errc:
		return fmt.Errorf("serve %q: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	log.InfoContext(ctx, "twilio emulator stopped")
	return nil
}
