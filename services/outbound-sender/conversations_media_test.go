package outboundsender_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/twilioclient"
	outboundsender "github.com/switchboard-cc/switchboard/services/outbound-sender"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/ledger"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/twilioapi"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// A 1×1 PNG.
var pngPixel = []byte{0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00,
	0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d,
	0xb0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82}

// convFaults sits under twilio-go (and the media upload) and breaks calls
// on the Conversations path: a message create cut off before it reaches
// the emulator, or whose answer is lost after the emulator made the
// message, and failed lookups. It counts media uploads.
type convFaults struct {
	base http.RoundTripper

	mu          sync.Mutex
	uploads     int
	cutCreate   int // creates that never reach the emulator
	loseAnswer  int // creates the emulator handles whose answer is lost
	failLookups int // message lists that fail
}

func (f *convFaults) RoundTrip(r *http.Request) (*http.Response, error) {
	p := r.URL.Path
	msgs := strings.Contains(p, "/Conversations/") && strings.HasSuffix(p, "/Messages")
	create, lookup := msgs && r.Method == http.MethodPost, msgs && r.Method == http.MethodGet
	f.mu.Lock()
	var cut, lose bool
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/Media"):
		f.uploads++
	case create && f.cutCreate > 0:
		f.cutCreate--
		cut = true
	case create && f.loseAnswer > 0:
		f.loseAnswer--
		lose = true
	case lookup && f.failLookups > 0:
		f.failLookups--
		cut = true
	}
	f.mu.Unlock()
	if cut {
		return nil, errors.New("connection reset by peer (test)")
	}
	res, err := f.base.RoundTrip(r)
	if lose && err == nil {
		_ = res.Body.Close()
		return nil, errors.New("connection reset after the request was sent (test)")
	}
	return res, err
}

func (f *convFaults) set(fn func(*convFaults)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *convFaults) uploaded() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.uploads
}

// convMessage is a conversation message as the emulator holds it.
type convMessage struct {
	sid, body string
	media     []string
}

// convMessagesOf lists the conversation's messages created for a request
// (its id in Attributes), through Twilio's API on the emulator.
func (h *harness) convMessagesOf(convSID, requestID string) []convMessage {
	h.t.Helper()
	base, _ := url.Parse(h.simURL)
	c := twilioclient.NewClient(twilioclient.Credentials{AccountSID: accountSID, APIKeySID: apiKeySID, APIKeySecret: apiKeySecret, Region: "us1"},
		twilioclient.Options{BaseURL: base})
	list, err := c.ConversationsV1.ListServiceConversationMessage(chatService, convSID, (&conversations.ListServiceConversationMessageParams{}).SetPageSize(100))
	if err != nil {
		h.t.Fatal(err)
	}
	var out []convMessage
	for _, m := range list {
		var attrs map[string]string
		if m.Attributes == nil || json.Unmarshal([]byte(*m.Attributes), &attrs) != nil || attrs[twilioapi.AttributesKey] != requestID {
			continue
		}
		cm := convMessage{sid: *m.Sid}
		if m.Body != nil {
			cm.body = *m.Body
		}
		if m.Media != nil {
			for _, md := range *m.Media {
				if o, ok := md.(map[string]any); ok {
					sid, _ := o["sid"].(string)
					cm.media = append(cm.media, sid)
				}
			}
		}
		out = append(out, cm)
	}
	return out
}

// mcsContent fetches a media's bytes and type from the emulator's Media
// Content Service, with the connector's key.
func (h *harness) mcsContent(sid string) (string, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.simURL+"/v1/Services/"+chatService+"/Media/"+sid+"/Content", nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.SetBasicAuth(apiKeySID, apiKeySecret)
	req.Header.Set(twilioclient.OriginalHostHeader, "mcs.us1.twilio.com")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		h.t.Fatalf("media %s at the Media Content Service: %s %s", sid, res.Status, b)
	}
	return res.Header.Get("Content-Type"), b
}

