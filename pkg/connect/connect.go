// Package connect builds a service's outside connections, or passes through
// the ones its caller injected (the all-in-one binary and tests share one
// NATS connection, one Mongo client and pre-bound listeners). Each function
// returns a release func that closes only what it opened.
package connect

import (
	"context"
	"log/slog"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/grpc"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
)

func noop() {}

// Bus returns injected, or connects to url as name.
func Bus(injected *bus.Bus, url, name string, log *slog.Logger) (*bus.Bus, func(), error) {
	if injected != nil {
		return injected, noop, nil
	}
	b, err := bus.Connect(url, name, log)
	if err != nil {
		return nil, nil, err
	}
	return b, b.Close, nil
}

// Mongo returns injected, or connects to uri.
func Mongo(ctx context.Context, injected *mongo.Client, uri string) (*mongo.Client, func(), error) {
	if injected != nil {
		return injected, noop, nil
	}
	c, err := mongodb.Connect(ctx, uri)
	if err != nil {
		return nil, nil, err
	}
	return c, func() { _ = c.Disconnect(context.Background()) }, nil
}

// GRPC returns injected, or dials target as service self.
func GRPC(injected *grpc.ClientConn, target string, keys *authn.Keys, self string) (*grpc.ClientConn, func(), error) {
	if injected != nil {
		return injected, noop, nil
	}
	c, err := grpcserver.Dial(target, keys, self)
	if err != nil {
		return nil, nil, err
	}
	return c, func() { _ = c.Close() }, nil
}

// AuthKeys returns injected, or parses the hex key list.
func AuthKeys(injected *authn.Keys, hexKeys string) (*authn.Keys, error) {
	if injected != nil {
		return injected, nil
	}
	return authn.ParseKeys(hexKeys)
}
