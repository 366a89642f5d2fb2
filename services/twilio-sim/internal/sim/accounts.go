package sim

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/simapi"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/webhook"
)

var e164Re = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// validSID reports whether s is prefix followed by 32 hex digits.
func validSID(prefix, s string) bool {
	if len(s) != len(prefix)+32 || !strings.HasPrefix(s, prefix) {
		return false
	}
	for _, c := range s[len(prefix):] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// knownEvents is Twilio's full Conversations webhook filter vocabulary.
var knownEvents = []string{
	"onMessageAdd", "onMessageAdded", "onMessageUpdate", "onMessageUpdated", "onMessageRemove", "onMessageRemoved",
	"onConversationAdd", "onConversationAdded", "onConversationUpdate", "onConversationUpdated",
	"onConversationRemove", "onConversationRemoved", "onConversationStateUpdated",
	"onParticipantAdd", "onParticipantAdded", "onParticipantUpdate", "onParticipantUpdated",
	"onParticipantRemove", "onParticipantRemoved", "onDeliveryUpdated", "onUserAdded", "onUserUpdate", "onUserUpdated",
}

// channelOf returns "whatsapp" or "sms" for an address, and the bare number.
func channelOf(address string) (channel, number string) {
	if n, ok := strings.CutPrefix(address, "whatsapp:"); ok {
		return "whatsapp", n
	}
	return "sms", address
}

// validAddress reports whether address is E.164 or whatsapp:+E164.
func validAddress(address string) bool {
	_, n := channelOf(address)
	return e164Re.MatchString(n)
}

func validMethod(m string) bool {
	return m == "" || strings.EqualFold(m, http.MethodGet) || strings.EqualFold(m, http.MethodPost)
}

func validURL(u string) bool {
	_, _, err := webhook.CanonicalURL(u)
	return err == nil
}

// ValidateAccounts reports every problem in a set of accounts at once.
func ValidateAccounts(accounts []simapi.Account) error {
	var errs []error
	seenAcct := map[string]bool{}
	seenNumber := map[string]string{}
	seenKey := map[string]string{} // an API key SID names one account
	for i, a := range accounts {
		where := fmt.Sprintf("accounts[%d]", i)
		if a.AccountSID != "" {
			where = fmt.Sprintf("account %s", a.AccountSID)
		}
		errs = append(errs, validateAccount(where, a)...)
		if seenAcct[a.AccountSID] {
			errs = append(errs, fmt.Errorf("%s: duplicate account", where))
		}
		seenAcct[a.AccountSID] = true
		for k := range a.APIKeys {
			if other, ok := seenKey[k]; ok && other != a.AccountSID {
				errs = append(errs, fmt.Errorf("%s: api key %s also belongs to account %s", where, k, other))
			}
			seenKey[k] = a.AccountSID
		}
		for _, n := range a.Numbers {
			if other, ok := seenNumber[n.Address]; ok && other != a.AccountSID {
				errs = append(errs, fmt.Errorf("%s: number %s also belongs to account %s", where, n.Address, other))
			}
			seenNumber[n.Address] = a.AccountSID
		}
	}
	return errors.Join(errs...)
}

func validateAccount(where string, a simapi.Account) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(where+": "+format, args...))
	}
	if !validSID("AC", a.AccountSID) {
		bad("account_sid %q is not AC followed by 32 hex digits", a.AccountSID)
	}
	if a.AuthToken == "" {
		bad("auth_token is required")
	}
	if !slices.Contains([]string{"", "active", "suspended", "closed"}, a.Status) {
		bad("status %q is not active, suspended or closed", a.Status)
	}
	if !slices.Contains([]string{"", "us1", "ie1", "au1", "jp1"}, a.Region) {
		bad("region %q is not us1, ie1, au1 or jp1", a.Region)
	}
	for k, v := range a.APIKeys {
		if !validSID("SK", k) {
			bad("api key %q is not SK followed by 32 hex digits", k)
		}
		if v == "" {
			bad("api key %s has an empty secret", k)
		}
	}
	convs := map[string]bool{}
	for _, s := range a.ConversationsServices {
		uniqueSID(bad, convs, "IS", "conversations service", s.SID)
		if s.PostWebhookURL != "" && !validURL(s.PostWebhookURL) {
			bad("conversations service %s: post_webhook_url %q is not an absolute http(s) url", s.SID, s.PostWebhookURL)
		}
		if !validMethod(s.Method) {
			bad("conversations service %s: method %q is not GET or POST", s.SID, s.Method)
		}
		for _, f := range s.Filters {
			if !slices.Contains(knownEvents, f) {
				bad("conversations service %s: unknown filter %q", s.SID, f)
			}
		}
		if s.MessagingServiceSID != "" && !validSID("MG", s.MessagingServiceSID) {
			bad("conversations service %s: messaging_service_sid %q is not MG followed by 32 hex digits", s.SID, s.MessagingServiceSID)
		}
	}
	if a.DefaultConversationsServiceSID != "" && !convs[a.DefaultConversationsServiceSID] {
		bad("default_conversations_service_sid %s is not one of the account's conversations services", a.DefaultConversationsServiceSID)
	}
	mgs := map[string]bool{}
	for _, s := range a.MessagingServices {
		uniqueSID(bad, mgs, "MG", "messaging service", s.SID)
		for _, u := range []string{s.StatusCallback, s.InboundURL, s.FallbackURL} {
			if u != "" && !validURL(u) {
				bad("messaging service %s: %q is not an absolute http(s) url", s.SID, u)
			}
		}
		if !validMethod(s.InboundMethod) || !validMethod(s.FallbackMethod) {
			bad("messaging service %s: methods must be GET or POST", s.SID)
		}
	}
	numbers := map[string]bool{}
	for _, n := range a.Numbers {
		if !validAddress(n.Address) {
			bad("number %q is not E.164 or whatsapp:+E.164", n.Address)
		}
		if numbers[n.Address] {
			bad("number %s listed twice", n.Address)
		}
		numbers[n.Address] = true
		for _, u := range []string{n.SmsURL, n.SmsFallbackURL} {
			if u != "" && !validURL(u) {
				bad("number %s: %q is not an absolute http(s) url", n.Address, u)
			}
		}
		if !validMethod(n.SmsMethod) || !validMethod(n.SmsFallbackMethod) {
			bad("number %s: methods must be GET or POST", n.Address)
		}
		if n.MessagingServiceSID != "" && !mgs[n.MessagingServiceSID] {
			bad("number %s: messaging service %s is not one of the account's messaging services", n.Address, n.MessagingServiceSID)
		}
		if n.ConversationsServiceSID != "" && !convs[n.ConversationsServiceSID] {
			bad("number %s: conversations service %s is not one of the account's conversations services", n.Address, n.ConversationsServiceSID)
		}
	}
	templates := map[string]bool{}
	for _, c := range a.ContentTemplates {
		uniqueSID(bad, templates, "HX", "content template", c.SID)
		if len(c.Types) == 0 {
			bad("content template %s has no types", c.SID)
		}
		for typ := range c.Types {
			if kind, name, ok := strings.Cut(typ, "/"); !ok || kind == "" || name == "" {
				bad("content template %s: type %q is not like twilio/text", c.SID, typ)
			}
		}
	}
	inPool := map[string]string{}
	for _, n := range a.Numbers {
		if n.MessagingServiceSID != "" {
			inPool[n.Address] = n.MessagingServiceSID
		}
	}
	for _, s := range a.MessagingServices {
		for _, addr := range s.Numbers {
			if !numbers[addr] {
				bad("messaging service %s: pool number %s is not one of the account's numbers", s.SID, addr)
			}
			if other, ok := inPool[addr]; ok && other != s.SID {
				bad("number %s is in two messaging services (%s and %s)", addr, other, s.SID)
			}
			inPool[addr] = s.SID
		}
	}
	return errs
}

