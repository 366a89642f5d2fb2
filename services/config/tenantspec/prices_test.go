package tenantspec_test

import (
	"strings"
	"testing"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	"github.com/switchboard-cc/switchboard/services/config/tenantspec"
)

// The price table is written as rows of names; the file is checked with
// the server's rules before anything is applied, each problem on its line.
func TestMessagePrices(t *testing.T) {
	s, err := tenantspec.Parse([]byte("tenant:\n  id: x\n  message_prices:\n" +
		"    - {channel: sms, direction: outbound, country: CH, price: \"0.0654\", currency: USD}\n" +
		"    - {channel: WhatsApp, direction: inbound, country: \"*\", price: 0.005, currency: USD}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := s.Tenant.Proto().GetMessagePrices()
	if len(got) != 2 || got[0].GetChannel() != messagingv1.Channel_CHANNEL_SMS || got[0].GetDirection() != configv1.PriceDirection_PRICE_DIRECTION_OUTBOUND ||
		got[0].GetCountry() != "CH" || got[1].GetChannel() != messagingv1.Channel_CHANNEL_WHATSAPP || got[1].GetPrice() != "0.005" {
		t.Errorf("rows %v", got)
	}
	if len(tenantspec.Demo().Tenant.MessagePrices) == 0 {
		t.Error("the demo tenant has no price table")
	}
	for _, tc := range []struct {
		name, rows string
		want       []string
	}{
		{"channel", "    - {channel: fax, direction: inbound, country: \"*\", price: \"1\", currency: USD}\n", []string{"line 4", "message_prices[0].channel", `"fax" is not a channel`}},
		{"direction", "    - {channel: sms, direction: up, country: \"*\", price: \"1\", currency: USD}\n", []string{"line 4", "message_prices[0].direction", `"up" is not a direction`}},
		{"country", "    - {channel: sms, direction: inbound, country: ch, price: \"1\", currency: USD}\n", []string{"line 4", "message_prices[0].country", "ISO 3166-1"}},
		{"price", "    - {channel: sms, direction: inbound, country: \"*\", price: \"-1\", currency: USD}\n", []string{"message_prices[0].price", "negative"}},
		{"currencies", "    - {channel: sms, direction: inbound, country: \"*\", price: \"1\", currency: USD}\n" +
			"    - {channel: sms, direction: outbound, country: \"*\", price: \"1\", currency: CHF}\n", []string{"line 5", "message_prices[1].currency", "one currency"}},
		{"duplicate", "    - {channel: sms, direction: inbound, country: \"*\", price: \"1\", currency: USD}\n" +
			"    - {channel: SMS, direction: Inbound, country: \"*\", price: \"2\", currency: USD}\n", []string{"line 5", "message_prices[1].country", "has a price already"}},
	} {
		_, err := tenantspec.Parse([]byte("tenant:\n  id: x\n  message_prices:\n" + tc.rows))
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to mention %q", tc.name, err, w)
			}
		}
	}
}
