// Package grpcserver builds Switchboard's gRPC servers and clients the same
// way everywhere: bearer-token authentication, panic recovery, tracing,
// the health service and server reflection (so grpcurl works).
package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/switchboard-cc/switchboard/pkg/authn"
)

// Server is a gRPC server with health and reflection registered.
type Server struct {
	*grpc.Server
	Health *health.Server
	log    *slog.Logger
}

// publicMethods need no token.
var publicPrefixes = []string{
	"/grpc.health.v1.Health/",
	"/grpc.reflection.v1.ServerReflection/",
	"/grpc.reflection.v1alpha.ServerReflection/",
}

func isPublic(method string) bool {
	for _, p := range publicPrefixes {
		if strings.HasPrefix(method, p) {
			return true
		}
	}
	return false
}

// Limits of every server (a caller's options come after them and may
// change them): the largest request (a tenant's whole configuration
// applied at once is far below it; gRPC's own default is the same, made
// explicit here) and the streams one connection may have open at once
// (gRPC sets no bound by default).
const (
	MaxRequestBytes      = 4 << 20
	MaxConcurrentStreams = 256
)

// New returns a server that requires a valid bearer token on every call but
// health and reflection, and puts the claims in the context (authn.FromContext).
func New(log *slog.Logger, keys *authn.Keys, opts ...grpc.ServerOption) *Server {
	authUnary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer recoverTo(log, info.FullMethod, &err)
		if !isPublic(info.FullMethod) {
			ctx, err = authenticate(ctx, keys)
			if err != nil {
				return nil, err
			}
		}
		return handler(ctx, req)
	}
	authStream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer recoverTo(log, info.FullMethod, &err)
		ctx := ss.Context()
		if !isPublic(info.FullMethod) {
			if ctx, err = authenticate(ctx, keys); err != nil {
				return err
			}
		}
		return handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
	}
	all := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		grpc.ConnectionTimeout(10 * time.Second),
		// A client may ping at most every 10 s (more often is refused
		// with GOAWAY); an idle connection is closed after 15 minutes and
		// a dead one found within about two.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 15 * time.Minute, Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.StatsHandler(otelgrpc.NewServerHandler(traceContext)),
		grpc.ChainUnaryInterceptor(countUnary, authUnary),
		grpc.ChainStreamInterceptor(countStream, authStream),
	}, opts...)
	s := &Server{Server: grpc.NewServer(all...), Health: health.NewServer(), log: log}
	healthpb.RegisterHealthServer(s.Server, s.Health)
	reflection.Register(s.Server)
	return s
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

func recoverTo(log *slog.Logger, method string, err *error) {
	if r := recover(); r != nil {
		log.Error("grpc handler panic", "method", method, "panic", r, "stack", string(debug.Stack()))
		*err = status.Error(codes.Internal, "internal error")
	}
}

func authenticate(ctx context.Context, keys *authn.Keys) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return nil, status.Error(codes.Unauthenticated, "missing authorization metadata: send \"authorization: Bearer <token>\"")
	}
	tok, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "authorization metadata must be \"Bearer <token>\"")
	}
	c, err := keys.Verify(strings.TrimSpace(tok))
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return authn.WithClaims(ctx, c), nil
}

// RequireTenant checks the caller may act within tenant, and returns its
// claims. Every RPC that takes a tenant id calls it first.
func RequireTenant(ctx context.Context, tenant string) (*authn.Claims, error) {
	c := authn.FromContext(ctx)
	if c == nil {
		return nil, status.Error(codes.Unauthenticated, "no caller identity")
	}
	if tenant == "" {
		return nil, status.Error(codes.InvalidArgument, "tenant_id is required")
	}
	if !c.CanAccessTenant(tenant) {
		return nil, status.Errorf(codes.PermissionDenied, "caller %q may not access tenant %q", c.Subject, tenant)
	}
	return c, nil
}

// RequireRole checks the caller has one of roles (services always pass).
func RequireRole(ctx context.Context, roles ...string) (*authn.Claims, error) {
	c := authn.FromContext(ctx)
	if c == nil {
		return nil, status.Error(codes.Unauthenticated, "no caller identity")
	}
	if c.Has(authn.RoleService) {
		return c, nil
	}
	for _, r := range roles {
		if c.Has(r) {
			return c, nil
		}
	}
	return nil, status.Errorf(codes.PermissionDenied, "caller %q needs one of roles %v", c.Subject, roles)
}

// Serve serves on lis until ctx is done, then stops gracefully (health goes
// NOT_SERVING first; in-flight calls get up to 5s).
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	errCh := make(chan error, 1)
	go func() { errCh <- s.Server.Serve(lis) }()
	select {
	case err := <-errCh:
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return fmt.Errorf("grpc serve: %w", err)
	case <-ctx.Done():
	}
	s.Health.Shutdown()
	stopped := make(chan struct{})
	go func() { s.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		s.Stop()
	}
	return nil
}

// tokenCreds adds a service token to every outgoing call.
type tokenCreds struct{ src *authn.ServiceTokenSource }

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok, err := t.src.Token()
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity is false: inside the cluster, transport security
// comes from the network layer (service mesh mTLS) in production.
func (tokenCreds) RequireTransportSecurity() bool { return false }

// traceContext carries W3C trace context on every call whether or not the
// process installed a global propagator (devstack and tests do not), so a
// call continues its caller's trace (an agent's accept, say, through
// distribution to the events it publishes).
var traceContext = otelgrpc.WithPropagators(propagation.TraceContext{})

// Dial connects to another service's gRPC endpoint as service `self`.
func Dial(target string, keys *authn.Keys, self string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(tokenCreds{authn.NewServiceTokenSource(keys, self)}),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(traceContext)),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	return conn, nil
}

// BearerToken is call credentials for a fixed token (CLI, tests).
type BearerToken string

func (t BearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (BearerToken) RequireTransportSecurity() bool { return false }
