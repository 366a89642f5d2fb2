package chaos

import (
	"context"
	"fmt"
	"time"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
)

// distributionView is what distribution says, at the end of a run, of the
// tasks of sessions no agent took and of every agent: why a queued task
// was never offered (no agent available, all at capacity, RONA, a task
// distribution does not know).
func (d *driver) distributionView(ctx context.Context, tasks []string) []string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := dialAs(d.st.info, d.st.info.DistributionAddr, tenantID, authn.RoleSupervisor)
	if err != nil {
		return []string{"distribution's view: " + err.Error()}
	}
	defer conn.Close()
	c := distributionv1.NewDistributionServiceClient(conn)
	var out []string
	for _, id := range tasks {
		r, err := c.GetTask(ctx, &distributionv1.GetTaskRequest{TenantId: tenantID, TaskId: id})
		if err != nil {
			out = append(out, fmt.Sprintf("distribution: task %s: %v", id, err))
			continue
		}
		t := r.GetTask()
		out = append(out, fmt.Sprintf("distribution: task %s %s agent %q position %d skills %v", id, t.GetState(), t.GetAgentId(), t.GetPosition(), t.GetRequiredSkills()))
	}
	for i := range d.cfg.Agents {
		id := fmt.Sprintf("agent%02d", i)
		r, err := c.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: tenantID, AgentId: id})
		if err != nil {
			out = append(out, fmt.Sprintf("distribution: agent %s: %v", id, err))
			continue
		}
		s := r.GetState()
		out = append(out, fmt.Sprintf("distribution: agent %s %s rona=%v tasks %d/%d offers %d wrapping %d", id, s.GetPresence(), s.GetRona(),
			s.GetActiveTasks(), s.GetCapacity(), len(s.GetOffers()), len(s.GetWrappingTaskIds())))
	}
	return out
}
