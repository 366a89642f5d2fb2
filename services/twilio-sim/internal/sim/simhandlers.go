package sim

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/simapi"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/webhook"
)

func (e *Engine) routeSim(mux *http.ServeMux) {
	mux.HandleFunc("GET /sim/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /sim/accounts", e.simListAccounts)
	mux.HandleFunc("GET /sim/accounts/{AccountSid}", e.simGetAccount)
	mux.HandleFunc("PUT /sim/accounts/{AccountSid}", e.simPutAccount)
	mux.HandleFunc("DELETE /sim/accounts/{AccountSid}", e.simDeleteAccount)
	mux.HandleFunc("POST /sim/customers/messages", e.simCustomerSend)
	mux.HandleFunc("GET /sim/customers/messages", e.simInbox)
	mux.HandleFunc("GET /sim/messages", e.simMessages)
	mux.HandleFunc("GET /sim/webhooks", e.simWebhooks)
	mux.HandleFunc("POST /sim/reset", e.simReset)
	mux.HandleFunc("GET /sim/faults", e.simListFaults)
	mux.HandleFunc("POST /sim/faults", e.simAddFault)
	mux.HandleFunc("DELETE /sim/faults", e.simClearFaults)
	mux.HandleFunc("GET /sim/clock", e.simClock)
	mux.HandleFunc("POST /sim/clock/advance", e.simAdvanceClock)
	mux.HandleFunc("GET /sim/delivery", e.simGetDelivery)
	mux.HandleFunc("PUT /sim/delivery", e.simPutDelivery)
	mux.HandleFunc("POST /sim/delivery/rules", e.simAddRule)
	mux.HandleFunc("DELETE /sim/delivery/rules", e.simClearRules)
	mux.HandleFunc("GET /sim/contract/violations", e.simViolations)
	mux.HandleFunc("DELETE /sim/contract/violations", e.simClearViolations)
	mux.HandleFunc("GET /sim/contract/requests", e.simExchanges)
	mux.HandleFunc("GET /sim/conversations", e.simConversations)
	mux.HandleFunc("POST /sim/conversations/{Sid}/state", e.simConversationState)
	mux.HandleFunc("GET /sim/optouts", e.simOptOuts)
	mux.HandleFunc("GET /sim/media/{Sid}", e.simMedia)
}

func (e *Engine) simListAccounts(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	list := []simapi.Account{}
	for _, a := range e.accounts {
		list = append(list, a.Account)
	}
	e.mu.Unlock()
	slices.SortFunc(list, func(a, b simapi.Account) int {
		if a.AccountSID < b.AccountSID {
			return -1
		}
		return 1
	})
	writeJSON(w, http.StatusOK, list)
}

func (e *Engine) simGetAccount(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	a := e.accounts[r.PathValue("AccountSid")]
	e.mu.Unlock()
	if a == nil {
		writeSimError(w, http.StatusNotFound, fmt.Errorf("account %s: %w", r.PathValue("AccountSid"), errNotFound))
		return
	}
	writeJSON(w, http.StatusOK, a.Account)
}

// PutAccount adds or replaces an account at runtime.
func (e *Engine) PutAccount(a simapi.Account) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	all := []simapi.Account{a}
	for sid, other := range e.accounts {
		if sid != a.AccountSID {
			all = append(all, other.Account)
		}
	}
	if err := ValidateAccounts(all); err != nil {
		return err
	}
	e.accounts[a.AccountSID] = newAccount(a)
	e.reindex()
	return nil
}

func (e *Engine) simPutAccount(w http.ResponseWriter, r *http.Request) {
	var a simapi.Account
	if err := decodeJSON(r, &a); err != nil {
		writeSimError(w, http.StatusBadRequest, err)
		return
	}
	sid := r.PathValue("AccountSid")
	if a.AccountSID == "" {
		a.AccountSID = sid
	}
	if a.AccountSID != sid {
		writeSimError(w, http.StatusBadRequest, fmt.Errorf("account_sid %s does not match the path %s", a.AccountSID, sid))
		return
	}
	if err := e.PutAccount(a); err != nil {
		writeSimError(w, http.StatusBadRequest, err)
		return
	}
	e.log.Info("account configured", "account_sid", sid)
	writeJSON(w, http.StatusOK, a)
}

