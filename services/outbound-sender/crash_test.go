package outboundsender_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
)

// stallProxy stands between outbound-sender and the emulator. While armed,
// the next message create is held: either before it reaches the emulator,
// or after the emulator accepted it (its answer never comes back). Every
// other request passes through.
type stallProxy struct {
	target *url.URL
	proxy  *httputil.ReverseProxy

	mu      sync.Mutex
	mode    string // "", "before", "after"
	stalled chan struct{}
	release chan struct{}
}

func newStallProxy(target string) *stallProxy {
	u, _ := url.Parse(target)
	return &stallProxy{target: u, proxy: httputil.NewSingleHostReverseProxy(u), release: make(chan struct{})}
}

func (p *stallProxy) arm(mode string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.stalled = mode, make(chan struct{})
	return p.stalled
}

func isCreate(r *http.Request) bool {
	return r.Method == http.MethodPost && (strings.HasSuffix(r.URL.Path, "/Messages.json") || strings.HasSuffix(r.URL.Path, "/Messages"))
}

func (p *stallProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	mode, stalled := p.mode, p.stalled
	if isCreate(r) && mode != "" {
		p.mode = ""
	} else {
		mode = ""
	}
	p.mu.Unlock()
	switch mode {
	case "before":
		close(stalled)
		<-p.release // until the test ends; the client is killed first
		return
	case "after":
		rec := &discard{header: http.Header{}}
		p.proxy.ServeHTTP(rec, r)
		close(stalled)
		<-p.release
		return
	}
	p.proxy.ServeHTTP(w, r)
}

type discard struct {
	header http.Header
	status int
}

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(s int)           { d.status = s }

// stubConfig answers GetSendingCredentials over real gRPC with tokens.
type stubConfig struct {
	configv1.UnimplementedLookupServiceServer
}

func (stubConfig) GetSendingCredentials(ctx context.Context, r *configv1.GetSendingCredentialsRequest) (*configv1.GetSendingCredentialsResponse, error) {
	return staticCredentials{}.SendingCredentials(ctx, r.GetTenantId(), r.GetEntryId())
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "outbound-sender")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/outbound-sender")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProcess(t *testing.T, bin string, env []string, name string) *process {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	w := &prefixWriter{t: t, prefix: name + ": "}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown, no acks
		t.Fatal(err)
	}
	<-p.done
}

type prefixWriter struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		w.t.Log(w.prefix + line)
	}
	return len(b), nil
}

// A process killed while its Twilio call is in flight — after Twilio
// accepted the message, or before the call reached Twilio — is restarted;
// the customer gets the message exactly once either way, on both paths.
func TestCrashDuringTwilioCall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the outbound-sender binary")
	}
	bin := buildBinary(t)
	h := start(t, options{noService: true})
	keys, _ := authn.ParseKeys(authKey)
	t.Cleanup(func() {
		if mc, err := mongodb.Connect(context.Background(), h.mongo); err == nil {
			_ = mc.Database(h.db).Drop(context.Background())
			_ = mc.Disconnect(context.Background())
		}
	})

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfgSrv := grpcserver.New(slog.New(slog.DiscardHandler), keys)
	configv1.RegisterLookupServiceServer(cfgSrv.Server, stubConfig{})
	go func() { _ = cfgSrv.Serve(context.Background(), lis) }()
	t.Cleanup(cfgSrv.Stop)

	proxy := newStallProxy(h.simURL)
	plis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	psrv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = psrv.Serve(plis) }()
	t.Cleanup(func() { close(proxy.release); _ = psrv.Close() })

	env := []string{
		"NATS_URL=" + h.natsURL, "MONGO_URI=" + h.mongo, "MONGO_DATABASE=" + h.db,
		"CONFIG_ADDR=" + lis.Addr().String(), "SWITCHBOARD_AUTH_KEYS=" + authKey, "GRPC_ADDR=127.0.0.1:0",
		"TWILIO_BASE_URL=http://" + plis.Addr().String(), "STATUS_CALLBACK_BASE_URL=" + h.relay,
		"TWILIO_TIMEOUT=2s", "SMS_RATE=1000seg/s", "WHATSAPP_RATE=1000msg/s",
		"LOG_FORMAT=text", "LOG_LEVEL=info", "TWILIO_EDGE=", "TWILIO_REGION=",
	}

	conv := h.customerSays("+15550200070", convNumber, "hi")
	tests := []struct {
		name, customer, mode, entry string
		conv                        *messagingv1.ConversationRef
		wantAttempts                int32
	}{
		{"messaging, killed after twilio accepted", "+15550200071", "after", entrySMS, smsTo("+15550200071"), 1},
		{"messaging, killed before the call arrived", "+15550200072", "before", entrySMS, smsTo("+15550200072"), 2},
		{"conversations, killed after twilio accepted", "+15550200070", "after", entryConv, &messagingv1.ConversationRef{
			Channel: messagingv1.Channel_CHANNEL_SMS, Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS,
			CustomerAddress: "+15550200070", ChatServiceSid: chatService, ConversationSid: conv.ConversationSID}, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			first := startProcess(t, bin, env, fmt.Sprintf("run%d-first", i))
			stalled := proxy.arm(tt.mode)
			id := rid(t, "1")
			body := "exactly once please (" + tt.name + ")"
			before := len(h.sentTo(tt.customer))
			h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: tt.entry, Conversation: tt.conv, Body: body})
			select {
			case <-stalled:
			case <-time.After(60 * time.Second):
				t.Fatal("the twilio call never reached the proxy")
			}
			first.kill(t)

			second := startProcess(t, bin, env, fmt.Sprintf("run%d-second", i))
			sent := h.waitSent(id)
			got := h.sentTo(tt.customer)
			n := 0
			for _, m := range got[before:] {
				if m.Body == body {
					n++
				}
			}
			if n != 1 {
				t.Errorf("the emulator holds the message %d times, want 1", n)
			}
			if sent.GetAttempts() != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", sent.GetAttempts(), tt.wantAttempts)
			}
			second.kill(t)
		})
	}
}
