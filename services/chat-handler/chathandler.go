// Package chathandler runs chat-handler, the only door from Twilio into
// Switchboard: it validates webhook signatures, routes each webhook to its
// tenant and messaging entry, and publishes customer messages and delivery
// updates on the CHAT stream before answering Twilio.
package chathandler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"google.golang.org/grpc"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/connect"
	"github.com/switchboard-cc/switchboard/pkg/httpserver"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/route"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook"
)

// Name is the service name.
const Name = "chat-handler"

// Config of chat-handler.
type Config struct {
	HTTPAddr   string
	NATSURL    string
	ConfigAddr string
	AuthKeys   string
	// PublicBaseURL is the scheme://host[:port] configured in Twilio, used
	// to check signatures. Empty: rebuilt from each request.
	PublicBaseURL string
	// TrustedProxies (CIDRs) may set X-Forwarded-Proto/-Host.
	TrustedProxies []string
	MaxBodyBytes   int64
	PublishTimeout time.Duration
	Streams        subjects.StreamOptions
}

// Defaults for one machine.
func Defaults() Config {
	return Config{
		HTTPAddr:       "127.0.0.1:8080",
		NATSURL:        "nats://127.0.0.1:4222",
		ConfigAddr:     "127.0.0.1:9090",
		MaxBodyBytes:   64 << 10,
		PublishTimeout: 3 * time.Second,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"http address", c.HTTPAddr}, {"nats url", c.NATSURL}, {"config service address", c.ConfigAddr},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s is required", f.name))
		}
	}
	if _, err := authn.ParseKeys(c.AuthKeys); err != nil {
		errs = append(errs, fmt.Errorf("auth keys: %w", err))
	}
	if c.PublicBaseURL != "" {
		u, err := url.Parse(c.PublicBaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("public base url %q must be scheme://host[:port] only", c.PublicBaseURL))
		}
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("max body bytes %d is below 1024", c.MaxBodyBytes))
	}
	if c.PublishTimeout <= 0 || c.PublishTimeout > 10*time.Second {
		errs = append(errs, fmt.Errorf("publish timeout %s must be within (0, 10s]: Conversations webhooks time out after 5s", c.PublishTimeout))
	}
	return errors.Join(errs...)
}

func parsePrefixes(cidrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, aerr := netip.ParseAddr(c)
			if aerr != nil {
				errs = append(errs, fmt.Errorf("trusted proxy %q is not an IP or CIDR", c))
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, errors.Join(errs...)
}

// Deps may be injected; nil ones are built from Config.
type Deps struct {
	Listener   net.Listener
	Bus        *bus.Bus
	ConfigConn *grpc.ClientConn
	AuthKeys   *authn.Keys
}

// Run serves until ctx is done.
func Run(ctx context.Context, cfg Config, deps Deps, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("chat-handler config: %w", err)
	}
	keys, err := connect.AuthKeys(deps.AuthKeys, cfg.AuthKeys)
	if err != nil {
		return err
	}
	b, closeBus, err := connect.Bus(deps.Bus, cfg.NATSURL, Name, log)
	if err != nil {
		return err
	}
	defer closeBus()
	cc, closeConfig, err := connect.GRPC(deps.ConfigConn, cfg.ConfigAddr, keys, Name)
	if err != nil {
		return err
	}
	defer closeConfig()
	lis, err := httpserver.Listen(deps.Listener, cfg.HTTPAddr)
	if err != nil {
		return err
	}
	if err := b.EnsureStreams(ctx, cfg.Streams, subjects.StreamChat, subjects.StreamDeadLetter); err != nil {
		return err
	}
	proxies, _ := parsePrefixes(cfg.TrustedProxies)
	h := webhook.New(route.Lookup{Client: configv1.NewLookupServiceClient(cc)}, b, webhook.Options{
		PublicBaseURL: cfg.PublicBaseURL, TrustedProxies: proxies,
		MaxBodyBytes: cfg.MaxBodyBytes, PublishTimeout: cfg.PublishTimeout,
	}, log)
	mux := http.NewServeMux()
	h.Routes(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	log.Info("chat-handler serving", "http", lis.Addr().String())
	return httpserver.Serve(ctx, httpserver.New(mux), lis, 5*time.Second)
}
