package sessions

import "github.com/switchboard-cc/switchboard/pkg/mainrun"

// ConfigFromEnv reads the service's configuration from the environment
// (the variables in the README's table); unset ones keep their defaults.
// env.Err and Validate say what is wrong with it.
func ConfigFromEnv(env *mainrun.Env) Config {
	d := Defaults()
	return Config{
		HTTPAddr:            env.String("HTTP_ADDR", d.HTTPAddr),
		NATSURL:             env.String("NATS_URL", d.NATSURL),
		NATSAuth:            mainrun.NATSAuth(env),
		MongoURI:            env.String("MONGO_URI", d.MongoURI),
		Database:            env.String("MONGO_DATABASE", d.Database),
		ConfigAddr:          env.String("CONFIG_ADDR", d.ConfigAddr),
		DistributionAddr:    env.String("DISTRIBUTION_ADDR", d.DistributionAddr),
		OutboundAddr:        env.String("OUTBOUND_ADDR", d.OutboundAddr),
		AuthKeys:            env.Secret("SWITCHBOARD_AUTH_KEYS"),
		AgentTokenTTL:       env.Duration("AGENT_TOKEN_TTL", d.AgentTokenTTL),
		AgentAuthTimeout:    env.Duration("AGENT_AUTH_TIMEOUT", d.AgentAuthTimeout),
		StaleSweepEvery:     env.Duration("STALE_SWEEP_EVERY", d.StaleSweepEvery),
		RetentionSweepEvery: env.Duration("RETENTION_SWEEP_EVERY", d.RetentionSweepEvery),
		InboundWorkers:      env.Int("INBOUND_WORKERS", d.InboundWorkers),
		OriginPatterns:      env.List("WS_ORIGIN_PATTERNS", nil),
		TrustedProxies:      env.List("TRUSTED_PROXIES", nil),
		PublicURL:           env.String("PUBLIC_URL", ""),
		Streams:             mainrun.StreamOptions(env),
	}
}
