// Package pricing holds a tenant's Twilio price table (config's
// Tenant.message_prices): its validation, the lookup of the row that
// applies to a message, and the country of a customer's number. Prices
// and costs are kept in micro-units of the currency (1e-6), so sums are
// exact integers.
package pricing

import (
	"fmt"
	"strconv"
	"strings"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
)

// AnyCountry is the country of a row that applies to every country
// without its own row.
const AnyCountry = "*"

// MaxRows is the most rows a tenant's table has.
const MaxRows = 500

// maxPrice bounds a price per segment (in micro-units): 1000 of the
// currency, far above any Twilio price, so a misplaced decimal point is
// caught.
const maxPrice = 1000 * 1_000_000

// ParsePrice reads a price per segment ("0.0079"): a non-negative decimal
// with at most 6 decimal places, at most 1000; in micro-units.
func ParsePrice(s string) (int64, error) {
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("%q is negative", s)
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") || !digits(whole) || !digits(frac) {
		return 0, fmt.Errorf("%q is not a decimal number like 0.0079", s)
	}
	if len(frac) > 6 {
		return 0, fmt.Errorf("%q has more than 6 decimal places", s)
	}
	if len(whole) > 4 {
		return 0, fmt.Errorf("%q is more than 1000 per segment", s)
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	f, _ := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	v := w*1_000_000 + f
	if v > maxPrice {
		return 0, fmt.Errorf("%q is more than 1000 per segment", s)
	}
	return v, nil
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Format writes micro-units as a decimal without trailing zeros
// ("0.0474", "12", "0").
func Format(micros int64) string {
	sign := ""
	if micros < 0 {
		sign, micros = "-", -micros
	}
	s := strconv.FormatInt(micros/1_000_000, 10)
	if f := micros % 1_000_000; f != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%06d", f), "0")
	}
	return sign + s
}

// ValidCurrency reports whether c looks like an ISO 4217 code: three
// capital letters.
func ValidCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for _, r := range c {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// Problem is one thing wrong with a table: the field (relative to the
// table, "[2].price") and what.
type Problem struct {
	Field, Msg string
}

// Validate lists everything wrong with a table, in row order.
func Validate(rows []*configv1.MessagePrice) []Problem {
	var out []Problem
	add := func(i int, field, format string, a ...any) {
		out = append(out, Problem{Field: fmt.Sprintf("[%d].%s", i, field), Msg: fmt.Sprintf(format, a...)})
	}
	if len(rows) > MaxRows {
		return []Problem{{Msg: fmt.Sprintf("has %d rows, more than %d", len(rows), MaxRows)}}
	}
	currency := ""
	seen := map[string]int{}
	for i, r := range rows {
		switch r.GetChannel() {
		case messagingv1.Channel_CHANNEL_SMS, messagingv1.Channel_CHANNEL_WHATSAPP:
		default:
			add(i, "channel", "%s is not sms or whatsapp", r.GetChannel())
		}
		switch r.GetDirection() {
		case configv1.PriceDirection_PRICE_DIRECTION_INBOUND, configv1.PriceDirection_PRICE_DIRECTION_OUTBOUND:
		default:
			add(i, "direction", "%s is not inbound or outbound", r.GetDirection())
		}
		if c := r.GetCountry(); c != AnyCountry && !ValidCountry(c) {
			add(i, "country", "%q is not an ISO 3166-1 alpha-2 country code (like CH, in capitals) or * for any country", c)
		}
		if _, err := ParsePrice(r.GetPrice()); err != nil {
			add(i, "price", "%v", err)
		}
		switch c := r.GetCurrency(); {
		case !ValidCurrency(c):
			add(i, "currency", "%q is not an ISO 4217 currency code (like USD)", c)
		case currency == "":
			currency = c
		case c != currency:
			add(i, "currency", "%s differs from the table's %s: one currency per tenant", c, currency)
		}
		k := key(r.GetChannel(), r.GetDirection(), r.GetCountry())
		if j, ok := seen[k]; ok {
			add(i, "country", "%s %s %s has a price already (row %d)", name(r.GetChannel()), dirName(r.GetDirection()), r.GetCountry(), j)
		} else {
			seen[k] = i
		}
	}
	return out
}

func key(ch messagingv1.Channel, d configv1.PriceDirection, country string) string {
	return fmt.Sprintf("%d/%d/%s", ch, d, country)
}

func name(ch messagingv1.Channel) string {
	return strings.ToLower(strings.TrimPrefix(ch.String(), "CHANNEL_"))
}

func dirName(d configv1.PriceDirection) string {
	return strings.ToLower(strings.TrimPrefix(d.String(), "PRICE_DIRECTION_"))
}

// Table is a tenant's prices ready for lookups. The zero Table (or nil)
// prices nothing.
type Table struct {
	Currency string
	prices   map[string]int64
}

// NewTable reads a table; rows that do not parse are left out (config
// validates them).
func NewTable(rows []*configv1.MessagePrice) *Table {
	t := &Table{prices: map[string]int64{}}
	for _, r := range rows {
		p, err := ParsePrice(r.GetPrice())
		if err != nil {
			continue
		}
		if t.Currency == "" {
			t.Currency = r.GetCurrency()
		}
		t.prices[key(r.GetChannel(), r.GetDirection(), r.GetCountry())] = p
	}
	return t
}

// Empty reports whether the table prices nothing.
func (t *Table) Empty() bool { return t == nil || len(t.prices) == 0 }

// Price is the price per segment (micro-units) of a message of the
// channel and direction to or from a customer in country: the country's
// row, else the "*" row; false when neither exists.
func (t *Table) Price(ch messagingv1.Channel, d configv1.PriceDirection, country string) (int64, bool) {
	if t.Empty() {
		return 0, false
	}
	if country != "" {
		if p, ok := t.prices[key(ch, d, country)]; ok {
			return p, true
		}
	}
	p, ok := t.prices[key(ch, d, AnyCountry)]
	return p, ok
}

// Estimate is the cost (micro-units) of a session's segments in and out
// on the channel with a customer in country; segments of a direction
// without a row cost nothing.
func (t *Table) Estimate(ch messagingv1.Channel, country string, in, out int64) int64 {
	var c int64
	if p, ok := t.Price(ch, configv1.PriceDirection_PRICE_DIRECTION_INBOUND, country); ok {
		c += p * in
	}
	if p, ok := t.Price(ch, configv1.PriceDirection_PRICE_DIRECTION_OUTBOUND, country); ok {
		c += p * out
	}
	return c
}
