// Package ctl is switchboardctl, the config service's admin CLI: it applies
// tenant YAML files (through tenantspec, the same path the all-in-one
// binary seeds the demo tenant with), creates, lists, shows and deletes
// single records from flags, mints dev tokens, and re-encrypts secrets
// after a key rotation.
package ctl

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/tenantspec"
)

// Environment variables the CLI reads.
const (
	EnvAddr     = "SWITCHBOARD_CONFIG_ADDR"
	EnvToken    = "SWITCHBOARD_TOKEN"
	EnvAuthKeys = "SWITCHBOARD_AUTH_KEYS"
	DefaultAddr = "127.0.0.1:9090"
)

// IO is what the CLI reads and writes; main passes the process's.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// LookupEnv reads an environment variable.
	LookupEnv func(string) (string, bool)
	// ReadFile reads a file named by -f.
	ReadFile func(string) ([]byte, error)
	// ReadPassword prompts on the terminal and reads a password without
	// echo; nil when stdin is not a terminal.
	ReadPassword func(prompt string) (string, error)
}

const usage = `switchboardctl: administer Switchboard's config service.

Usage:
  switchboardctl apply -f tenant.yaml     create or update a whole tenant (idempotent; -f - reads stdin)
  switchboardctl apply --demo             apply the built-in demo tenant
  switchboardctl create <kind> [flags]    create one record (switchboardctl create <kind> -h)
  switchboardctl list <kind> --tenant T   list records (kinds: tenants, ous, connectors, entries,
                                          services, users, workflows)
  switchboardctl get <kind> <id> --tenant T
  switchboardctl delete <kind> <id> --tenant T
  switchboardctl rotate-secrets [--tenant T]
                                          re-seal connector secrets with the newest key
  switchboardctl connector check <id> --tenant T [-o json]
                                          check a connector against Twilio: credentials in its region,
                                          its numbers' and services' webhooks, a self-test through
                                          chat-handler; exits 1 when a check fails
  switchboardctl login --tenant T --email E [--password-stdin]
                                          sign in as a user (an analyst, say) through the sessions
                                          gateway; the other commands then use that token
                                          (switchboardctl login -h; logout forgets it)
  switchboardctl token --tenant T --role R
                                          mint a dev token (roles: admin, supervisor, agent, analyst,
                                          platform, service) from SWITCHBOARD_AUTH_KEYS
  switchboardctl erase-customer --tenant T <address>
                                          forget a customer (E.164 or whatsapp:+E.164): transcripts and
                                          message bodies deleted, address masked in sessions, reporting
                                          and outbound-sender; waits for each (--wait 2m) and prints
                                          what it removed
  switchboardctl reconcile --tenant T --since 2h [--until RFC3339]
                                          after an outage: read the tenant's messages back from Twilio's
                                          history and ingest what never arrived (through chat-handler,
                                          --chat-handler or env SWITCHBOARD_CHAT_HANDLER_URL)
  switchboardctl demo                     print the demo tenant's YAML
  switchboardctl report summarize|export|transcript
                                          summaries, session exports and transcripts from the
                                          reporting service (switchboardctl report -h)

Connection (every command but login, logout, token and demo):
  --addr      config service address (env SWITCHBOARD_CONFIG_ADDR, default 127.0.0.1:9090)
  --token     bearer token (env SWITCHBOARD_TOKEN); when empty, the token switchboardctl login
              saved; without one, when SWITCHBOARD_AUTH_KEYS is set, the CLI mints itself a
              15-minute platform token (development)
  --tls       use TLS with the system's roots
`

// Main runs the CLI and returns the exit code.
func Main(ctx context.Context, args []string, io IO) int {
	if io.ReadFile == nil {
		io.ReadFile = os.ReadFile
	}
	c := &cli{io: io}
	if err := c.run(ctx, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(io.Stderr, "switchboardctl:", err)
		return 1
	}
	return 0
}

type cli struct {
	io IO

	addr, token string
	tls         bool
}

func (c *cli) env(name string) string {
	if c.io.LookupEnv == nil {
		return ""
	}
	v, _ := c.io.LookupEnv(name)
	return v
}

func (c *cli) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.io.Stderr, usage)
		return errors.New("no command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "apply":
		return c.apply(ctx, rest)
	case "create":
		return c.create(ctx, rest)
	case "list", "ls":
		return c.list(ctx, rest)
	case "get", "show":
		return c.get(ctx, rest)
	case "delete", "rm":
		return c.delete(ctx, rest)
	case "rotate-secrets":
		return c.rotate(ctx, rest)
	case "connector":
		return c.connector(ctx, rest)
	case "token":
		return c.mintToken(rest)
	case "login":
		return c.login(ctx, rest)
	case "logout":
		return c.logout(rest)
	case "report":
		return c.report(ctx, rest)
	case "erase-customer":
		return c.eraseCustomer(ctx, rest)
	case "reconcile":
		return c.reconcile(ctx, rest)
	case "demo":
		_, err := c.io.Stdout.Write(tenantspec.DemoYAML())
		return err
	case "help", "-h", "--help":
		fmt.Fprint(c.io.Stdout, usage)
		return nil
	}
	fmt.Fprint(c.io.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// flags makes a flag set with the connection flags.
func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.io.Stderr)
	addr := c.env(EnvAddr)
	if addr == "" {
		addr = DefaultAddr
	}
	fs.StringVar(&c.addr, "addr", addr, "config service address")
	fs.StringVar(&c.token, "token", c.env(EnvToken), "bearer token")
	fs.BoolVar(&c.tls, "tls", false, "use TLS")
	return fs
}