func (e *Engine) simDeleteAccount(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	delete(e.accounts, r.PathValue("AccountSid"))
	e.reindex()
	e.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (e *Engine) simCustomerSend(w http.ResponseWriter, r *http.Request) {
	var in simapi.CustomerMessage
	// Room for maxMedia files of maxMediaBytes each, base64-encoded.
	if err := decodeJSONLimit(r, &in, 4<<20+maxMedia*maxMediaBytes*4/3); err != nil {
		writeSimError(w, http.StatusBadRequest, err)
		return
	}
	res, err := e.CustomerSend(r.Context(), in)
	if err != nil {
		status := http.StatusInternalServerError
		var ce *customerError
		if errors.As(err, &ce) {
			status = ce.status
		}
		writeSimError(w, status, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// Inbox returns what the business sent to a customer address, oldest first.
func (e *Engine) Inbox(address string) []simapi.OutboundMessage {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []simapi.OutboundMessage{}
	for _, m := range e.outbound {
		if m.to == address {
			out = append(out, e.outboundView(m))
		}
	}
	return out
}

func (e *Engine) simInbox(w http.ResponseWriter, r *http.Request) {
	address := r.URL.Query().Get("address")
	if address == "" {
		writeSimError(w, http.StatusBadRequest, errors.New("query parameter address is required"))
		return
	}
	writeJSON(w, http.StatusOK, e.Inbox(address))
}

func (e *Engine) simMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	e.mu.Lock()
	out := []simapi.OutboundMessage{}
	for _, m := range e.outbound {
		if (q.Get("to") == "" || m.to == q.Get("to")) && (q.Get("from") == "" || m.from == q.Get("from")) &&
			(q.Get("path") == "" || m.path == q.Get("path")) && (q.Get("account_sid") == "" || m.accountSID == q.Get("account_sid")) {
			out = append(out, e.outboundView(m))
		}
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (e *Engine) simWebhooks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := webhook.Filter{Kind: q.Get("kind"), Event: q.Get("event"), MessageSID: q.Get("message_sid"), AccountSID: q.Get("account_sid")}
	if s := q.Get("after_id"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			writeSimError(w, http.StatusBadRequest, fmt.Errorf("parse after_id %q: %w", s, err))
			return
		}
		f.AfterID = n
	}
	writeJSON(w, http.StatusOK, e.hooks.Attempts(f))
}

// Reset forgets messages, conversations, opt-outs, windows, logs, faults,
// delivery options and contract violations; accounts and the clock stay.
func (e *Engine) Reset() {
	e.mu.Lock()
	e.resetState()
	e.mu.Unlock()
	e.hooks.Reset()
	if e.opts.Contract != nil {
		e.opts.Contract.Reset()
	}
}

func (e *Engine) simReset(w http.ResponseWriter, r *http.Request) {
	e.Reset()
	w.WriteHeader(http.StatusNoContent)
}

func (e *Engine) simListFaults(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	out := []simapi.Fault{}
	for _, f := range e.faults {
		out = append(out, *f)
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (e *Engine) simAddFault(w http.ResponseWriter, r *http.Request) {
	var f simapi.Fault
	if err := decodeJSON(r, &f); err != nil {
		writeSimError(w, http.StatusBadRequest, err)
		return
	}
	f, err := normalizeFault(f)
	if err != nil {
		writeSimError(w, http.StatusBadRequest, fmt.Errorf("fault: %w", err))
		return
	}
	e.mu.Lock()
	e.faults = append(e.faults, &f)
	e.mu.Unlock()
	writeJSON(w, http.StatusCreated, f)
}

func (e *Engine) simClearFaults(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.faults = nil
	e.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (e *Engine) simClock(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, e.clock.state())
}

func (e *Engine) simAdvanceClock(w http.ResponseWriter, r *http.Request) {
	var a simapi.ClockAdvance
	if err := decodeJSON(r, &a); err != nil {
		writeSimError(w, http.StatusBadRequest, err)
		return
	}
	if a.Seconds < 0 {
		writeSimError(w, http.StatusBadRequest, errors.New("seconds must not be negative: the clock only moves forward"))
		return
	}
	e.clock.advance(time.Duration(a.Seconds * float64(time.Second)))
	writeJSON(w, http.StatusOK, e.clock.state())
}

func (e *Engine) simGetDelivery(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	st := e.deliveryState()
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

func validFinalStatus(s string) bool { return s == "" || s == "failed" || s == "undelivered" }

// simPutDelivery changes the default delivery options; absent fields keep
// their value, and error_code 0 switches forced failures off.
func (e *Engine) simPutDelivery(w http.ResponseWriter, r *http.Request) {
	var o simapi.DeliveryOptions
	if err := decodeJSON(r, &o); err != nil {
		writeSimError(w, http.StatusBadRequest, err)
		return
	}
	if !validFinalStatus(o.FinalStatus) || (o.DelayMS != nil && *o.DelayMS < 0) {
		writeSimError(w, http.StatusBadRequest, errors.New("final_status must be failed or undelivered and delay_ms not negative"))
		return
	}
	e.mu.Lock()
	if o.DelayMS != nil {
		e.delivery.DelayMS = *o.DelayMS
	}
	if o.OutOfOrder != nil {
		e.delivery.OutOfOrder = *o.OutOfOrder
	}
	if o.ErrorCode != nil {
		e.delivery.ErrorCode = *o.ErrorCode
		e.delivery.FinalStatus = o.FinalStatus
	}
	st := e.deliveryState()
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

func (e *Engine) simAddRule(w http.ResponseWriter, r *http.Request) {
	var rule simapi.DeliveryRule
	if err := decodeJSON(r, &rule); err != nil {
		writeSimError(w, http.StatusBadRequest, err)
		return
	}
	if rule.Count == 0 {
		rule.Count = 1
	}
	if rule.Count < 0 || !validFinalStatus(rule.FinalStatus) || (rule.DelayMS != nil && *rule.DelayMS < 0) {
		writeSimError(w, http.StatusBadRequest, errors.New("count must be positive, final_status failed or undelivered, delay_ms not negative"))
		return
	}
	e.mu.Lock()
	e.rules = append(e.rules, &rule)
	st := e.deliveryState()
	e.mu.Unlock()
	writeJSON(w, http.StatusCreated, st)
}

func (e *Engine) simClearRules(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.rules = nil
	e.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (e *Engine) simViolations(w http.ResponseWriter, r *http.Request) {
	if e.opts.Contract == nil {
		writeSimError(w, http.StatusNotFound, errors.New("contract mode is off: start the emulator with a contract directory"))
		return
	}
	writeJSON(w, http.StatusOK, e.opts.Contract.Violations())
}

func (e *Engine) simExchanges(w http.ResponseWriter, r *http.Request) {
	if e.opts.Contract == nil {
		writeSimError(w, http.StatusNotFound, errors.New("contract mode is off: start the emulator with a contract directory"))
		return
	}
	writeJSON(w, http.StatusOK, e.opts.Contract.Exchanges())
}

func (e *Engine) simClearViolations(w http.ResponseWriter, r *http.Request) {
	if e.opts.Contract != nil {
		e.opts.Contract.Reset()
	}
	w.WriteHeader(http.StatusNoContent)
}

// simConversation is how the /sim API shows a conversation.
type simConversation struct {
	SID            string                  `json:"sid"`
	AccountSID     string                  `json:"account_sid"`
	ChatServiceSID string                  `json:"chat_service_sid"`
	State          string                  `json:"state"`
	UniqueName     string                  `json:"unique_name,omitempty"`
	Participants   []simConversationMember `json:"participants"`
	Messages       int                     `json:"messages"`
	DateCreated    time.Time               `json:"date_created"`
}

type simConversationMember struct {
	SID          string `json:"sid"`
	Identity     string `json:"identity,omitempty"`
	Address      string `json:"address,omitempty"`
	ProxyAddress string `json:"proxy_address,omitempty"`
}

func (e *Engine) simConversations(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	out := []simConversation{}
	for _, c := range e.conversations {
		sc := simConversation{SID: c.sid, AccountSID: c.accountSID, ChatServiceSID: c.serviceSID, State: c.state,
			UniqueName: c.uniqueName, Messages: len(c.messages), DateCreated: c.created, Participants: []simConversationMember{}}
		for _, p := range c.participants {
			sc.Participants = append(sc.Participants, simConversationMember{SID: p.sid, Identity: p.identity, Address: p.address, ProxyAddress: p.proxyAddress})
		}
		out = append(out, sc)
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b simConversation) int { return a.DateCreated.Compare(b.DateCreated) })
	writeJSON(w, http.StatusOK, out)
}

// simConversationState changes a conversation's state as Twilio's timers
// would (Reason TIMER), firing onConversationStateUpdated.
func (e *Engine) simConversationState(w http.ResponseWriter, r *http.Request) {
	var in simapi.ConversationState
	if err := decodeJSON(r, &in); err != nil {
		writeSimError(w, http.StatusBadRequest, err)
		return
	}
	if in.State != stateActive && in.State != stateInactive && in.State != stateClosed {
		writeSimError(w, http.StatusBadRequest, fmt.Errorf("state %q is not active, inactive or closed", in.State))
		return
	}
	if in.Reason == "" {
		in.Reason = "TIMER"
	}
	e.mu.Lock()
	c := e.conversations[r.PathValue("Sid")]
	if c == nil {
		e.mu.Unlock()
		writeSimError(w, http.StatusNotFound, fmt.Errorf("conversation %s: %w", r.PathValue("Sid"), errNotFound))
		return
	}
	if c.state == stateClosed {
		e.mu.Unlock()
		writeSimError(w, http.StatusConflict, fmt.Errorf("conversation %s is closed", c.sid))
		return
	}
	var ev webhook.Event
	fire := false
	if c.state != in.State {
		ev, fire = e.setState(c, in.State, in.Reason, "")
	}
	e.mu.Unlock()
	var sum *simapi.WebhookSummary
	if fire {
		out := e.hooks.Deliver(r.Context(), ev)
		s := out.Summary(ev.Event)
		sum = &s
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversation_sid": c.sid, "state": in.State, "webhook": sum})
}

type simOptOut struct {
	Scope    string `json:"scope"`
	Customer string `json:"customer"`
}

func (e *Engine) simOptOuts(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	out := []simOptOut{}
	for k := range e.optOuts {
		out = append(out, simOptOut{Scope: k.scope, Customer: k.customer})
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b simOptOut) int {
		if a.Scope+a.Customer < b.Scope+b.Customer {
			return -1
		}
		return 1
	})
	writeJSON(w, http.StatusOK, out)
}

func (e *Engine) simMedia(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	md := e.media[r.PathValue("Sid")]
	e.mu.Unlock()
	if md == nil {
		writeSimError(w, http.StatusNotFound, fmt.Errorf("media %s: %w", r.PathValue("Sid"), errNotFound))
		return
	}
	serveMedia(w, r, md)
}
