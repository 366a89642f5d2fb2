package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/chatwebhook"
)

// EnvChatHandler is chat-handler's base URL for reconcile.
const EnvChatHandler = "SWITCHBOARD_CHAT_HANDLER_URL"

const reconcileUsage = "usage: switchboardctl reconcile --tenant T --since <duration ago, e.g. 2h, or RFC 3339> [--until RFC 3339]"

// reconcile runs `switchboardctl reconcile`: chat-handler reads the
// tenant's messages over the window back from Twilio and publishes what
// never arrived; the CLI prints what it did.
func (c *cli) reconcile(ctx context.Context, args []string) error {
	fs := c.flags("reconcile")
	tenant := fs.String("tenant", "", "tenant (required)")
	sinceArg := fs.String("since", "", "start of the window: a duration ago (2h, 30m) or an RFC 3339 time (required)")
	untilArg := fs.String("until", "", "end of the window, RFC 3339 (default now)")
	base := c.env(EnvChatHandler)
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	chatURL := fs.String("chat-handler", base, "chat-handler's base URL (env "+EnvChatHandler+")")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait for the run")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *tenant == "" || *sinceArg == "" {
		return errors.New(reconcileUsage)
	}
	since := *sinceArg
	if d, err := time.ParseDuration(since); err == nil {
		since = time.Now().Add(-d).UTC().Format(time.RFC3339)
	}
	body, err := json.Marshal(chatwebhook.ReconcileRequest{Since: since, Until: *untilArg})
	if err != nil {
		return err
	}
	tok, err := c.bearer()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	target := chatwebhook.TenantURL(*chatURL, url.PathEscape(*tenant), chatwebhook.PathReconcile)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reconcile through %s: %w", *chatURL, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return fmt.Errorf("reconcile: %s (%d)", e.Error, res.StatusCode)
		}
		return fmt.Errorf("reconcile: %s: %s", res.Status, strings.TrimSpace(string(raw)))
	}
	var rep chatwebhook.ReconcileReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("reconcile: unreadable answer: %w", err)
	}
	w := c.io.Stdout
	fmt.Fprintf(w, "tenant %s, %s to %s\n", *tenant, rep.Since.Format(time.RFC3339), rep.Until.Format(time.RFC3339))
	fmt.Fprintf(w, "  messaging entries           %d\n", rep.Entries)
	fmt.Fprintf(w, "  messages listed by Twilio   %d\n", rep.Listed)
	fmt.Fprintf(w, "  customer messages published %d (those already in a chat are dropped by sessions)\n", rep.CustomerMessages)
	fmt.Fprintf(w, "  delivery statuses published %d\n", rep.Statuses)
	if rep.Refused > 0 {
		fmt.Fprintf(w, "  refused (entry disabled)    %d\n", rep.Refused)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("reconcile: %d entries could not be read back; run it again", len(rep.Problems))
	}
	return nil
}
