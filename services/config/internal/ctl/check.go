package ctl

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// connector runs `switchboardctl connector check <id> --tenant T`.
func (c *cli) connector(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "check" {
		return errors.New("usage: switchboardctl connector check <id> --tenant T [-o json]")
	}
	fs := c.flags("connector check")
	tenant := fs.String("tenant", "", "tenant (required)")
	output := fs.String("o", "text", "output: text or json")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 || *tenant == "" {
		return errors.New("usage: switchboardctl connector check <id> --tenant T [-o json]")
	}
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := configv1.NewChannelServiceClient(conn).CheckProviderConnector(ctx,
		&configv1.CheckProviderConnectorRequest{TenantId: *tenant, Id: pos[0]})
	if err != nil {
		return err
	}
	failed := 0
	for _, f := range res.GetFindings() {
		if !f.GetOk() {
			failed++
		}
	}
	switch *output {
	case "json":
		b, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true}.Marshal(res)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.io.Stdout, string(b))
	case "text":
		printFindings(c, *tenant, pos[0], res.GetFindings(), failed)
	default:
		return fmt.Errorf("-o %q: want text or json", *output)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d checks of connector %s failed", failed, len(res.GetFindings()), pos[0])
	}
	return nil
}

func printFindings(c *cli, tenant, id string, fs []*configv1.ConnectorFinding, failed int) {
	w := c.io.Stdout
	fmt.Fprintf(w, "connector %s of tenant %s: %d checks, %d failed\n", id, tenant, len(fs), failed)
	for _, f := range fs {
		mark := "ok  "
		if !f.GetOk() {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "\n%s  %-22s %s\n", mark, f.GetCheck(), f.GetSubject())
		line := func(label, v string) {
			if v != "" {
				fmt.Fprintf(w, "      %-8s %s\n", label, strings.ReplaceAll(v, "\n", "\n               "))
			}
		}
		line("problem:", f.GetProblem())
		line("fix:", f.GetFix())
		line("found:", f.GetDetail())
	}
}
