// Package directory answers distribution's questions about users and
// services from the config service, with a short-lived cache.
package directory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"

	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// Directory reads users and services.
type Directory struct {
	users    configv1.UserServiceClient
	services configv1.ServiceServiceClient
	ttl      time.Duration
	// FirstReply is the first-reply time of services whose
	// DistributionSettings.first_reply_timeout is unset; 0: none.
	FirstReply time.Duration

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	val any
	at  time.Time
}

// New returns a directory over the config service's clients.
func New(users configv1.UserServiceClient, services configv1.ServiceServiceClient, ttl time.Duration) *Directory {
	return &Directory{users: users, services: services, ttl: ttl, cache: map[string]cached{}}
}

func (d *Directory) get(key string) (any, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.cache[key]
	if !ok || time.Since(c.at) > d.ttl {
		return nil, false
	}
	return c.val, true
}

func (d *Directory) put(key string, v any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cache[key] = cached{val: v, at: time.Now()}
}

// Agent returns what distribution needs to know about a user.
func (d *Directory) Agent(ctx context.Context, tenant, userID string) (engine.AgentInfo, error) {
	k := "u/" + tenant + "/" + userID
	if v, ok := d.get(k); ok {
		return v.(engine.AgentInfo), nil
	}
	res, err := d.users.GetUser(ctx, &configv1.GetUserRequest{TenantId: tenant, Id: userID})
	if err != nil {
		return engine.AgentInfo{}, fmt.Errorf("get user %q: %w", userID, err)
	}
	u := res.GetUser()
	info := engine.AgentInfo{
		ID:       u.GetId(),
		Eligible: u.GetImLicense() && slices.Contains(u.GetRoles(), configv1.Role_ROLE_AGENT),
		Services: u.GetServiceIds(),
		Capacity: int(u.GetCapacity()),
		Skills:   u.GetSkills(),
	}
	d.put(k, info)
	return info, nil
}

// Service returns what distribution needs to know about a service.
func (d *Directory) Service(ctx context.Context, tenant, serviceID string) (engine.ServiceInfo, error) {
	k := "s/" + tenant + "/" + serviceID
	if v, ok := d.get(k); ok {
		return v.(engine.ServiceInfo), nil
	}
	res, err := d.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: tenant, Id: serviceID})
	if err != nil {
		return engine.ServiceInfo{}, fmt.Errorf("get service %q: %w", serviceID, err)
	}
	s := res.GetService()
	dist := s.GetDistribution()
	info := engine.ServiceInfo{
		ID:               s.GetId(),
		Name:             s.GetName(),
		RONATimeout:      dist.GetRonaTimeout().AsDuration(),
		MaxParallelTasks: int(dist.GetMaxParallelTasks()),
		AfterCallWork:    dist.GetAfterCallWork().AsDuration(),
		ServiceCodes:     dist.GetServiceCodes(),
		SalesCodes:       dist.GetSalesCodes(),
		Tags:             dist.GetTags(),

		FirstReplyTimeout: d.FirstReply,
		FirstReplyRequeue: dist.GetFirstReplyRequeue(),
		ParkedCounts:      dist.GetParkedCounts(),

		PreferredAgentWithin: dist.GetPreferredAgentWithin().AsDuration(),
		PreferredAgentWait:   dist.GetPreferredAgentWait().AsDuration(),
		OverflowAfter:        dist.GetOverflowAfter().AsDuration(),
		OverflowSkills:       dist.GetOverflowSkills(),
	}
	if fr := dist.GetFirstReplyTimeout(); fr != nil {
		info.FirstReplyTimeout = fr.AsDuration()
	}
	d.put(k, info)
	return info, nil
}
