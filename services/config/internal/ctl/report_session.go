package ctl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
)

// session prints one session's record and its workflow path.
func (c *cli) session(ctx context.Context, args []string) error {
	fs := c.reportFlags("report session")
	tenant := fs.String("tenant", "", "tenant")
	tz := fs.String("tz", "UTC", "IANA time zone of the times shown")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *tenant == "" || len(pos) != 1 {
		return errors.New("usage: switchboardctl report session <session> --tenant T [--tz Europe/Zurich]")
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("--tz %q is not an IANA time zone", *tz)
	}
	client, done, err := c.reporting()
	if err != nil {
		return err
	}
	defer done()
	res, err := client.GetSession(ctx, &reportingv1.GetSessionRequest{TenantId: *tenant, SessionId: pos[0]})
	if err != nil {
		return err
	}
	r := res.GetSession()
	at := func(t *timestamppb.Timestamp) string {
		if t == nil {
			return "-"
		}
		return t.AsTime().In(loc).Format("2006-01-02 15:04:05")
	}
	cost := "- (no price table for it)"
	if r.GetEstimatedCost() != "" {
		cost = r.GetEstimatedCost() + " " + r.GetCurrency() + " (an estimate: Twilio's bill adds carrier fees)"
	}
	tw := tabwriter.NewWriter(c.io.Stdout, 0, 0, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"session", r.GetSessionId()},
		{"service", orDash(r.GetServiceId())},
		{"channel", strings.ToLower(strings.TrimPrefix(r.GetChannel().String(), "CHANNEL_"))},
		{"customer", orDash(r.GetCustomerAddress()) + " (" + orDash(r.GetCustomerCountry()) + ")"},
		{"state", strings.ToLower(strings.TrimPrefix(r.GetState().String(), "SESSION_STATE_"))},
		{"outcome", strings.ToLower(strings.TrimPrefix(r.GetOutcome().String(), "OUTCOME_")) + " " + r.GetEndReason()},
		{"agent", orDash(r.GetAgentId())},
		// A transfer: every service queued in and every agent who accepted.
		{"queued in", orDash(strings.Join(r.GetServices(), " → "))},
		{"accepted by", orDash(strings.Join(r.GetAgents(), " → "))},
		{"started", at(r.GetStartedAt())}, {"queued", at(r.GetQueuedAt())}, {"accepted", at(r.GetAcceptedAt())}, {"ended", at(r.GetEndedAt())},
		{"messages", fmt.Sprintf("%d in, %d out, %d failed sends", r.GetInboundMessages(), r.GetOutboundMessages(), r.GetFailedSends())},
		{"offers", fmt.Sprintf("%d (%d declined, %d not answered)", r.GetOffers(), r.GetDeclines(), r.GetRonas())},
		{"segments", fmt.Sprintf("%d in, %d out", r.GetSegmentsIn(), r.GetSegmentsOut())},
		{"estimated cost", cost},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", kv[0], strings.TrimSpace(kv[1]))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.io.Stdout)
	if len(r.GetSteps()) == 0 {
		fmt.Fprintln(c.io.Stdout, "workflow path: no steps recorded")
		return nil
	}
	fmt.Fprintln(c.io.Stdout, "workflow path:")
	tw = tabwriter.NewWriter(c.io.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tTIME\tACTIVITY\tTYPE\tBRANCH\tTOOK")
	for _, s := range r.GetSteps() {
		activity := s.GetActivityId()
		if s.GetLabel() != "" {
			activity += " (" + s.GetLabel() + ")"
		}
		typ := s.GetActivityType()
		if s.GetTypeName() != "" {
			typ = s.GetTypeName()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", s.GetStep(), at(s.GetCompletedAt()), activity, typ, orDash(s.GetBranch()), dur(s.GetDuration()))
	}
	return tw.Flush()
}
