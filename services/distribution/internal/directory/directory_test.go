package directory

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

type services struct {
	configv1.ServiceServiceClient
	d *configv1.DistributionSettings
}

func (s services) GetService(_ context.Context, r *configv1.GetServiceRequest, _ ...grpc.CallOption) (*configv1.GetServiceResponse, error) {
	return &configv1.GetServiceResponse{Service: &configv1.Service{Id: r.GetId(), TenantId: r.GetTenantId(), Name: "Sales", Distribution: s.d}}, nil
}

// A service's first_reply_timeout wins over FIRST_REPLY_TIMEOUT (the
// directory's default), zero included (off); unset takes the default.
func TestServiceFirstReplyAndDistributionSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    *configv1.DistributionSettings
		want time.Duration
	}{
		{"unset: the default", &configv1.DistributionSettings{}, 5 * time.Minute},
		{"the service's", &configv1.DistributionSettings{FirstReplyTimeout: durationpb.New(time.Minute)}, time.Minute},
		{"off for the service", &configv1.DistributionSettings{FirstReplyTimeout: durationpb.New(0)}, 0},
	} {
		d := New(nil, services{d: tc.d}, time.Minute)
		d.FirstReply = 5 * time.Minute
		got, err := d.Service(context.Background(), "acme", "sales")
		if err != nil {
			t.Fatal(err)
		}
		if got.FirstReplyTimeout != tc.want {
			t.Errorf("%s: first reply %v, want %v", tc.name, got.FirstReplyTimeout, tc.want)
		}
	}
	d := New(nil, services{d: &configv1.DistributionSettings{
		ParkedCounts: true, FirstReplyRequeue: true, PreferredAgentWithin: durationpb.New(time.Hour),
		PreferredAgentWait: durationpb.New(time.Second), OverflowAfter: durationpb.New(time.Minute), OverflowSkills: []string{"en"},
	}}, time.Minute)
	got, err := d.Service(context.Background(), "acme", "sales")
	if err != nil {
		t.Fatal(err)
	}
	if !got.ParkedCounts || !got.FirstReplyRequeue || got.PreferredAgentWithin != time.Hour || got.PreferredAgentWait != time.Second ||
		got.OverflowAfter != time.Minute || len(got.OverflowSkills) != 1 {
		t.Errorf("service = %+v, want every distribution setting carried", got)
	}
}
