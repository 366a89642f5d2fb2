package gateway

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
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
	a, ok := g.bearer(w, r)
	if !ok {
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n > 9 {
		problem(w, http.StatusBadRequest, fmt.Sprintf("attachment index %q must be 0 to 9", r.PathValue("n")))
		return
	}
	m, err := g.core.MessageMedia(r.Context(), a, r.PathValue("session"), r.PathValue("message"), n)
	if err != nil {
		problem(w, httpCode(err), err.Error())
		return
	}
	serveFile(w, m.ContentType, r.PathValue("message")+"-"+strconv.Itoa(n), "private, max-age=300", m.Data)
}

// bearer authenticates an HTTP request by the console's token in its
// Authorization header (answering it when it cannot).
func (g *Gateway) bearer(w http.ResponseWriter, r *http.Request) (core.Agent, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
		problem(w, http.StatusUnauthorized, "an Authorization: Bearer <token> header with the console's token is required")
		return core.Agent{}, false
	}
	claims, err := g.keys.Verify(tok)
	if err != nil {
		problem(w, http.StatusUnauthorized, "token is invalid, expired or revoked; sign in again")
		return core.Agent{}, false
	}
	if !(claims.Has(authn.RoleAgent) || claims.Has(authn.RoleSupervisor)) || claims.Tenant == "" {
		problem(w, http.StatusForbidden, "this is for agents and supervisors")
		return core.Agent{}, false
	}
	return core.Agent{Tenant: claims.Tenant, ID: claims.Subject, DisplayName: claims.Name,
		IsAgent: claims.Has(authn.RoleAgent), Supervisor: claims.Has(authn.RoleSupervisor)}, true
}

// httpCode is the HTTP status of a core error.
func httpCode(err error) int {
	switch {
	case errors.Is(err, core.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, core.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, core.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, core.ErrConflict):
		return http.StatusUnprocessableEntity
	}
	return http.StatusServiceUnavailable
}

// serveFile answers with a file that can never run script in the
// console's origin: its own type, nosniff (securityHeaders), a sandbox,
// inline only for pictures, sound and video.
func serveFile(w http.ResponseWriter, contentType, name, cache string, data []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("Cache-Control", cache)
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	disposition := "attachment"
	if inline(contentType) {
		disposition = "inline"
	}
	if exts, _ := mime.ExtensionsByType(contentType); len(exts) > 0 {
		name += exts[0]
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": name}))
	_, _ = w.Write(data)
}

// attach stores a file an agent will send in their chat: POST
// /api/agent/v1/media/{session} with the console's token, the file as the
// body and its type as Content-Type (X-Filename: its name, optional). The
// answer, 201 {"media_id","content_type","size"}: the id goes in
// message.send's media_ids.
func (g *Gateway) attach(w http.ResponseWriter, r *http.Request) {
	a, ok := g.bearer(w, r)
	if !ok {
		return
	}
	body := http.MaxBytesReader(w, r.Body, core.MaxAttachmentBytes+1)
	data, err := io.ReadAll(body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) || len(data) > core.MaxAttachmentBytes {
		problem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the file is larger than %d bytes (5 MB), the most that can be sent", core.MaxAttachmentBytes))
		return
	}
	if err != nil {
		problem(w, http.StatusBadRequest, "could not read the file: "+err.Error())
		return
	}
	name := r.Header.Get("X-Filename")
	if un, err := url.PathUnescape(name); err == nil {
		name = un // the console sends it URI-encoded (a header is ASCII)
	}
	at, err := g.core.Attach(r.Context(), a, r.PathValue("session"), r.Header.Get("Content-Type"), name, data)
	if err != nil {
		code := httpCode(err)
		if code == http.StatusBadRequest && strings.Contains(err.Error(), "cannot be sent on") {
			code = http.StatusUnsupportedMediaType
		}
		problem(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"media_id": at.ID, "content_type": at.ContentType, "size": len(at.Data)})
}

// publicAttachment serves an agent's attachment to Twilio, which fetches
// the MediaUrl of the reply: GET /media/{id}, where the id (128 random
// bits) is the capability.
func (g *Gateway) publicAttachment(w http.ResponseWriter, r *http.Request) {
	at, err := g.core.PublicAttachment(r.Context(), r.PathValue("id"))
	if err != nil {
		problem(w, httpCode(err), "no such attachment")
		return
	}
	serveFile(w, at.ContentType, at.ID, "private, max-age=3600", at.Data)
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
