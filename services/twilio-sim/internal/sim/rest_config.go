package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/simapi"
)

// What an admin's checks read: the account, its numbers' webhook settings,
// a Conversations service's webhook configuration.

// apiAccount is the 2010-04-01 Account resource.
type apiAccount struct {
	AuthToken       string            `json:"auth_token"`
	DateCreated     string            `json:"date_created"`
	DateUpdated     string            `json:"date_updated"`
	FriendlyName    string            `json:"friendly_name"`
	OwnerAccountSID string            `json:"owner_account_sid"`
	SID             string            `json:"sid"`
	Status          string            `json:"status"`
	SubresourceURIs map[string]string `json:"subresource_uris"`
	Type            string            `json:"type"`
	URI             string            `json:"uri"`
}

// fetchAccount is GET /2010-04-01/Accounts/{Sid}.json. An account other
// than the caller's is 404, as for any resource the caller cannot see.
func (e *Engine) fetchAccount(w http.ResponseWriter, r *http.Request) {
	sid, ok := strings.CutSuffix(r.PathValue("file"), ".json")
	if !ok || sid != accountOf(r) {
		writeRestError(w, notFound(r.URL.Path))
		return
	}
	e.mu.Lock()
	a := e.accounts[sid]
	var out apiAccount
	if a != nil {
		base := "/2010-04-01/Accounts/" + sid
		status := a.Status
		if status == "" {
			status = "active"
		}
		name := a.FriendlyName
		if name == "" {
			name = "Emulated account " + sid[len(sid)-4:]
		}
		out = apiAccount{
			AuthToken: a.AuthToken, DateCreated: e.started.Format(rfc2822), DateUpdated: e.started.Format(rfc2822),
			FriendlyName: name, OwnerAccountSID: sid, SID: sid, Status: status, Type: "Full", URI: base + ".json",
			SubresourceURIs: map[string]string{
				"messages":               base + "/Messages.json",
				"incoming_phone_numbers": base + "/IncomingPhoneNumbers.json",
			},
		}
	}
	e.mu.Unlock()
	if a == nil {
		writeRestError(w, notFound(r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// apiIncomingNumber is the 2010-04-01 IncomingPhoneNumber resource, with
// the fields an emulated number has (the others are null; so are unset
// URLs).
type apiIncomingNumber struct {
	AccountSID          string          `json:"account_sid"`
	APIVersion          string          `json:"api_version"`
	Capabilities        map[string]bool `json:"capabilities"`
	DateCreated         string          `json:"date_created"`
	DateUpdated         string          `json:"date_updated"`
	FriendlyName        string          `json:"friendly_name"`
	PhoneNumber         string          `json:"phone_number"`
	SID                 string          `json:"sid"`
	SmsApplicationSID   *string         `json:"sms_application_sid"`
	SmsFallbackMethod   string          `json:"sms_fallback_method"`
	SmsFallbackURL      *string         `json:"sms_fallback_url"`
	SmsMethod           string          `json:"sms_method"`
	SmsURL              *string         `json:"sms_url"`
	StatusCallback      *string         `json:"status_callback"`
	StatusCallbackMeth  string          `json:"status_callback_method"`
	VoiceMethod         string          `json:"voice_method"`
	VoiceURL            *string         `json:"voice_url"`
	VoiceFallbackMethod string          `json:"voice_fallback_method"`
	VoiceFallbackURL    *string         `json:"voice_fallback_url"`
	Status              string          `json:"status"`
	URI                 string          `json:"uri"`
}

// stableHex is 32 hex digits derived from s.
func stableHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16])
}

// numberSID is a stable IncomingPhoneNumber SID (PN…) for an address.
func numberSID(accountSID, address string) string {
	return "PN" + stableHex(accountSID+"\x00"+address)
}

// nullable is nil for an unset URL (the documents' uri format takes no
// empty string).
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func methodOr(m string) string {
	if m == "" {
		return http.MethodPost
	}
	return strings.ToUpper(m)
}

// listIncomingNumbers is GET /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json,
// filtered by PhoneNumber (exact) and FriendlyName, in one page. A WhatsApp
// sender (whatsapp:+E164) is listed under its bare number with the sender's
// address as friendly name, after the SMS number if the account has both.
func (e *Engine) listIncomingNumbers(w http.ResponseWriter, r *http.Request) {
	if !checkAccountPath(w, r) {
		return
	}
	q := r.URL.Query()
	pageSize := pageSizeOf(q)
	acctSID := accountOf(r)
	base := "/2010-04-01/Accounts/" + acctSID + "/IncomingPhoneNumbers"
	e.mu.Lock()
	list := []apiIncomingNumber{}
	if a := e.accounts[acctSID]; a != nil {
		for _, n := range a.Numbers {
			channel, bare := channelOf(n.Address)
			if want := q.Get("PhoneNumber"); want != "" && want != bare {
				continue
			}
			if want := q.Get("FriendlyName"); want != "" && want != n.Address {
				continue
			}
			sid := numberSID(acctSID, n.Address)
			list = append(list, apiIncomingNumber{
				AccountSID: acctSID, APIVersion: "2010-04-01",
				Capabilities: map[string]bool{"voice": false, "sms": channel == "sms", "mms": channel == "sms", "fax": false},
				DateCreated:  e.started.Format(rfc2822), DateUpdated: e.started.Format(rfc2822),
				FriendlyName: n.Address, PhoneNumber: bare, SID: sid,
				SmsFallbackMethod: methodOr(n.SmsFallbackMethod), SmsFallbackURL: nullable(n.SmsFallbackURL),
				SmsMethod: methodOr(n.SmsMethod), SmsURL: nullable(n.SmsURL), StatusCallbackMeth: http.MethodPost,
				VoiceMethod: http.MethodPost, VoiceFallbackMethod: http.MethodPost, Status: "in-use",
				URI: base + "/" + sid + ".json",
			})
		}
	}
	e.mu.Unlock()
	slices.SortStableFunc(list, func(a, b apiIncomingNumber) int {
		return strings.Compare(a.PhoneNumber, b.PhoneNumber)
	})
	if len(list) > pageSize {
		list = list[:pageSize]
	}
	writeOnePage(w, base+".json", q, []string{"PhoneNumber", "FriendlyName"}, pageSize, "incoming_phone_numbers", list, len(list))
}

// apiServiceWebhooks is a Conversations service's webhook configuration.
type apiServiceWebhooks struct {
	AccountSID     string   `json:"account_sid"`
	ChatServiceSID string   `json:"chat_service_sid"`
	PreWebhookURL  *string  `json:"pre_webhook_url"`
	PostWebhookURL *string  `json:"post_webhook_url"`
	Filters        []string `json:"filters"`
	Method         *string  `json:"method"`
	URL            string   `json:"url"`
}

// fetchServiceWebhooks is GET /v1/Services/{ChatServiceSid}/Configuration/Webhooks.
func (e *Engine) fetchServiceWebhooks(w http.ResponseWriter, r *http.Request) {
	acctSID, svcSID := accountOf(r), r.PathValue("ChatServiceSid")
	e.mu.Lock()
	var s *simapi.ConversationsService
	if a := e.accounts[acctSID]; a != nil {
		s = a.convServices[svcSID]
	}
	var out apiServiceWebhooks
	if s != nil {
		out = apiServiceWebhooks{AccountSID: acctSID, ChatServiceSID: svcSID, Filters: filters(s),
			URL: "https://conversations.twilio.com/v1/Services/" + svcSID + "/Configuration/Webhooks"}
		if s.PostWebhookURL != "" {
			post, method := s.PostWebhookURL, methodOr(s.Method)
			out.PostWebhookURL, out.Method = &post, &method
		}
	}
	e.mu.Unlock()
	if s == nil {
		writeRestError(w, notFound(r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, out)
}
