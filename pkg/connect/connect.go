// Package connect opens a service's outside connections (token keys, NATS,
// MongoDB, other services over gRPC), or passes through the ones its caller
// injected: the all-in-one binary and tests share one NATS connection and
// one Mongo client. Close releases only what Open opened.
package connect

import (
	"context"
	"errors"
	"log/slog"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/grpc"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/revocation"
)

func noop() {}

// openBus returns injected, or connects to url as name with auth.
func openBus(injected *bus.Bus, url, name string, auth bus.Auth, log *slog.Logger) (*bus.Bus, func(), error) {
	if injected != nil {
		return injected, noop, nil
	}
	b, err := bus.ConnectAuth(url, name, auth, log)
	if err != nil {
		return nil, nil, err
	}
	return b, b.Close, nil
}

// openMongo returns injected, or connects to uri.
func openMongo(ctx context.Context, injected *mongo.Client, uri string) (*mongo.Client, func(), error) {
	if injected != nil {
		return injected, noop, nil
	}
	c, err := mongodb.Connect(ctx, uri)
	if err != nil {
		return nil, nil, err
	}
	return c, func() { _ = c.Disconnect(context.Background()) }, nil
}

// dialGRPC returns injected, or dials target as service self.
func dialGRPC(injected *grpc.ClientConn, target string, keys *authn.Keys, self string) (*grpc.ClientConn, func(), error) {
	if injected != nil {
		return injected, noop, nil
	}
	c, err := grpcserver.Dial(target, keys, self)
	if err != nil {
		return nil, nil, err
	}
	return c, func() { _ = c.Close() }, nil
}

// authKeys returns injected, or parses the hex key list.
func authKeys(injected *authn.Keys, hexKeys string) (*authn.Keys, error) {
	if injected != nil {
		return injected, nil
	}
	return authn.ParseKeys(hexKeys)
}

// Spec lists what a service connects to. An injected value wins over its
// address; a piece with neither is skipped (left nil).
type Spec struct {
	// Name identifies the service in NATS and in its service tokens.
	Name string
	// AuthKeys (hex) or Keys: the token keys.
	AuthKeys string
	Keys     *authn.Keys
	NATSURL  string
	// NATSAuth are the credentials and TLS settings for NATSURL.
	NATSAuth bus.Auth
	Bus      *bus.Bus
	MongoURI string
	Mongo    *mongo.Client
	// GRPC are other services, dialled with the service's own tokens.
	GRPC []Target
	// Revocations makes Keys refuse revoked user tokens, from the
	// revocation list on NATS (pkg/revocation), created with
	// RevocationReplicas when missing. Keys that already check a list (the
	// all-in-one binary injects them) are kept as they are.
	Revocations        bool
	RevocationReplicas int
}

// Target is one gRPC service to reach.
type Target struct {
	Addr string
	Conn *grpc.ClientConn
}

// Conns are a service's open connections.
type Conns struct {
	Keys  *authn.Keys
	Bus   *bus.Bus
	Mongo *mongo.Client
	// GRPC holds a connection per Spec.GRPC entry, in order (nil if skipped).
	GRPC    []*grpc.ClientConn
	closers []func()
}

// Open connects everything in s; on an error it closes what it opened.
func Open(ctx context.Context, log *slog.Logger, s Spec) (*Conns, error) {
	c := &Conns{}
	fail := func(err error) (*Conns, error) {
		c.Close()
		return nil, err
	}
	var err error
	if c.Keys, err = authKeys(s.Keys, s.AuthKeys); err != nil {
		return fail(err)
	}
	if s.Bus != nil || s.NATSURL != "" {
		b, closeBus, err := openBus(s.Bus, s.NATSURL, s.Name, s.NATSAuth, log)
		if err != nil {
			return fail(err)
		}
		c.Bus, c.closers = b, append(c.closers, closeBus)
	}
	if s.Revocations && !c.Keys.HasRevocations() {
		if c.Bus == nil {
			return fail(errors.New("connect: the revocation list needs NATS"))
		}
		lctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		list, err := revocation.OpenWaiting(ctx, lctx, c.Bus.JS, s.RevocationReplicas, log)
		if err != nil {
			stop()
			return fail(err)
		}
		c.Keys, c.closers = c.Keys.WithRevocations(list), append(c.closers, stop)
	}
	if s.Mongo != nil || s.MongoURI != "" {
		mc, closeMongo, err := openMongo(ctx, s.Mongo, s.MongoURI)
		if err != nil {
			return fail(err)
		}
		c.Mongo, c.closers = mc, append(c.closers, closeMongo)
	}
	for _, t := range s.GRPC {
		if t.Conn == nil && t.Addr == "" {
			c.GRPC = append(c.GRPC, nil)
			continue
		}
		cc, closeConn, err := dialGRPC(t.Conn, t.Addr, c.Keys, s.Name)
		if err != nil {
			return fail(err)
		}
		c.GRPC, c.closers = append(c.GRPC, cc), append(c.closers, closeConn)
	}
	return c, nil
}

// Close closes what Open opened (not what was injected), last opened first.
func (c *Conns) Close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
	c.closers = nil
}
