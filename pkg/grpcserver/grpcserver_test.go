package grpcserver_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
)

// A request larger than MaxRequestBytes is refused with ResourceExhausted
// before any handler sees it; one below it is served.
func TestRequestSizeLimit(t *testing.T) {
	s := grpcserver.New(slog.New(slog.DiscardHandler), nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); <-done })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	hc := healthpb.NewHealthClient(conn)
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("a small request: %v", err)
	}
	_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: strings.Repeat("x", grpcserver.MaxRequestBytes+1)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a request over %d bytes: %v, want ResourceExhausted", grpcserver.MaxRequestBytes, err)
	}
}