// parse parses flags that may come before or after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// bearer is the token the CLI calls with: --token, else the one login
// saved, else a 15-minute platform token minted from the auth keys.
func (c *cli) bearer() (string, error) {
	tok := c.token
	var savedErr error
	if tok == "" {
		tok, savedErr = c.savedToken()
	}
	if tok != "" {
		return tok, nil
	}
	keysHex := c.env(EnvAuthKeys)
	switch {
	case keysHex == "" && savedErr != nil:
		return "", savedErr
	case keysHex == "":
		return "", fmt.Errorf("no token: sign in (switchboardctl login), set %s (switchboardctl token …) or %s to let the CLI mint one", EnvToken, EnvAuthKeys)
	case savedErr != nil:
		fmt.Fprintf(c.io.Stderr, "switchboardctl: %v; using a platform token from %s\n", savedErr, EnvAuthKeys)
	}
	keys, err := authn.ParseKeys(keysHex)
	if err != nil {
		return "", fmt.Errorf("%s: %w", EnvAuthKeys, err)
	}
	return keys.Mint(authn.Claims{
		Roles: []string{authn.RolePlatform}, Name: "switchboardctl",
		RegisteredClaims: jwt.RegisteredClaims{Subject: "switchboardctl"},
	}, 15*time.Minute)
}

func (c *cli) dial() (*grpc.ClientConn, error) {
	tok, err := c.bearer()
	if err != nil {
		return nil, err
	}
	transport := insecure.NewCredentials()
	if c.tls {
		transport = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(transport), grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", c.addr, err)
	}
	return conn, nil
}

func (c *cli) apply(ctx context.Context, args []string) error {
	fs := c.flags("apply")
	file := fs.String("f", "", "tenant YAML file (- for stdin)")
	demo := fs.Bool("demo", false, "apply the built-in demo tenant")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var spec *tenantspec.Spec
	switch {
	case *demo:
		spec = tenantspec.Demo()
	case *file == "":
		return errors.New("apply needs -f <file> or --demo")
	default:
		var data []byte
		var err error
		if *file == "-" {
			data, err = io.ReadAll(c.io.Stdin)
		} else {
			data, err = c.io.ReadFile(*file)
		}
		if err != nil {
			return err
		}
		if spec, err = tenantspec.Parse(data); err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		lookup := c.io.LookupEnv
		if lookup == nil {
			lookup = func(string) (string, bool) { return "", false }
		}
		if err := spec.ExpandEnv(lookup); err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
	}
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res, err := tenantspec.Apply(ctx, conn, spec)
	fmt.Fprint(c.io.Stdout, res.String())
	if err != nil {
		return err
	}
	fmt.Fprintf(c.io.Stdout, "tenant %s: %d changed, %d unchanged\n", spec.Tenant.ID, res.Changed(), len(res.Actions)-res.Changed())
	return nil
}

func (c *cli) rotate(ctx context.Context, args []string) error {
	fs := c.flags("rotate-secrets")
	tenant := fs.String("tenant", "", "tenant (empty: all tenants, platform only)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	r, err := configv1.NewChannelServiceClient(conn).ReencryptConnectorSecrets(ctx, &configv1.ReencryptConnectorSecretsRequest{TenantId: *tenant})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.io.Stdout, "re-encrypted %d of %d connectors, %d of %d tenants' secrets\n", r.GetReencrypted(), r.GetChecked(),
		r.GetTenantsReencrypted(), r.GetTenantsChecked())
	return nil
}

func (c *cli) mintToken(args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(c.io.Stderr)
	tenant := fs.String("tenant", "", "tenant the token is for (empty for platform and service)")
	role := fs.String("role", authn.RoleAdmin, "comma-separated roles: admin, supervisor, agent, analyst, platform, service")
	subject := fs.String("subject", "", "subject (default: switchboardctl:<role>)")
	ttl := fs.Duration("ttl", 12*time.Hour, "lifetime")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	keysHex := c.env(EnvAuthKeys)
	if keysHex == "" {
		return fmt.Errorf("%s is not set: the token keys of the deployment (hex, comma-separated)", EnvAuthKeys)
	}
	keys, err := authn.ParseKeys(keysHex)
	if err != nil {
		return fmt.Errorf("%s: %w", EnvAuthKeys, err)
	}
	roles := strings.Split(*role, ",")
	for _, r := range roles {
		switch r {
		case authn.RoleAdmin, authn.RoleSupervisor, authn.RoleAgent, authn.RoleAnalyst:
			if *tenant == "" {
				return fmt.Errorf("role %s needs --tenant", r)
			}
		case authn.RolePlatform, authn.RoleService:
		default:
			return fmt.Errorf("unknown role %q", r)
		}
	}
	if *subject == "" {
		*subject = "switchboardctl:" + strings.Join(roles, "+")
	}
	tok, err := keys.Mint(authn.Claims{Tenant: *tenant, Roles: roles, Name: *subject, RegisteredClaims: jwt.RegisteredClaims{Subject: *subject}}, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.io.Stdout, tok)
	return nil
}
