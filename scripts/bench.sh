#!/usr/bin/env bash
# make bench: Go micro-benchmarks, then the load drivers. Each driver runs
# the code under test next to a bare baseline in the same invocation and
# prints the ratio, so figures from this shared, noisy machine compare.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Go benchmarks"
go test -run '^$' -bench . -benchmem -count 1 ./pkg/... 2>&1 | grep -E '^(Benchmark|ok|PASS|FAIL|pkg:)' || true

echo
echo "== distribution: one offer decision with 2,000 busy agents and 1,000 to 10,000 waiting tasks (p50/p99 per size)"
go test -run '^$' -bench OfferDecision -count 1 ./services/distribution/internal/engine 2>&1 | grep -E '^(Benchmark|ok|FAIL)' || true

echo
echo "== distribution: offers/s with three replicas sharing the tenants vs one replica holding them all"
go run ./services/distribution/cmd/replica-bench

echo
echo "== distribution end to end: a new customer's first message → the offer frame at an agent, 200 new sessions/s, fsync on, next to the same webhooks' chat-handler answer"
go run ./services/devstack/cmd/offer-bench

echo
echo "== chat-handler: signed webhooks over loopback vs a bare HMAC handler"
go run ./services/chat-handler/cmd/webhook-bench

echo
echo "== outbound-sender: sends through the ledger vs a bare twilio-go loop"
go run ./services/outbound-sender/cmd/send-bench

echo
echo "== end to end: customers' webhooks → agents' websockets → Twilio (emulator) at 200 msg/s for 2 minutes, next to the ingress-only ceiling"
go run ./services/devstack/cmd/e2e-bench -rate 200 -duration 2m

echo
echo "== sessions store: transcript and reconnect reads with 1,000,000 messages stored"
go run ./services/sessions/cmd/store-bench

echo
echo "== reporting: projection and rollup writes, Summarize over a day, a month and a year with 1,000,000 sessions rolled up, exports"
go run ./services/reporting/cmd/report-bench

echo
echo "== workflow-runner: customer message → the workflow's reply (next to a bare JetStream round trip), 10,000 timers across a restart, steps/s; fsync on"
go run ./services/workflow-runner/cmd/workflow-bench

echo
echo "== sessions: idle agent websockets held and what each costs, next to a bare websocket server in the same run"
go run ./services/devstack/cmd/ws-bench
