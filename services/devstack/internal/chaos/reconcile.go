package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/chatwebhook"
)

// reconcileFailures asks chat-handler to reconcile the tenant from
// Twilio's history over the window of the webhooks that did not get a
// 200 (a minute wider at each end), as an admin would after an incident,
// and notes its answer in the report.
func (d *driver) reconcileFailures(ctx context.Context) {
	d.mu.Lock()
	var from, to time.Time
	for _, m := range d.msgs {
		if !m.atTwilio || m.status == http.StatusOK {
			continue
		}
		if from.IsZero() || m.sent.Before(from) {
			from = m.sent
		}
		if m.answered.After(to) {
			to = m.answered
		}
	}
	d.mu.Unlock()
	if from.IsZero() {
		return
	}
	tok, err := d.st.info.AuthKeys.Mint(authn.Claims{Roles: []string{authn.RolePlatform}, Name: "chaos",
		RegisteredClaims: jwt.RegisteredClaims{Subject: "chaos"}}, 15*time.Minute)
	if err != nil {
		d.rep.Reconciled = "no token: " + err.Error()
		return
	}
	body, _ := json.Marshal(chatwebhook.ReconcileRequest{
		Since: from.Add(-time.Minute).UTC().Format(time.RFC3339),
		Until: to.Add(time.Minute).UTC().Format(time.RFC3339),
	})
	url := chatwebhook.TenantURL(d.st.info.ChatHandlerURL, tenantID, chatwebhook.PathReconcile)
	// Asked again while chat-handler cannot answer or reports problems
	// (a stream without its quorum yet refuses the publishes), as an
	// admin would run it again.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		answer, err := post(ctx, url, tok, body)
		if err == nil {
			var rep chatwebhook.ReconcileReport
			if err = json.Unmarshal([]byte(answer), &rep); err == nil && len(rep.Problems) > 0 {
				err = fmt.Errorf("problems: %s", answer)
			}
		}
		if err == nil {
			d.say("reconciled %s to %s: %s", from.Format("15:04:05"), to.Format("15:04:05"), answer)
			d.rep.Reconciled = answer
			return
		}
		d.count("reconciliation at the end asked again")
		if time.Now().After(deadline) || ctx.Err() != nil {
			d.rep.Reconciled = "failed: " + err.Error()
			return
		}
		time.Sleep(2 * time.Second)
	}
}

func post(ctx context.Context, url, token string, body []byte) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", res.Status, bytes.TrimSpace(b))
	}
	return string(bytes.TrimSpace(b)), nil
}
