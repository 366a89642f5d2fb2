package gateway

import "github.com/switchboard-cc/switchboard/pkg/telemetry"

var wsConnections = telemetry.NewMeter("github.com/switchboard-cc/switchboard/services/sessions/internal/gateway").UpDown(
	"switchboard.sessions.websocket.connections", "Agent websockets open on this process (signed in or not yet).")
