package sim

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/simapi"
)

type accountKey struct{}

// accountOf returns the account SID the request authenticated as.
func accountOf(r *http.Request) string {
	s, _ := r.Context().Value(accountKey{}).(string)
	return s
}

func (e *Engine) routeREST(mux *http.ServeMux) {
	mux.HandleFunc("GET /2010-04-01/Accounts/{file}", e.fetchAccount)
	const acct = "/2010-04-01/Accounts/{AccountSid}"
	mux.HandleFunc("GET "+acct+"/IncomingPhoneNumbers.json", e.listIncomingNumbers)
	mux.HandleFunc("GET /v1/Services/{ChatServiceSid}/Configuration/Webhooks", e.fetchServiceWebhooks)
	mux.HandleFunc("POST "+acct+"/Messages.json", e.createMessage)
	mux.HandleFunc("GET "+acct+"/Messages.json", e.listMessages)
	mux.HandleFunc("GET "+acct+"/Messages/{file}", e.fetchMessage)
	mux.HandleFunc("GET "+acct+"/Messages/{MessageSid}/Media.json", e.listMessageMedia)
	mux.HandleFunc("GET "+acct+"/Messages/{MessageSid}/Media/{file}", e.messageMedia)

	for _, scoped := range []bool{true, false} {
		prefix := "/v1"
		if scoped {
			prefix = "/v1/Services/{ChatServiceSid}"
		}
		mux.HandleFunc("POST "+prefix+"/Conversations", e.withScope(scoped, e.createConversation))
		mux.HandleFunc("GET "+prefix+"/Conversations", e.withScope(scoped, e.listConversations))
		mux.HandleFunc("GET "+prefix+"/Conversations/{Sid}", e.withScope(scoped, e.fetchConversation))
		mux.HandleFunc("POST "+prefix+"/Conversations/{Sid}", e.withScope(scoped, e.updateConversation))
		mux.HandleFunc("POST "+prefix+"/Conversations/{ConversationSid}/Messages", e.withScope(scoped, e.createConvMessage))
		mux.HandleFunc("GET "+prefix+"/Conversations/{ConversationSid}/Messages", e.withScope(scoped, e.listConvMessages))
		mux.HandleFunc("GET "+prefix+"/Conversations/{ConversationSid}/Messages/{Sid}", e.withScope(scoped, e.fetchConvMessage))
		mux.HandleFunc("GET "+prefix+"/Conversations/{ConversationSid}/Messages/{MessageSid}/Receipts", e.withScope(scoped, e.listReceipts))
		mux.HandleFunc("POST "+prefix+"/Conversations/{ConversationSid}/Participants", e.withScope(scoped, e.createParticipant))
		mux.HandleFunc("GET "+prefix+"/Conversations/{ConversationSid}/Participants", e.withScope(scoped, e.listParticipants))
	}
	mux.HandleFunc("GET /v1/Content", e.listContent)
	// Media Content Service (mcs.us1.twilio.com) shares the /v1 namespace.
	mux.HandleFunc("POST /v1/Services/{ChatServiceSid}/Media", e.uploadMedia)
	mux.HandleFunc("GET /v1/Services/{ChatServiceSid}/Media/{Sid}", e.fetchMedia)
	mux.HandleFunc("GET /v1/Services/{ChatServiceSid}/Media/{Sid}/Content", e.mediaContent)

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeTwilioError(w, http.StatusNotFound, 20404, fmt.Sprintf("The requested resource %s was not found", r.URL.Path))
	})
}

