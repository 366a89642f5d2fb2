// Package outboundsender runs outbound-sender, the only code that calls
// Twilio's REST API: it consumes outbound message requests (OUTBOUND
// stream), sends them with twilio-go, keeps a delivery ledger, and reports
// each message's fate on the OUTBOUND stream.
package outboundsender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/grpc"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/connect"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/sender"
)

// Name is the service name.
const Name = "outbound-sender"

// Config of outbound-sender.
type Config struct {
	NATSURL    string
	MongoURI   string
	Database   string
	ConfigAddr string
	AuthKeys   string
	// TwilioBaseURL sends every Twilio API call to this base URL instead
	// (the emulator, e.g. http://127.0.0.1:8089). Empty for real Twilio.
	TwilioBaseURL string
	// StatusCallbackBaseURL is the public base URL of chat-handler, where
	// Twilio posts status callbacks.
	StatusCallbackBaseURL string
	TwilioTimeout         time.Duration
	Streams               subjects.StreamOptions
}

// Defaults for one machine.
func Defaults() Config {
	return Config{
		NATSURL:       "nats://127.0.0.1:4222",
		MongoURI:      "mongodb://127.0.0.1:27017/",
		Database:      "switchboard_outbound",
		ConfigAddr:    "127.0.0.1:9090",
		TwilioTimeout: 10 * time.Second,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"nats url", c.NATSURL}, {"mongo uri", c.MongoURI}, {"database", c.Database}, {"config service address", c.ConfigAddr},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s is required", f.name))
		}
	}
	if _, err := authn.ParseKeys(c.AuthKeys); err != nil {
		errs = append(errs, fmt.Errorf("auth keys: %w", err))
	}
	for name, v := range map[string]string{"twilio base url": c.TwilioBaseURL, "status callback base url": c.StatusCallbackBaseURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s %q is not an http(s) URL", name, v))
		}
	}
	if c.TwilioTimeout <= 0 {
		errs = append(errs, errors.New("twilio timeout must be positive"))
	}
	return errors.Join(errs...)
}

// Deps may be injected; nil ones are built from Config.
type Deps struct {
	Bus        *bus.Bus
	Mongo      *mongo.Client
	ConfigConn *grpc.ClientConn
	AuthKeys   *authn.Keys
}

// Run consumes outbound requests until ctx is done.
func Run(ctx context.Context, cfg Config, deps Deps, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("outbound-sender config: %w", err)
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
	mc, closeMongo, err := connect.Mongo(ctx, deps.Mongo, cfg.MongoURI)
	if err != nil {
		return err
	}
	defer closeMongo()
	cc, closeConfig, err := connect.GRPC(deps.ConfigConn, cfg.ConfigAddr, keys, Name)
	if err != nil {
		return err
	}
	defer closeConfig()
	if err := b.EnsureStreams(ctx, cfg.Streams, subjects.StreamOutbound, subjects.StreamDeadLetter); err != nil {
		return err
	}
	opts := sender.Options{StatusCallbackBaseURL: cfg.StatusCallbackBaseURL, Timeout: cfg.TwilioTimeout}
	if cfg.TwilioBaseURL != "" {
		opts.TwilioBaseURL, _ = url.Parse(cfg.TwilioBaseURL)
		log.Warn("twilio calls go to an emulator", "base_url", cfg.TwilioBaseURL)
	}
	s := sender.New(b, configv1.NewLookupServiceClient(cc), mc.Database(cfg.Database), opts, log)
	log.Info("outbound-sender consuming requests")
	return b.Consume(ctx, bus.ConsumerSpec{
		Stream: subjects.StreamOutbound, Durable: subjects.ConsumerOutboundRequests,
		FilterSubjects: []string{subjects.AllTenants(subjects.KindOutboundRequested)},
		AckWait:        2 * cfg.TwilioTimeout,
	}, s.Handle)
}
