package e2ebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/switchboard-cc/switchboard/services/devstack"
)

// startStack runs the whole devstack in this process on loopback ports
// with its files in dir (fsync as asked, passwords hashed cheaply: agents
// sign in once each and the hash is not what is measured) and returns
// where it listens and how to stop it.
func startStack(ctx context.Context, dir string, fsync bool, progress io.Writer, say func(string, ...any)) (devstack.Info, func(), error) {
	dc := devstack.Defaults()
	dc.DataDir = dir
	dc.NATSAddr, dc.MongoAddr = "127.0.0.1:0", "127.0.0.1:0"
	dc.ChatHandlerAddr, dc.SessionsAddr, dc.TwilioSimAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	dc.ConfigAddr, dc.DistributionAddr, dc.ReportingAddr, dc.OutboundAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	dc.SyncAlways = fsync
	dc.BcryptCost = 4

	stackCtx, stopStack := context.WithCancel(ctx)
	ready := make(chan devstack.Info, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(progress, &slog.HandlerOptions{Level: slog.LevelError}))
	go func() {
		done <- devstack.Run(stackCtx, dc, devstack.Deps{Ready: func(i devstack.Info) { ready <- i }}, log)
	}()
	stop := func() {
		stopStack()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			say("the stack did not stop within 30s")
		}
	}
	select {
	case info := <-ready:
		return info, stop, nil
	case err := <-done:
		stopStack()
		return devstack.Info{}, nil, fmt.Errorf("devstack: %w", err)
	case <-time.After(90 * time.Second):
		stop()
		return devstack.Info{}, nil, errors.New("devstack not ready within 90s")
	case <-ctx.Done():
		stop()
		return devstack.Info{}, nil, ctx.Err()
	}
}
