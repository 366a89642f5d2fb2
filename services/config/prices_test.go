package configsvc_test

import (
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
)

// A tenant's price table is set through the API like any field; every
// kind of bad row is refused naming the row's field and what is wrong.
func TestTenantMessagePrices(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	a := f.admin.tenants
	const sms, wa = messagingv1.Channel_CHANNEL_SMS, messagingv1.Channel_CHANNEL_WHATSAPP
	const in, out = configv1.PriceDirection_PRICE_DIRECTION_INBOUND, configv1.PriceDirection_PRICE_DIRECTION_OUTBOUND
	row := func(ch messagingv1.Channel, d configv1.PriceDirection, country, price, currency string) *configv1.MessagePrice {
		return &configv1.MessagePrice{Channel: ch, Direction: d, Country: country, Price: price, Currency: currency}
	}
	get := func() *configv1.Tenant {
		t.Helper()
		return must[*configv1.GetTenantResponse](t)(a.GetTenant(ctx, &configv1.GetTenantRequest{Id: "acme"})).GetTenant()
	}
	update := func(rows ...*configv1.MessagePrice) (*configv1.Tenant, error) {
		r, err := a.UpdateTenant(ctx, &configv1.UpdateTenantRequest{
			Tenant:     &configv1.Tenant{Id: "acme", Version: get().GetVersion(), MessagePrices: rows},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"message_prices"}},
		})
		return r.GetTenant(), err
	}
	good := []*configv1.MessagePrice{
		row(sms, in, "*", "0.0079", "USD"), row(sms, out, "*", "0.0079", "USD"), row(sms, out, "CH", "0.0654", "USD"),
		row(wa, out, "*", "0.005", "USD"),
	}
	for _, c := range []struct {
		name, field, says string
		rows              []*configv1.MessagePrice
	}{
		{"unknown channel", "tenant.message_prices[0].channel", "not sms or whatsapp", []*configv1.MessagePrice{row(0, in, "*", "1", "USD")}},
		{"no direction", "tenant.message_prices[0].direction", "not inbound or outbound", []*configv1.MessagePrice{row(sms, 0, "*", "1", "USD")}},
		{"bad country", "tenant.message_prices[1].country", `"Switzerland" is not an ISO 3166-1 alpha-2`, []*configv1.MessagePrice{good[0], row(sms, out, "Switzerland", "1", "USD")}},
		{"negative price", "tenant.message_prices[0].price", `"-0.01" is negative`, []*configv1.MessagePrice{row(sms, in, "*", "-0.01", "USD")}},
		{"garbage price", "tenant.message_prices[0].price", "not a decimal number", []*configv1.MessagePrice{row(sms, in, "*", "cheap", "USD")}},
		{"mixed currencies", "tenant.message_prices[1].currency", "EUR differs from the table's USD", []*configv1.MessagePrice{good[0], row(sms, out, "DE", "0.07", "EUR")}},
		{"bad currency", "tenant.message_prices[0].currency", "ISO 4217", []*configv1.MessagePrice{row(sms, in, "*", "1", "dollars")}},
		{"duplicate", "tenant.message_prices[4].country", "sms outbound CH has a price already (row 2)", append(good[:4:4], row(sms, out, "CH", "0.07", "USD"))},
		{"too many", "tenant.message_prices", "more than 500", func() []*configv1.MessagePrice {
			var rows []*configv1.MessagePrice
			for range 501 {
				rows = append(rows, good[0])
			}
			return rows
		}()},
	} {
		_, err := update(c.rows...)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", c.name, err)
			continue
		}
		var said []string
		found := false
		for _, d := range status.Convert(err).Details() {
			if br, ok := d.(*errdetails.BadRequest); ok {
				for _, v := range br.GetFieldViolations() {
					said = append(said, v.GetField()+": "+v.GetDescription())
					found = found || (v.GetField() == c.field && strings.Contains(v.GetDescription(), c.says))
				}
			}
		}
		if !found {
			t.Errorf("%s: the refusal says %q, want %s: %s", c.name, said, c.field, c.says)
		}
	}
	if n := len(get().GetMessagePrices()); n != 0 {
		t.Fatalf("refused tables left %d rows", n)
	}
	got, err := update(good...)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.GetMessagePrices()) != 4 || get().GetMessagePrices()[2].GetPrice() != "0.0654" {
		t.Errorf("stored table %v", get().GetMessagePrices())
	}
	if got, err := update(); err != nil || len(got.GetMessagePrices()) != 0 {
		t.Errorf("clearing the table: %v, %v", got.GetMessagePrices(), err)
	}
}