// An agent's attachment on the Conversations path: outbound-sender fetches
// the file from its URL (the sessions service's, here a test server),
// uploads it to the Media Content Service of the conversation's service
// and creates one conversation message naming it by MediaSid, whatever
// fails on the way: a 503 after the upload (retried with the same media),
// an answer lost after Twilio made the message (found, not sent again), a
// call cut off with the lookup failing too (redelivered: the file is
// uploaded again, the message still created once). A file that is gone or
// too large fails the request at once, saying why, and creates nothing.
func TestConversationsSendUploadsTheAttachment(t *testing.T) {
	files := http.NewServeMux()
	files.HandleFunc("GET /media/at_label", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(pngPixel)
	})
	files.HandleFunc("GET /media/at_huge", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		_, _ = w.Write(make([]byte, 5<<20+1))
	})
	fileSrv := httptest.NewServer(files) // 127.0.0.1
	t.Cleanup(fileSrv.Close)
	label, gone, huge := fileSrv.URL+"/media/at_label", fileSrv.URL+"/media/at_gone", fileSrv.URL+"/media/at_huge"

	faults := &convFaults{base: twilioapi.NewTransport()}
	// A short Twilio timeout: a redelivered request waits out twice this
	// (its attempt's lease) before it looks the message up.
	h := start(t, options{cfg: func(c *outboundsender.Config) { c.TwilioTimeout = 2 * time.Second }, transport: faults})
	ctx := timeout(t)
	const customer = "+15550200120"
	conv := h.customerSays(customer, convNumber, "can you send the label?")
	if conv.ConversationSID == "" {
		t.Fatalf("no conversation: %+v", conv)
	}
	ref := &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS,
		CustomerAddress: customer, ChatServiceSid: chatService, ConversationSid: conv.ConversationSID}
	mc, err := mongodb.Connect(ctx, h.mongo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })

	// sendsOnce sends the label with body after setup and checks that the
	// conversation got exactly one message with the file; it returns the
	// sent event and how many uploads the request took.
	sendsOnce := func(t *testing.T, body string, setup func()) (*outboundv1.OutboundMessageSent, int) {
		h := h.with(t)
		if setup != nil {
			setup()
		}
		id := rid(t, "1")
		before := faults.uploaded()
		h.request(&outboundv1.OutboundMessageRequested{RequestId: id, SessionId: "ss1", EntryId: entryConv, Conversation: ref,
			Body: body, MediaUrls: []string{label}, Author: "Alice", Origin: outboundv1.Origin_ORIGIN_AGENT})
		sent := h.waitSent(id)
		msgs := h.convMessagesOf(conv.ConversationSID, id)
		if len(msgs) != 1 {
			t.Fatalf("the conversation holds %d messages of the request, want 1: %+v", len(msgs), msgs)
		}
		m := msgs[0]
		if m.sid != sent.GetTwilioSid() || m.body != body || len(m.media) != 1 || !strings.HasPrefix(m.media[0], "ME") {
			t.Fatalf("message %+v, want %s with body %q and one uploaded media", m, sent.GetTwilioSid(), body)
		}
		if ct, data := h.mcsContent(m.media[0]); ct != "image/png" || !bytes.Equal(data, pngPixel) {
			t.Errorf("the message's media %s is %q, %d bytes; want the label (image/png, %d bytes)", m.media[0], ct, len(data), len(pngPixel))
		}
		var out ledger.Outcome
		if err := mc.Database(h.db).Collection("ledger").FindOne(ctx, map[string]string{"_id": ledger.OutcomeKey(tenant, id)}).Decode(&out); err != nil {
			t.Fatal(err)
		}
		if out.TwilioSID != m.sid || len(out.MediaSIDs) != 1 || out.MediaSIDs[0] != m.media[0] {
			t.Errorf("ledger outcome %+v, want %s with media %v", out, m.sid, m.media)
		}
		return sent, faults.uploaded() - before
	}

	t.Run("sent", func(t *testing.T) {
		if sent, uploads := sendsOnce(t, "Here is your label", nil); sent.GetAttempts() != 1 || uploads != 1 {
			t.Errorf("attempts %d, uploads %d; want 1 and 1", sent.GetAttempts(), uploads)
		}
		got := h.with(t).sentTo(customer)
		last := got[len(got)-1]
		if last.Body != "Here is your label" || len(last.Media) != 1 || last.Media[0].ContentType != "image/png" {
			t.Errorf("the customer got %+v, want the label", last)
		}
	})
	t.Run("503 after the upload", func(t *testing.T) {
		sent, uploads := sendsOnce(t, "", func() {
			if _, err := h.sim.InjectFault(ctx, simclient.Fault{Count: 1, Method: "POST", Status: 503,
				PathPrefix: "/v1/Services/" + chatService + "/Conversations/"}); err != nil {
				t.Fatal(err)
			}
		})
		if sent.GetAttempts() != 2 || uploads != 1 {
			t.Errorf("attempts %d, uploads %d; want 2 (the 503 looked up, then sent) and 1", sent.GetAttempts(), uploads)
		}
	})
	t.Run("answer lost after the message was made", func(t *testing.T) {
		sent, uploads := sendsOnce(t, "Label attached", func() { faults.set(func(f *convFaults) { f.loseAnswer = 1 }) })
		if sent.GetAttempts() != 1 || uploads != 1 {
			t.Errorf("attempts %d, uploads %d; want 1 (found by the lookup) and 1", sent.GetAttempts(), uploads)
		}
	})
	t.Run("redelivered after the upload", func(t *testing.T) {
		sent, uploads := sendsOnce(t, "Label, again", func() { faults.set(func(f *convFaults) { f.cutCreate, f.failLookups = 1, 1 }) })
		if sent.GetAttempts() != 2 || uploads != 2 {
			t.Errorf("attempts %d, uploads %d; want 2 and 2 (the redelivery uploads the file again)", sent.GetAttempts(), uploads)
		}
	})
	for _, tc := range []struct{ name, url, words string }{
		{"a file that is gone", gone, "404"},
		{"a file larger than MMS takes", huge, "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.with(t)
			id := rid(t, "1")
			before := faults.uploaded()
			h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entryConv, Conversation: ref, Body: "this one fails",
				MediaUrls: []string{tc.url}, Origin: outboundv1.Origin_ORIGIN_AGENT})
			f := h.waitFailed(id)
			if f.GetReason() != outboundv1.FailureReason_FAILURE_REASON_INVALID_REQUEST || !strings.Contains(f.GetErrorMessage(), tc.url) ||
				!strings.Contains(f.GetErrorMessage(), tc.words) {
				t.Errorf("failed event %v, want invalid_request naming %s and %q", f, tc.url, tc.words)
			}
			if n := len(h.convMessagesOf(conv.ConversationSID, id)); n != 0 || faults.uploaded() != before {
				t.Errorf("%d messages and %d uploads for a request that failed, want none", n, faults.uploaded()-before)
			}
			if d := h.delivery(id); d.GetAttempts() != 0 {
				t.Errorf("ledger attempts %d, want 0 (no message call made)", d.GetAttempts())
			}
		})
	}
}
