package connect_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/connect"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
)

const key = "0101010101010101010101010101010101010101010101010101010101010101"

func TestOpenUsesInjectedAndClosesOnlyWhatItOpened(t *testing.T) {
	ns := natstest.Start(t)
	log := slog.New(slog.DiscardHandler)
	shared, err := bus.Connect(ns.ClientURL(), "shared", log)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	c, err := connect.Open(context.Background(), log, connect.Spec{
		Name: "svc", AuthKeys: key, Bus: shared,
		GRPC: []connect.Target{{Addr: "127.0.0.1:1"}, {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Bus != shared || c.Mongo != nil || c.Keys == nil {
		t.Errorf("Open = bus %p (want injected %p), mongo %v, keys %v", c.Bus, shared, c.Mongo, c.Keys)
	}
	if len(c.GRPC) != 2 || c.GRPC[0] == nil || c.GRPC[1] != nil {
		t.Errorf("GRPC = %v, want a connection then nil for the empty target", c.GRPC)
	}
	c.Close()
	if shared.NC.IsClosed() {
		t.Error("Close closed the injected bus")
	}

	own, err := connect.Open(context.Background(), log, connect.Spec{Name: "svc", AuthKeys: key, NATSURL: ns.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	nc := own.Bus.NC
	own.Close()
	if !nc.IsClosed() && !nc.IsDraining() {
		t.Error("Close left the bus it opened open")
	}
}

func TestOpenRejectsBadKeys(t *testing.T) {
	if _, err := connect.Open(context.Background(), slog.New(slog.DiscardHandler), connect.Spec{Name: "svc", AuthKeys: "nothex"}); err == nil {
		t.Error("Open with bad keys succeeded")
	}
}
