package gateway

import "github.com/switchboard-cc/switchboard/pkg/telemetry"

var meter = telemetry.NewMeter("github.com/switchboard-cc/switchboard/services/sessions/internal/gateway")

var wsConnections = meter.UpDown(
	"switchboard.sessions.websocket.connections", "Agent websockets open on this process (signed in or not yet).")

var resumes = meter.Counter(
	"switchboard.sessions.websocket.resumes", "Reconnecting agent sockets that asked to resume, by whether they did (resumed) or got a snapshot instead.")
