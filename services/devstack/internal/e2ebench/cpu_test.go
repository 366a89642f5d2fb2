package e2ebench

import "testing"

func TestComponentOfAFunction(t *testing.T) {
	for fn, want := range map[string]string{
		"github.com/switchboard-cc/switchboard/services/sessions/internal/core.(*Core).handleInbound": "sessions",
		"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/send.(*Sender).send": "outbound-sender",
		"github.com/switchboard-cc/switchboard/services/chat-handler.(*Handler).ServeHTTP":            "chat-handler",
		"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/sim.(*Engine).send":       "Twilio emulator",
		"github.com/switchboard-cc/switchboard/services/devstack/internal/e2ebench.(*run).fixedRate":  "load generator and scripted agents",
		"github.com/switchboard-cc/switchboard/services/devstack.Start":                               "",
		"github.com/FerretDB/FerretDB/internal/handler.(*Handler).MsgUpdate":                          "FerretDB (SQLite)",
		"modernc.org/sqlite/lib._sqlite3VdbeExec":                                                     "FerretDB (SQLite)",
		"github.com/nats-io/nats-server/v2/server.(*fileStore).syncBlocks":                            "NATS server (JetStream)",
		"github.com/nats-io/nats.go.(*Conn).publish":                                                  "",
		"github.com/switchboard-cc/switchboard/pkg/bus.(*Bus).Settle":                                 "",
		"runtime.gcBgMarkWorker": "Go GC (background)",
		"runtime.mallocgc":       "",
	} {
		if got := component(fn); got != want {
			t.Errorf("component(%s) = %q, want %q", fn, got, want)
		}
	}
}

func TestFerretCommandOfAFunction(t *testing.T) {
	for fn, want := range map[string]string{
		"github.com/FerretDB/FerretDB/internal/handler.(*Handler).MsgUpdate":        "update",
		"github.com/FerretDB/FerretDB/internal/handler.(*Handler).MsgFindAndModify": "findandmodify",
		"github.com/FerretDB/FerretDB/internal/handler.(*Handler).MsgFind.func2":    "find",
		"github.com/FerretDB/FerretDB/internal/handler/sjson.Marshal":               "",
	} {
		if got := ferretCommand(fn); got != want {
			t.Errorf("ferretCommand(%s) = %q, want %q", fn, got, want)
		}
	}
}
