package ctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

// Sign-in: where the sessions gateway is, the password, and where the
// token is kept for the other commands.
const (
	EnvSessionsURL     = "SWITCHBOARD_SESSIONS_URL"
	EnvPassword        = "SWITCHBOARD_PASSWORD"
	EnvTokenFile       = "SWITCHBOARD_TOKEN_FILE"
	DefaultSessionsURL = "http://127.0.0.1:8081"
)

const loginUsage = `switchboardctl login --tenant T --email E [--password-stdin] [--url URL] [--print]
    sign in as a user of the tenant (analyst, supervisor, admin or agent) through the sessions
    gateway's POST /login; the password comes from SWITCHBOARD_PASSWORD, the first line of stdin
    with --password-stdin, else a prompt on the terminal. The token is saved where the other
    commands read it (SWITCHBOARD_TOKEN_FILE, default <user config dir>/switchboard/token, mode
    0600) until it expires or switchboardctl logout; --print writes it to stdout instead.
    --url is the gateway (env SWITCHBOARD_SESSIONS_URL, default http://127.0.0.1:8081).
switchboardctl logout
    forget the saved token
`

// tokenFile is where login keeps the token.
func (c *cli) tokenFile() (string, error) {
	if p := c.env(EnvTokenFile); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no place for the token (%v): set %s", err, EnvTokenFile)
	}
	return filepath.Join(dir, "switchboard", "token"), nil
}

func (c *cli) login(ctx context.Context, args []string) error {
	fs := c.flags("login")
	fs.Usage = func() { fmt.Fprint(c.io.Stderr, loginUsage) }
	tenant := fs.String("tenant", "", "tenant id")
	email := fs.String("email", "", "sign-in email")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	printOnly := fs.Bool("print", false, "print the token instead of saving it")
	url := c.env(EnvSessionsURL)
	if url == "" {
		url = DefaultSessionsURL
	}
	fs.StringVar(&url, "url", url, "sessions gateway URL")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return fmt.Errorf("unexpected argument %q", pos[0])
	case !subjects.ValidTenantID(*tenant):
		return fmt.Errorf("--tenant %q: a tenant id (lower-case slug) is required", *tenant)
	case strings.TrimSpace(*email) == "":
		return errors.New("--email is required")
	}
	password, err := c.password(*fromStdin)
	if err != nil {
		return err
	}
	s, err := agentclient.SignIn(ctx, url, *tenant, strings.TrimSpace(*email), password)
	var se *agentclient.SignInError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusTooManyRequests:
		return fmt.Errorf("too many failed sign-ins: try again in %s (%s)", se.RetryAfter, se.Message)
	case errors.As(err, &se):
		return fmt.Errorf("sign-in refused: %s", se.Message)
	case err != nil:
		return fmt.Errorf("sign in at %s: %w", url, err)
	}
	if *printOnly {
		_, err := fmt.Fprintln(c.io.Stdout, s.Token)
		return err
	}
	path, err := c.tokenFile()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(s.Token+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(c.io.Stdout, "signed in to %s as %s (%s) until %s; token saved to %s\n",
		*tenant, s.User.DisplayName, strings.Join(s.Roles, ", "), s.ExpiresAt.Local().Format(time.RFC3339), path)
	return nil
}

// password is SWITCHBOARD_PASSWORD, stdin's first line, or typed at a
// terminal prompt.
func (c *cli) password(fromStdin bool) (string, error) {
	var p string
	switch {
	case fromStdin:
		line, err := bufio.NewReader(c.io.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("--password-stdin: no password on stdin")
		}
		p = strings.TrimRight(line, "\r\n")
	case c.env(EnvPassword) != "":
		p = c.env(EnvPassword)
	case c.io.ReadPassword != nil:
		var err error
		if p, err = c.io.ReadPassword("Password: "); err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
	default:
		return "", fmt.Errorf("no password: set %s, pass --password-stdin or run on a terminal", EnvPassword)
	}
	if p == "" {
		return "", errors.New("the password is empty")
	}
	return p, nil
}

func (c *cli) logout(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("logout takes no arguments")
	}
	path, err := c.tokenFile()
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	fmt.Fprintf(c.io.Stdout, "signed out (%s removed)\n", path)
	return nil
}

// savedToken is the token login saved, if any and not expired; an expired
// one is an error saying so when there is no other way to a token.
func (c *cli) savedToken() (string, error) {
	path, err := c.tokenFile()
	if err != nil {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err != nil {
		return "", fmt.Errorf("%s does not hold a token (%v): run switchboardctl login again", path, err)
	}
	if claims.ExpiresAt != nil && !claims.ExpiresAt.After(time.Now()) {
		return "", fmt.Errorf("the saved sign-in expired at %s: run switchboardctl login again", claims.ExpiresAt.Local().Format(time.RFC3339))
	}
	return tok, nil
}
