package contacts

import (
	"context"
	"os"
	"testing"
	"time"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

func TestKeyword(t *testing.T) {
	tests := map[string]string{
		"STOP": KeywordStop, "stop": KeywordStop, " Stop \n": KeywordStop, "StopAll": KeywordStop, "unsubscribe": KeywordStop,
		"cancel": KeywordStop, "END": KeywordStop, "quit": KeywordStop, "revoke": KeywordStop, "optout": KeywordStop,
		"START": KeywordStart, "yes": KeywordStart, "unstop": KeywordStart,
		"help": KeywordHelp, "INFO": KeywordHelp,
		"stop please": KeywordNone, "STOP!": KeywordNone, "don't stop": KeywordNone, "": KeywordNone,
	}
	for body, want := range tests {
		if got := Keyword(body); got != want {
			t.Errorf("Keyword(%q) = %q, want %q", body, got, want)
		}
	}
}

func TestKeys(t *testing.T) {
	conv := &messagingv1.ConversationRef{Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS, CustomerAddress: "+1", ChatServiceSid: "IS1", MessagingServiceSid: "MG1"}
	cust, keys := Keys(conv)
	if cust != "+1" || len(keys) != 2 || keys[0] != "mg:MG1" || keys[1] != "svc:IS1" {
		t.Errorf("Keys = %q %q", cust, keys)
	}
	_, keys = Keys(&messagingv1.ConversationRef{Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING, CustomerAddress: "+1", BusinessAddress: "+2"})
	if len(keys) != 1 || keys[0] != "num:+2" {
		t.Errorf("messaging keys = %q", keys)
	}
}

func TestStateOf(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	wa := messagingv1.Channel_CHANNEL_WHATSAPP
	c := &Contact{Scopes: map[string]Scope{
		"num:a": {LastInboundAt: now.Add(-23 * time.Hour)},
		"num:b": {LastInboundAt: now.Add(-25 * time.Hour)},
		"num:c": {LastInboundAt: now.Add(-time.Hour), WindowClosedAt: now.Add(-30 * time.Minute)},
		"mg:m":  {OptedOut: true, ConsentSource: "keyword:STOP", ConsentChangedAt: now.Add(-time.Minute)},
	}}
	tests := []struct {
		name     string
		keys     []string
		ch       messagingv1.Channel
		open     bool
		optedOut bool
	}{
		{"inside the window", []string{"num:a"}, wa, true, false},
		{"past 24 hours", []string{"num:b"}, wa, false, false},
		{"closed by twilio after the last message", []string{"num:c"}, wa, false, false},
		{"never wrote", []string{"num:z"}, wa, false, false},
		{"opted out through the messaging service", []string{"mg:m", "num:a"}, wa, true, true},
		{"sms has no window", []string{"num:a"}, messagingv1.Channel_CHANNEL_SMS, false, false},
	}
	for _, tt := range tests {
		st := StateOf(c, tt.keys, tt.ch, now)
		if st.WindowOpen != tt.open || st.OptedOut != tt.optedOut {
			t.Errorf("%s: %+v, want open %v opted out %v", tt.name, st, tt.open, tt.optedOut)
		}
		if st.WindowOpen && !st.WindowExpiresAt.Equal(now.Add(time.Hour)) {
			t.Errorf("%s: window expires %v, want in an hour", tt.name, st.WindowExpiresAt)
		}
	}
	if st := StateOf(nil, []string{"num:a"}, wa, now); st.WindowOpen || st.OptedOut || !st.WindowApplies {
		t.Errorf("unknown contact: %+v", st)
	}
}

func TestStoreRoundTrip(t *testing.T) {
	s := New(mongotest.Database(t))
	ctx := context.Background()
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	keys := []string{"num:whatsapp:+15550001", "mg:MG1"}
	if _, err := s.TouchInbound(ctx, "t1", "whatsapp:+1555", keys, at); err != nil {
		t.Fatal(err)
	}
	// An older message arriving late does not move the window back.
	if _, err := s.TouchInbound(ctx, "t1", "whatsapp:+1555", keys, at.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	written, err := s.SetConsent(ctx, "t1", "whatsapp:+1555", keys[1:], true, "opt_out_type:STOP", at)
	if err != nil {
		t.Fatal(err)
	}
	// What a write returns is what is stored (it is announced without a
	// read-back).
	c, err := s.GetFresh(ctx, "t1", "whatsapp:+1555")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := StateOf(written, keys, messagingv1.Channel_CHANNEL_WHATSAPP, at), StateOf(c, keys, messagingv1.Channel_CHANNEL_WHATSAPP, at); got != want {
		t.Errorf("state of the written contact = %+v, stored %+v", got, want)
	}
	st := StateOf(c, keys, messagingv1.Channel_CHANNEL_WHATSAPP, at.Add(time.Hour))
	if !st.WindowOpen || !st.LastInboundAt.Equal(at) || !st.OptedOut || st.ConsentSource != "opt_out_type:STOP" {
		t.Errorf("state = %+v", st)
	}
	if _, err := s.CloseWindow(ctx, "t1", "whatsapp:+1555", keys, at.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	c, _ = s.Get(ctx, "t1", "whatsapp:+1555")
	if st := StateOf(c, keys, messagingv1.Channel_CHANNEL_WHATSAPP, at.Add(3*time.Hour)); st.WindowOpen {
		t.Errorf("window open after Twilio closed it: %+v", st)
	}
	if c, err := s.Get(ctx, "t1", "+1999"); c != nil || err != nil {
		t.Errorf("unknown contact = %v, %v", c, err)
	}
}

func TestTouchInboundSkipsWhatIsAlreadyKnown(t *testing.T) {
	s := New(mongotest.Database(t))
	ctx := context.Background()
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	keys := []string{"num:whatsapp:+15550001"}
	stored := func() time.Time {
		t.Helper()
		c, err := s.GetFresh(ctx, "t1", "whatsapp:+1555")
		if err != nil || c == nil {
			t.Fatalf("read: %v %v", c, err)
		}
		return c.Scopes[keys[0]].LastInboundAt
	}
	if c, err := s.TouchInbound(ctx, "t1", "whatsapp:+1555", keys, at); err != nil || c == nil {
		t.Fatalf("first touch: %v %v", c, err)
	}
	// A second message within the granularity changes nothing worth a write.
	if c, err := s.TouchInbound(ctx, "t1", "whatsapp:+1555", keys, at.Add(TouchGranularity/2)); err != nil || c != nil {
		t.Fatalf("touch within the granularity: %v %v", c, err)
	}
	if got := stored(); !got.Equal(at) {
		t.Errorf("stored %v, want %v", got, at)
	}
	// One further on is written.
	later := at.Add(TouchGranularity + time.Second)
	if c, err := s.TouchInbound(ctx, "t1", "whatsapp:+1555", keys, later); err != nil || c == nil {
		t.Fatalf("later touch: %v %v", c, err)
	}
	if got := stored(); !got.Equal(later) {
		t.Errorf("stored %v, want %v", got, later)
	}
	// After Twilio closed the window, the next message reopens it at once.
	if _, err := s.CloseWindow(ctx, "t1", "whatsapp:+1555", keys, later.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	again := later.Add(2 * time.Second)
	if c, err := s.TouchInbound(ctx, "t1", "whatsapp:+1555", keys, again); err != nil || c == nil {
		t.Fatalf("touch after the window closed: %v %v", c, err)
	}
	if got := stored(); !got.Equal(again) {
		t.Errorf("stored %v, want %v", got, again)
	}
	// Another process's copy is not trusted: a fresh store writes.
	other := New(s.c.Database())
	if c, err := other.TouchInbound(ctx, "t1", "whatsapp:+1555", keys, again.Add(time.Second)); err != nil || c == nil {
		t.Fatalf("touch on a store without a copy: %v %v", c, err)
	}
}
