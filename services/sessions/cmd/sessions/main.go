// Command sessions runs the sessions service (agent websocket and console).
package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/switchboard-cc/switchboard/pkg/mainrun"
	"github.com/switchboard-cc/switchboard/services/sessions"
)

func main() {
	mainrun.Main(sessions.Name, func(ctx context.Context, env *mainrun.Env, log *slog.Logger) error {
		cfg := sessions.ConfigFromEnv(env)
		if err := mainrun.ConfigError(errors.Join(env.Err(), cfg.Validate())); err != nil {
			return err
		}
		return sessions.Run(ctx, cfg, sessions.Deps{}, log)
	})
}