// restMiddleware adds Twilio's response headers, injected faults and Basic
// authentication in front of the REST handlers.
func (e *Engine) restMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Twilio-Request-Id", newSID("RQ"))
		h.Set("X-Home-Region", "us1")
		h.Set("Twilio-Concurrent-Requests", "1")
		h.Set("X-Api-Domain", apiDomain(r.URL.Path))

		if f := e.takeFault(r); f != nil {
			e.log.Debug("injected fault", "path", r.URL.Path, "status", f.Status, "code", f.Code)
			writeTwilioError(w, f.Status, f.Code, f.Message)
			return
		}
		sid, ok := e.authenticate(r)
		if ok && !e.inRegion(sid, r.Header.Get("X-Original-Host")) {
			// Regional credentials work only in their region.
			ok = false
		}
		if !ok {
			h.Set("WWW-Authenticate", `Basic realm="Twilio API"`)
			msg := "Authenticate"
			if _, _, has := r.BasicAuth(); !has {
				msg = "Authentication Error - No credentials provided"
			}
			writeJSON(w, http.StatusUnauthorized, twilioError{
				Code: 20003, Message: msg, MoreInfo: "https://www.twilio.com/docs/errors/20003",
				Status: http.StatusUnauthorized, Detail: "Your AccountSid or AuthToken was incorrect.",
			})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), accountKey{}, sid)))
	})
}

// authenticate checks Basic credentials: an Account SID with its Auth Token
// or an API key SID with its secret.
func (e *Engine) authenticate(r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok || user == "" || pass == "" {
		return "", false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var acctSID, want string
	switch {
	case strings.HasPrefix(user, "AC"):
		a := e.accounts[user]
		if a == nil {
			return "", false
		}
		acctSID, want = user, a.AuthToken
	case strings.HasPrefix(user, "SK"):
		acctSID = e.keys[user]
		a := e.accounts[acctSID]
		if a == nil {
			return "", false
		}
		want = a.APIKeys[user]
	default:
		return "", false
	}
	if subtle.ConstantTimeCompare([]byte(pass), []byte(want)) != 1 {
		return "", false
	}
	return acctSID, true
}

// inRegion reports whether a call meant for host may use the credentials
// of a regional account (any host when the account names no region, or
// when the call came without X-Original-Host).
func (e *Engine) inRegion(accountSID, host string) bool {
	if host == "" {
		return true
	}
	e.mu.Lock()
	a := e.accounts[accountSID]
	e.mu.Unlock()
	if a == nil || a.Region == "" {
		return true
	}
	region, _, ok := simapi.HostRegion(host)
	return ok && region == a.Region
}

// takeFault consumes the first fault matching r.
func (e *Engine) takeFault(r *http.Request) *simapi.Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, f := range e.faults {
		if f.PathPrefix != "" && !strings.HasPrefix(r.URL.Path, f.PathPrefix) {
			continue
		}
		if f.Method != "" && !strings.EqualFold(f.Method, r.Method) {
			continue
		}
		out := *f
		f.Count--
		if f.Count <= 0 {
			e.faults = append(e.faults[:i:i], e.faults[i+1:]...)
		}
		return &out
	}
	return nil
}

// normalizeFault fills a fault's defaults.
func normalizeFault(f simapi.Fault) (simapi.Fault, error) {
	if f.Count == 0 {
		f.Count = 1
	}
	if f.Count < 0 {
		return f, fmt.Errorf("count %d is negative", f.Count)
	}
	if f.Status == 0 {
		f.Status = http.StatusTooManyRequests
	}
	if f.Status < 400 || f.Status > 599 {
		return f, fmt.Errorf("status %d is not an HTTP error status", f.Status)
	}
	if f.Code == 0 {
		switch {
		case f.Status == http.StatusTooManyRequests:
			f.Code = 20429
		case f.Status >= 500:
			f.Code = 20500
		default:
			f.Code = 20001
		}
	}
	if f.Message == "" {
		switch f.Code {
		case 20429:
			f.Message = "Too Many Requests"
		case 20500:
			f.Message = "Internal Server Error"
		default:
			f.Message = http.StatusText(f.Status)
		}
	}
	return f, nil
}

type scopeKey struct{}

// withScope records whether the route names the service in its path.
func (e *Engine) withScope(scoped bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h(w, r.WithContext(context.WithValue(r.Context(), scopeKey{}, scoped)))
	}
}

func serviceScoped(r *http.Request) bool {
	s, _ := r.Context().Value(scopeKey{}).(bool)
	return s
}

// parseForm reads a form-encoded POST body (never the query string, which
// Twilio does not read for creates).
func parseForm(r *http.Request) error {
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("parse form: %w", err)
	}
	return nil
}
