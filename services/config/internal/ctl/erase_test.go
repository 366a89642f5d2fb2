package ctl_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/erasure"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/configtest"
	"github.com/switchboard-cc/switchboard/services/config/internal/ctl"
	"github.com/switchboard-cc/switchboard/services/devstack/devstacktest"
)

// switchboardctl erase-customer against config, sessions, reporting and
// outbound-sender: each forgets the customer and only the customer, says
// what it removed, and a second run finds nothing left.
func TestEraseCustomerCommand(t *testing.T) {
	ctx := context.Background()
	info := devstacktest.Start(t, devstacktest.Only("config", "sessions", "reporting", "outbound-sender"))
	b, err := bus.ConnectAuth(info.NATSURL, t.Name(), info.NATSAuth, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	mc, err := mongodb.Connect(ctx, info.MongoURI)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	db := func(name string) string { return info.DatabasePrefix + name }
	const customer, other = "+41791234567", "+41790000000"
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)

	for _, s := range []struct{ id, customer string }{{"ss_e1", "whatsapp:" + customer}, {"ss_e2", other}} {
		// sessions: the session document and two transcript entries.
		if _, err := mc.Database(db("sessions")).Collection("sessions").InsertOne(ctx, bson.M{"_id": "demo/" + s.id, "tenant": "demo", "session_id": s.id,
			"state": "ended", "conversation": bson.M{"channel": "whatsapp", "customer": s.customer}, "customer_name": "Ann", "started_at": at}); err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"m1", "m2"} {
			msg := nats.NewMsg(subjects.Transcript("demo", s.id))
			msg.Data = []byte(`{"k":"m","m":{"ID":"` + m + `","Direction":"inbound","Sender":"customer","Body":"my card is 4111","At":"2026-03-02T09:00:00Z"}}`)
			if _, err := b.JS.PublishMsg(ctx, msg); err != nil {
				t.Fatal(err)
			}
		}
		// reporting: the record, from the session's start.
		if _, err := b.Publish(ctx, subjects.SessionStarted("demo"), &sessionv1.SessionStarted{TenantId: "demo", SessionId: s.id, ServiceId: "support",
			Conversation: &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_WHATSAPP, CustomerAddress: s.customer}, StartedAt: timestamppb.New(at)}); err != nil {
			t.Fatal(err)
		}
		// outbound-sender: a reply in the ledger.
		if _, err := mc.Database(db("outbound")).Collection("ledger").InsertOne(ctx, bson.M{"_id": "req:demo/rq-" + s.id, "session_id": s.id,
			"conversation": bson.M{"customer": s.customer}, "body": "your code is 1234", "requested_at": at, "created_at": at}); err != nil {
			t.Fatal(err)
		}
	}
	records := mc.Database(db("reporting")).Collection("sessions")
	customerOf := func(id string) string {
		var d struct {
			Customer string `bson:"customer"`
		}
		_ = records.FindOne(ctx, bson.M{"_id": "demo/" + id}).Decode(&d)
		return d.Customer
	}
	for deadline := time.Now().Add(30 * time.Second); customerOf("ss_e1") == "" || customerOf("ss_e2") == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("reporting did not record the sessions")
		}
	}

	env := map[string]string{ctl.EnvAddr: info.ConfigAddr, ctl.EnvAuthKeys: info.AuthKeysHex}
	_, errOut, code := run(t, env, "", "erase-customer", "--tenant", "demo", "0791234567")
	if code == 0 || !strings.Contains(errOut, "address") {
		t.Errorf("a malformed address: exit %d\n%s", code, errOut)
	}
	out, errOut, code := run(t, env, "", "erase-customer", "--tenant", "demo", "whatsapp:"+customer)
	if code != 0 {
		t.Fatalf("erase-customer: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"transcript_entries 2", "sessions_masked 1", "records_masked 1", "requests_blanked 1", "complete"} {
		if !strings.Contains(out, want) {
			t.Errorf("erase-customer said\n%s\nwant %q in it", out, want)
		}
	}

	transcriptLen := func(id string) uint64 {
		st, err := b.JS.Stream(ctx, subjects.StreamTranscript)
		if err != nil {
			t.Fatal(err)
		}
		si, err := st.Info(ctx, jetstream.WithSubjectFilter(subjects.Transcript("demo", id)))
		if err != nil {
			t.Fatal(err)
		}
		return si.State.Subjects[subjects.Transcript("demo", id)]
	}
	if n := transcriptLen("ss_e1"); n != 0 {
		t.Errorf("the customer's transcript has %d entries, want none", n)
	}
	if n := transcriptLen("ss_e2"); n != 2 {
		t.Errorf("another customer's transcript has %d entries, want 2", n)
	}
	var sess struct {
		Conversation struct {
			Customer string `bson:"customer"`
		} `bson:"conversation"`
		CustomerName string `bson:"customer_name"`
	}
	if err := mc.Database(db("sessions")).Collection("sessions").FindOne(ctx, bson.M{"_id": "demo/ss_e1"}).Decode(&sess); err != nil ||
		sess.Conversation.Customer != erasure.Masked || sess.CustomerName != "" {
		t.Errorf("the customer's session: %+v, %v; want masked", sess, err)
	}
	if got := customerOf("ss_e1"); got != erasure.Masked {
		t.Errorf("the customer's record names %q, want %q", got, erasure.Masked)
	}
	if got := customerOf("ss_e2"); got != other {
		t.Errorf("another customer's record names %q, want %q", got, other)
	}
	type entry struct {
		Body         string `bson:"body"`
		Conversation struct {
			Customer string `bson:"customer"`
		} `bson:"conversation"`
	}
	ledger := func(id string) entry {
		var d entry
		if err := mc.Database(db("outbound")).Collection("ledger").FindOne(ctx, bson.M{"_id": "req:demo/rq-" + id}).Decode(&d); err != nil {
			t.Fatalf("ledger entry %s: %v; it must stay", id, err)
		}
		return d
	}
	if d := ledger("ss_e1"); d.Body != "" || d.Conversation.Customer != erasure.Masked {
		t.Errorf("the customer's ledger entry: %v; want no body and the recipient masked", d)
	}
	if d := ledger("ss_e2"); d.Body != "your code is 1234" {
		t.Errorf("another customer's ledger entry: %v; want it as it was", d)
	}

	out, errOut, code = run(t, env, "", "erase-customer", "--tenant", "demo", customer)
	if code != 0 || !strings.Contains(out, "records_masked 0") || !strings.Contains(out, "requests_blanked 0") || !strings.Contains(out, "transcript_entries 0") {
		t.Errorf("erasing again: exit %d\n%s%s\nwant nothing left to remove", code, out, errOut)
	}
}

// With no service running, erase-customer gives up after --wait naming
// the services that did not answer.
func TestEraseCustomerCommandNamesSilentServices(t *testing.T) {
	e := configtest.Start(t)
	if _, err := configv1.NewTenantServiceClient(e.Platform(t)).CreateTenant(context.Background(),
		&configv1.CreateTenantRequest{Tenant: &configv1.Tenant{Id: "acme", DisplayName: "Acme"}}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{ctl.EnvAddr: e.Addr, ctl.EnvAuthKeys: e.AuthHex}
	out, errOut, code := run(t, env, "", "erase-customer", "--tenant", "acme", "--wait", "1s", "+41791234567")
	if code == 0 || !strings.Contains(out, "requested") || !strings.Contains(errOut, "no answer within 1s from sessions, reporting, outbound-sender") {
		t.Errorf("erase-customer with nobody answering: exit %d\n%s%s", code, out, errOut)
	}
}
