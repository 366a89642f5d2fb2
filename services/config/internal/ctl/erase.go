package ctl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

const eraseUsage = "usage: switchboardctl erase-customer --tenant T [--wait 2m] <address: +E.164 or whatsapp:+E.164>"

// eraseCustomer runs `switchboardctl erase-customer --tenant T <address>`:
// it asks config to erase the customer, then waits for sessions,
// reporting and outbound-sender to answer and prints what each removed.
func (c *cli) eraseCustomer(ctx context.Context, args []string) error {
	fs := c.flags("erase-customer")
	tenant := fs.String("tenant", "", "tenant (required)")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for the services to answer (0: do not wait)")
	poll := fs.Duration("poll", 500*time.Millisecond, "how often to ask")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *tenant == "" {
		return errors.New(eraseUsage)
	}
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	client := configv1.NewTenantServiceClient(conn)
	res, err := client.EraseCustomer(ctx, &configv1.EraseCustomerRequest{TenantId: *tenant, Address: pos[0]})
	if err != nil {
		return err
	}
	id := res.GetErasureId()
	fmt.Fprintf(c.io.Stdout, "erasure %s requested of %s\n", id, strings.Join(res.GetServices(), ", "))
	if *wait <= 0 {
		return nil
	}
	deadline := time.Now().Add(*wait)
	printed := map[string]bool{}
	for {
		st, err := client.GetCustomerErasure(ctx, &configv1.GetCustomerErasureRequest{TenantId: *tenant, ErasureId: id})
		if err != nil {
			return err
		}
		for _, done := range st.GetCompletions() {
			if printed[done.GetService()] {
				continue
			}
			printed[done.GetService()] = true
			fmt.Fprintf(c.io.Stdout, "%-16s %s\n", done.GetService(), formatCounts(done.GetCounts()))
		}
		if len(st.GetPending()) == 0 {
			fmt.Fprintf(c.io.Stdout, "erasure %s complete\n", id)
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("erasure %s: no answer within %s from %s (is it running? it will erase when it catches up; check with erase-customer again, which is safe)",
				id, *wait, strings.Join(st.GetPending(), ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(*poll):
		}
	}
}

func formatCounts(counts map[string]int64) string {
	if len(counts) == 0 {
		return "nothing stored"
	}
	parts := make([]string, 0, len(counts))
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}
