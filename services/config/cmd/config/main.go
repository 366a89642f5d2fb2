// Command config runs Switchboard's configuration service on its own.
//
// Environment:
//
//	GRPC_ADDR                          listen address (default 127.0.0.1:9090)
//	MONGO_URI                          MongoDB connection string (required)
//	MONGO_DATABASE                     database (default switchboard_config)
//	NATS_URL                           NATS server (required)
//	SWITCHBOARD_CONFIG_SECRET_KEYS     hex AES-256 keys sealing Twilio secrets,
//	                                   comma-separated, first seals (required;
//	                                   or SWITCHBOARD_CONFIG_SECRET_KEYS_FILE,
//	                                   e.g. a mounted Kubernetes secret)
//	SWITCHBOARD_AUTH_KEYS              hex token keys, comma-separated (required;
//	                                   or SWITCHBOARD_AUTH_KEYS_FILE)
//	STREAM_REPLICAS                    CONFIG stream replicas (default 1)
//	PUBLIC_BASE_URL                    chat-handler's public base URL, for connector checks
//	TWILIO_BASE_URL                    connector checks call this emulator instead of Twilio
//	LOG_LEVEL, LOG_FORMAT              see pkg/mainrun
package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/switchboard-cc/switchboard/pkg/mainrun"
	configsvc "github.com/switchboard-cc/switchboard/services/config"
)

func main() {
	mainrun.Main(configsvc.ServiceName, func(ctx context.Context, env *mainrun.Env, log *slog.Logger) error {
		cfg := configsvc.Config{
			GRPCAddr:       env.String("GRPC_ADDR", configsvc.DefaultGRPCAddr),
			MongoURI:       env.String("MONGO_URI", ""),
			MongoDatabase:  env.String("MONGO_DATABASE", configsvc.DefaultMongoDatabase),
			NATSURL:        env.String("NATS_URL", ""),
			NATSAuth:       mainrun.NATSAuth(env),
			SecretKeys:     env.Secret("SWITCHBOARD_CONFIG_SECRET_KEYS"),
			AuthKeys:       env.Secret("SWITCHBOARD_AUTH_KEYS"),
			StreamReplicas: env.Int("STREAM_REPLICAS", 1),
			PublicBaseURL:  env.String("PUBLIC_BASE_URL", ""),
			TwilioBaseURL:  env.String("TWILIO_BASE_URL", ""),
		}
		p := configsvc.DefaultSignInPolicy()
		cfg.SignInPolicy = configsvc.SignInPolicy{
			AccountFree:     env.Int("SIGNIN_ACCOUNT_FREE_FAILURES", p.AccountFree),
			SourceFree:      env.Int("SIGNIN_SOURCE_FREE_FAILURES", p.SourceFree),
			BaseDelay:       env.Duration("SIGNIN_BASE_DELAY", p.BaseDelay),
			MaxDelay:        env.Duration("SIGNIN_MAX_DELAY", p.MaxDelay),
			LockoutFailures: env.Int("SIGNIN_LOCKOUT_FAILURES", p.LockoutFailures),
			LockoutDuration: env.Duration("SIGNIN_LOCKOUT_DURATION", p.LockoutDuration),
			ForgetAfter:     env.Duration("SIGNIN_FORGET_AFTER", p.ForgetAfter),
		}
		if err := mainrun.ConfigError(errors.Join(env.Err(), cfg.Validate())); err != nil {
			return err
		}
		return configsvc.Run(ctx, cfg, configsvc.Deps{}, log)
	})
}
