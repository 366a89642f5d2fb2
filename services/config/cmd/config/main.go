// Command config runs Switchboard's configuration service on its own.
//
// Environment:
//
//	SWITCHBOARD_CONFIG_GRPC_ADDR       listen address (default 127.0.0.1:9090)
//	MONGO_URI                          MongoDB connection string (required)
//	SWITCHBOARD_CONFIG_MONGO_DATABASE  database (default switchboard_config)
//	NATS_URL                           NATS server (required)
//	SWITCHBOARD_CONFIG_SECRET_KEYS     hex AES-256 keys sealing Twilio secrets,
//	                                   comma-separated, first seals (required;
//	                                   or SWITCHBOARD_CONFIG_SECRET_KEYS_FILE,
//	                                   e.g. a mounted Kubernetes secret)
//	SWITCHBOARD_AUTH_KEYS              hex token keys, comma-separated (required;
//	                                   or SWITCHBOARD_AUTH_KEYS_FILE)
//	SWITCHBOARD_STREAM_REPLICAS        CONFIG stream replicas (default 1)
//	LOG_LEVEL                          debug, info, warn or error (default info)
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	configsvc "github.com/switchboard-cc/switchboard/services/config"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level(os.Getenv("LOG_LEVEL"))}))
	if err := run(log); err != nil {
		log.Error("config service stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	cfg, err := fromEnv()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return configsvc.Run(ctx, cfg, configsvc.Deps{}, log)
}

func fromEnv() (configsvc.Config, error) {
	var errs []error
	secretKeys, err := secret("SWITCHBOARD_CONFIG_SECRET_KEYS")
	errs = append(errs, err)
	authKeys, err := secret("SWITCHBOARD_AUTH_KEYS")
	errs = append(errs, err)
	replicas := 0
	if s := os.Getenv("SWITCHBOARD_STREAM_REPLICAS"); s != "" {
		if replicas, err = strconv.Atoi(s); err != nil {
			errs = append(errs, fmt.Errorf("SWITCHBOARD_STREAM_REPLICAS %q is not a number", s))
		}
	}
	return configsvc.Config{
		GRPCAddr:       os.Getenv("SWITCHBOARD_CONFIG_GRPC_ADDR"),
		MongoURI:       os.Getenv("MONGO_URI"),
		MongoDatabase:  os.Getenv("SWITCHBOARD_CONFIG_MONGO_DATABASE"),
		NATSURL:        os.Getenv("NATS_URL"),
		SecretKeys:     secretKeys,
		AuthKeys:       authKeys,
		StreamReplicas: replicas,
	}, errors.Join(errs...)
}

// secret reads NAME, or the file NAME_FILE names (a mounted Kubernetes
// secret), so keys need not sit in the environment.
func secret(name string) (string, error) {
	if path := os.Getenv(name + "_FILE"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%s_FILE: %w", name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return os.Getenv(name), nil
}

func level(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
