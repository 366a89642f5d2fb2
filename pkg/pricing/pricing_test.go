package pricing

import (
	"strings"
	"testing"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
)

const (
	sms, wa  = messagingv1.Channel_CHANNEL_SMS, messagingv1.Channel_CHANNEL_WHATSAPP
	in, outb = configv1.PriceDirection_PRICE_DIRECTION_INBOUND, configv1.PriceDirection_PRICE_DIRECTION_OUTBOUND
)

func row(ch messagingv1.Channel, d configv1.PriceDirection, country, price string) *configv1.MessagePrice {
	return &configv1.MessagePrice{Channel: ch, Direction: d, Country: country, Price: price, Currency: "USD"}
}

func TestCountry(t *testing.T) {
	for addr, want := range map[string]string{
		"+41791234567": "CH", "whatsapp:+41791234567": "CH", "+14155550100": "US", "+14165550100": "CA",
		"+18765550100": "JM", "+447700900123": "GB", "+77011234567": "KZ", "+79161234567": "RU",
		"+352621123456": "LU", "+35312345678": "IE", "41791234567": "", "+": "", "+41 79": "", "": "", "+8881": "",
	} {
		if got := Country(addr); got != want {
			t.Errorf("Country(%q) = %q, want %q", addr, got, want)
		}
	}
	for _, c := range strings.Fields(callingCodes) {
		_, country, _ := strings.Cut(c, ":")
		if !ValidCountry(country) {
			t.Errorf("calling code %s names %s, not an ISO country", c, country)
		}
	}
}

func TestParseAndFormat(t *testing.T) {
	for s, want := range map[string]int64{"0.0079": 7900, "0": 0, "1": 1_000_000, "0.000001": 1, "12.5": 12_500_000, "1000": 1_000_000_000} {
		got, err := ParsePrice(s)
		if err != nil || got != want {
			t.Errorf("ParsePrice(%q) = %d, %v; want %d", s, got, err, want)
		}
		if f := Format(want); f != strings.TrimSuffix(s, ".0") {
			t.Errorf("Format(%d) = %q, want %q", want, f, s)
		}
	}
	for s, says := range map[string]string{
		"-0.01": "negative", "abc": "not a decimal", "": "not a decimal", "0.": "not a decimal", ".5": "not a decimal",
		"1e-3": "not a decimal", "0.0000001": "6 decimal places", "1000.01": "more than 1000", "99999": "more than 1000", "0,01": "not a decimal",
	} {
		if _, err := ParsePrice(s); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("ParsePrice(%q) = %v, want an error saying %q", s, err, says)
		}
	}
}

func TestValidate(t *testing.T) {
	good := []*configv1.MessagePrice{row(sms, in, "*", "0.0079"), row(sms, outb, "CH", "0.0612"), row(wa, outb, "*", "0.005")}
	if p := Validate(good); len(p) != 0 {
		t.Fatalf("a good table: %v", p)
	}
	eur := row(sms, outb, "DE", "0.07")
	eur.Currency = "EUR"
	for _, c := range []struct {
		name  string
		rows  []*configv1.MessagePrice
		field string
		says  string
	}{
		{"no channel", []*configv1.MessagePrice{row(0, in, "*", "1")}, "[0].channel", "not sms or whatsapp"},
		{"no direction", []*configv1.MessagePrice{row(sms, 0, "*", "1")}, "[0].direction", "not inbound or outbound"},
		{"lower-case country", []*configv1.MessagePrice{row(sms, in, "ch", "1")}, "[0].country", "ISO 3166-1"},
		{"unassigned country", []*configv1.MessagePrice{row(sms, in, "XX", "1")}, "[0].country", "ISO 3166-1"},
		{"empty country", []*configv1.MessagePrice{row(sms, in, "", "1")}, "[0].country", "ISO 3166-1"},
		{"negative", []*configv1.MessagePrice{row(sms, in, "*", "-1")}, "[0].price", "negative"},
		{"garbage", []*configv1.MessagePrice{row(sms, in, "*", "cheap")}, "[0].price", "not a decimal"},
		{"bad currency", []*configv1.MessagePrice{{Channel: sms, Direction: in, Country: "*", Price: "1", Currency: "usd"}}, "[0].currency", "ISO 4217"},
		{"mixed currencies", append(good[:2:2], eur), "[2].currency", "one currency per tenant"},
		{"duplicate", append(good[:3:3], row(sms, outb, "CH", "0.07")), "[3].country", "has a price already (row 1)"},
		{"too many", make([]*configv1.MessagePrice, MaxRows+1), "", "more than 500"},
	} {
		ps := Validate(c.rows)
		if len(ps) == 0 || ps[0].Field != c.field || !strings.Contains(ps[0].Msg, c.says) {
			t.Errorf("%s: %v, want %s saying %q first", c.name, ps, c.field, c.says)
		}
	}
}

func TestMostSpecificRowWins(t *testing.T) {
	tb := NewTable([]*configv1.MessagePrice{
		row(sms, in, "*", "0.0079"), row(sms, outb, "*", "0.0083"), row(sms, outb, "CH", "0.0612"), row(wa, outb, "CH", "0.0502"),
	})
	for _, c := range []struct {
		ch      messagingv1.Channel
		d       configv1.PriceDirection
		country string
		want    int64
		ok      bool
	}{
		{sms, outb, "CH", 61200, true}, {sms, outb, "DE", 8300, true}, {sms, outb, "", 8300, true}, {sms, in, "CH", 7900, true},
		{wa, outb, "CH", 50200, true}, {wa, outb, "DE", 0, false}, {wa, in, "CH", 0, false},
	} {
		if got, ok := tb.Price(c.ch, c.d, c.country); got != c.want || ok != c.ok {
			t.Errorf("Price(%s, %s, %q) = %d, %v; want %d, %v", c.ch, c.d, c.country, got, ok, c.want, c.ok)
		}
	}
	// 3 in at 0.0079 and 2 out at 0.0612 (Swiss row) = 0.1461.
	if got := Format(tb.Estimate(sms, "CH", 3, 2)); got != "0.1461" {
		t.Errorf("estimate %s, want 0.1461", got)
	}
	if tb.Currency != "USD" || !(*Table)(nil).Empty() || (*Table)(nil).Estimate(sms, "CH", 1, 1) != 0 {
		t.Error("currency or nil table")
	}
}
