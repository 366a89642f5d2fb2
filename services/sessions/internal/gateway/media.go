package gateway

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/core"
)

// media serves attachment n of a customer's message, GET
// /api/agent/v1/media/{session}/{message}/{n} with the console's token as
// a bearer token: to the agent the chat is assigned to, or a supervisor
// of its tenant. The bytes come from Twilio through outbound-sender (the
// connector's credentials never reach the browser), size-capped and of a
// type agents may open; pictures, sound and video are shown inline, any
// other file is a download, and nothing served here can run script.
func (g *Gateway) media(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
		problem(w, http.StatusUnauthorized, "an Authorization: Bearer <token> header with the console's token is required")
		return
	}
	claims, err := g.keys.Verify(tok)
	if err != nil {
		problem(w, http.StatusUnauthorized, "token is invalid, expired or revoked; sign in again")
		return
	}
	if !(claims.Has(authn.RoleAgent) || claims.Has(authn.RoleSupervisor)) || claims.Tenant == "" {
		problem(w, http.StatusForbidden, "media is for agents and supervisors")
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n > 9 {
		problem(w, http.StatusBadRequest, fmt.Sprintf("attachment index %q must be 0 to 9", r.PathValue("n")))
		return
	}
	a := core.Agent{Tenant: claims.Tenant, ID: claims.Subject, DisplayName: claims.Name,
		IsAgent: claims.Has(authn.RoleAgent), Supervisor: claims.Has(authn.RoleSupervisor)}
	m, err := g.core.MessageMedia(r.Context(), a, r.PathValue("session"), r.PathValue("message"), n)
	if err != nil {
		code := http.StatusServiceUnavailable
		switch {
		case errors.Is(err, core.ErrForbidden):
			code = http.StatusForbidden
		case errors.Is(err, core.ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, core.ErrInvalid):
			code = http.StatusBadRequest
		case errors.Is(err, core.ErrConflict):
			code = http.StatusUnprocessableEntity
		}
		problem(w, code, err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", m.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(m.Data)))
	h.Set("Cache-Control", "private, max-age=300")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	disposition := "attachment"
	if inline(m.ContentType) {
		disposition = "inline"
	}
	name := r.PathValue("message") + "-" + strconv.Itoa(n)
	if exts, _ := mime.ExtensionsByType(m.ContentType); len(exts) > 0 {
		name += exts[0]
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": name}))
	_, _ = w.Write(m.Data)
}

// inline: a type the console shows in the chat rather than offering as a
// download.
func inline(ct string) bool {
	switch ct {
	case "image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp":
		return true
	}
	return strings.HasPrefix(ct, "audio/") || strings.HasPrefix(ct, "video/")
}