// uniqueSID reports a sid that is not prefix and 32 hex digits, or that
// seen already holds, and adds it to seen.
func uniqueSID(bad func(string, ...any), seen map[string]bool, prefix, what, sid string) {
	if !validSID(prefix, sid) {
		bad("%s sid %q is not %s followed by 32 hex digits", what, sid, prefix)
	}
	if seen[sid] {
		bad("%s %s listed twice", what, sid)
	}
	seen[sid] = true
}

// account is an Account indexed for lookups.
type account struct {
	simapi.Account
	convServices map[string]*simapi.ConversationsService
	msgServices  map[string]*simapi.MessagingService
	numbers      map[string]*simapi.PhoneNumber
	serviceOf    map[string]string   // number address → MG
	pools        map[string][]string // MG → number addresses, in configured order
}

func newAccount(a simapi.Account) *account {
	acc := &account{
		Account:      a,
		convServices: map[string]*simapi.ConversationsService{},
		msgServices:  map[string]*simapi.MessagingService{},
		numbers:      map[string]*simapi.PhoneNumber{},
		serviceOf:    map[string]string{},
		pools:        map[string][]string{},
	}
	for i := range a.ConversationsServices {
		s := &acc.ConversationsServices[i]
		acc.convServices[s.SID] = s
	}
	for i := range a.MessagingServices {
		s := &acc.MessagingServices[i]
		acc.msgServices[s.SID] = s
	}
	for i := range a.Numbers {
		n := &acc.Numbers[i]
		acc.numbers[n.Address] = n
		if n.MessagingServiceSID != "" {
			acc.serviceOf[n.Address] = n.MessagingServiceSID
			acc.pools[n.MessagingServiceSID] = append(acc.pools[n.MessagingServiceSID], n.Address)
		}
	}
	for _, s := range a.MessagingServices {
		for _, addr := range s.Numbers {
			if _, ok := acc.serviceOf[addr]; ok {
				continue
			}
			acc.serviceOf[addr] = s.SID
			acc.pools[s.SID] = append(acc.pools[s.SID], addr)
		}
	}
	return acc
}

// defaultConvService is the service behind /v1/Conversations paths.
func (a *account) defaultConvService() *simapi.ConversationsService {
	if a.DefaultConversationsServiceSID != "" {
		return a.convServices[a.DefaultConversationsServiceSID]
	}
	if len(a.ConversationsServices) > 0 {
		return &a.ConversationsServices[0]
	}
	return nil
}

// filters returns the events a service posts.
func filters(s *simapi.ConversationsService) []string {
	if len(s.Filters) == 0 {
		return simapi.DefaultFilters
	}
	return s.Filters
}
