package grpcserver

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/switchboard-cc/switchboard/pkg/telemetry"
)

var (
	meter    = telemetry.NewMeter("github.com/switchboard-cc/switchboard/pkg/grpcserver")
	requests = meter.Counter("switchboard.grpc.server.requests",
		"gRPC calls served, by method (/package.Service/Method) and status code (OK, Unauthenticated, …).")
	duration = meter.Seconds("switchboard.grpc.server.duration",
		"Time to serve a unary gRPC call, by method.")
)

// The counting interceptors come first, so refused calls (no token) count.
func countUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m := attribute.String("method", info.FullMethod)
	requests.Add(ctx, 1, metric.WithAttributes(m, attribute.String("code", status.Code(err).String())))
	duration.Record(ctx, telemetry.Since(start), metric.WithAttributes(m))
	return resp, err
}

func countStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	requests.Add(ss.Context(), 1, metric.WithAttributes(attribute.String("method", info.FullMethod), attribute.String("code", status.Code(err).String())))
	return err
}
