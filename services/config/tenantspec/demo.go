package tenantspec

import (
	_ "embed"
	"fmt"
)

//go:embed demo.yaml
var demoYAML []byte

// Demo tenant ids, for code that talks about the demo tenant.
const (
	DemoTenantID    = "demo"
	DemoConnectorID = "twilio-main"
)

// Demo returns the demo tenant that `make run` seeds.
func Demo() *Spec {
	s, err := Parse(demoYAML)
	if err != nil {
		// demo.yaml is compiled in and covered by tests.
		panic(fmt.Sprintf("tenantspec: embedded demo.yaml: %v", err))
	}
	return s
}

// DemoYAML returns the demo tenant's YAML.
func DemoYAML() []byte { return append([]byte(nil), demoYAML...) }

// Credentials of a Twilio account, for DemoWithCredentials. Empty fields
// keep the demo's values.
type Credentials struct {
	AccountSID   string
	APIKeySID    string
	APIKeySecret string
	AuthToken    string
	Region       string
	Edge         string
	// ConversationsServiceSID replaces the SMS entry's Conversations service.
	ConversationsServiceSID string
	// WhatsAppAddress replaces the WhatsApp entry's number ("whatsapp:+…").
	WhatsAppAddress string
}

// DemoWithCredentials returns the demo tenant wired to a Twilio account:
// the emulator's, or a real one for trying Switchboard against Twilio.
func DemoWithCredentials(c Credentials) *Spec {
	s := Demo()
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	for i := range s.Connectors {
		if s.Connectors[i].ID != DemoConnectorID {
			continue
		}
		conn := &s.Connectors[i]
		set(&conn.AccountSID, c.AccountSID)
		set(&conn.APIKeySID, c.APIKeySID)
		set(&conn.APIKeySecret, c.APIKeySecret)
		set(&conn.AuthToken, c.AuthToken)
		set(&conn.Region, c.Region)
		set(&conn.Edge, c.Edge)
	}
	for i := range s.MessagingEntries {
		e := &s.MessagingEntries[i]
		switch e.ID {
		case "sms-front-desk":
			set(&e.ConversationsServiceSID, c.ConversationsServiceSID)
		case "whatsapp-front-desk":
			if c.WhatsAppAddress != "" {
				e.BusinessAddresses = []string{c.WhatsAppAddress}
			}
		}
	}
	return s
}
