package runner

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/switchboard-cc/switchboard/pkg/telemetry"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

var (
	meter = telemetry.NewMeter("github.com/switchboard-cc/switchboard/services/workflow-runner/internal/runner")
	steps = meter.Counter("switchboard.workflow.steps",
		"Workflow activities completed, by activity type (message, queue_task, …).")
	failures = meter.Counter("switchboard.workflow.failures",
		"Workflow instances failed, by the type of the activity that failed (workflow when the definition itself was at fault).")
)

// activityLabel keeps label values to the known activity types.
func activityLabel(t string) string {
	if t == "" {
		return "workflow"
	}
	if _, ok := workflowdef.Lookup(t); !ok {
		return "unknown"
	}
	return t
}

func recordStep(activityType string) {
	a := metric.WithAttributes(attribute.String("activity", activityLabel(activityType)))
	steps.Add(context.Background(), 1, a)
	// The activity's failures show from zero, so a ratio of failures to
	// steps exists before the first failure.
	failures.Add(context.Background(), 0, a)
}

func recordFailure(activityType string) {
	failures.Add(context.Background(), 1, metric.WithAttributes(attribute.String("activity", activityLabel(activityType))))
}
