package grpcapi

import (
	"context"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/app"
)

type channelServer struct {
	configv1.UnimplementedChannelServiceServer
	*API
}

var _ configv1.ChannelServiceServer = (*channelServer)(nil)

func (s *channelServer) CreateProviderConnector(ctx context.Context, req *configv1.CreateProviderConnectorRequest) (*configv1.CreateProviderConnectorResponse, error) {
	if err := requireResource(req.GetProviderConnector() != nil, "provider_connector"); err != nil {
		return nil, err
	}
	if err := canWrite(ctx, req.GetProviderConnector().GetTenantId()); err != nil {
		return nil, err
	}
	c, err := s.app.CreateProviderConnector(ctx, req.GetProviderConnector())
	if err != nil {
		return nil, s.toStatus(ctx, "CreateProviderConnector", err, "provider_connector")
	}
	return &configv1.CreateProviderConnectorResponse{ProviderConnector: c}, nil
}

func (s *channelServer) GetProviderConnector(ctx context.Context, req *configv1.GetProviderConnectorRequest) (*configv1.GetProviderConnectorResponse, error) {
	if err := canRead(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	c, err := s.app.GetProviderConnector(ctx, req.GetTenantId(), req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, "GetProviderConnector", err, "")
	}
	return &configv1.GetProviderConnectorResponse{ProviderConnector: c}, nil
}

func (s *channelServer) ListProviderConnectors(ctx context.Context, req *configv1.ListProviderConnectorsRequest) (*configv1.ListProviderConnectorsResponse, error) {
	if err := canRead(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	cs, next, err := s.app.ListProviderConnectors(ctx, req.GetTenantId(), app.Page{Size: req.GetPageSize(), Token: req.GetPageToken()}, req.GetOrgUnitId())
	if err != nil {
		return nil, s.toStatus(ctx, "ListProviderConnectors", err, "")
	}
	return &configv1.ListProviderConnectorsResponse{ProviderConnectors: cs, NextPageToken: next}, nil
}

func (s *channelServer) UpdateProviderConnector(ctx context.Context, req *configv1.UpdateProviderConnectorRequest) (*configv1.UpdateProviderConnectorResponse, error) {
	if err := requireResource(req.GetProviderConnector() != nil, "provider_connector"); err != nil {
		return nil, err
	}
	if err := canWrite(ctx, req.GetProviderConnector().GetTenantId()); err != nil {
		return nil, err
	}
	c, err := s.app.UpdateProviderConnector(ctx, req.GetProviderConnector(), req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, s.toStatus(ctx, "UpdateProviderConnector", err, "provider_connector")
	}
	return &configv1.UpdateProviderConnectorResponse{ProviderConnector: c}, nil
}

func (s *channelServer) DeleteProviderConnector(ctx context.Context, req *configv1.DeleteProviderConnectorRequest) (*configv1.DeleteProviderConnectorResponse, error) {
	if err := canWrite(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	if err := s.app.DeleteProviderConnector(ctx, req.GetTenantId(), req.GetId(), req.GetVersion()); err != nil {
		return nil, s.toStatus(ctx, "DeleteProviderConnector", err, "")
	}
	return &configv1.DeleteProviderConnectorResponse{}, nil
}

// ReencryptConnectorSecrets: a tenant's admin re-seals their tenant; all
// tenants at once is for platform operators.
func (s *channelServer) ReencryptConnectorSecrets(ctx context.Context, req *configv1.ReencryptConnectorSecretsRequest) (*configv1.ReencryptConnectorSecretsResponse, error) {
	if req.GetTenantId() == "" {
		if _, err := grpcserver.RequireRole(ctx, authn.RolePlatform); err != nil {
			return nil, err
		}
	} else if err := canWrite(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	n, err := s.app.ReencryptConnectorSecrets(ctx, req.GetTenantId())
	if err != nil {
		return nil, s.toStatus(ctx, "ReencryptConnectorSecrets", err, "")
	}
	return &configv1.ReencryptConnectorSecretsResponse{Reencrypted: int32(n.Connectors), Checked: int32(n.ConnectorsChecked),
		TenantsReencrypted: int32(n.Tenants), TenantsChecked: int32(n.TenantsChecked)}, nil
}

// CheckProviderConnector: the connector's secrets are used, so only those
// who may change it (the tenant's admins, platform operators) may check it.
func (s *channelServer) CheckProviderConnector(ctx context.Context, req *configv1.CheckProviderConnectorRequest) (*configv1.CheckProviderConnectorResponse, error) {
	if err := canWrite(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	findings, err := s.app.CheckProviderConnector(ctx, req.GetTenantId(), req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, "CheckProviderConnector", err, "")
	}
	ok := true
	for _, f := range findings {
		ok = ok && f.GetOk()
	}
	return &configv1.CheckProviderConnectorResponse{Findings: findings, Ok: ok}, nil
}

func (s *channelServer) CreateMessagingEntry(ctx context.Context, req *configv1.CreateMessagingEntryRequest) (*configv1.CreateMessagingEntryResponse, error) {
	if err := requireResource(req.GetMessagingEntry() != nil, "messaging_entry"); err != nil {
		return nil, err
	}
	if err := canWrite(ctx, req.GetMessagingEntry().GetTenantId()); err != nil {
		return nil, err
	}
	e, err := s.app.CreateMessagingEntry(ctx, req.GetMessagingEntry())
	if err != nil {
		return nil, s.toStatus(ctx, "CreateMessagingEntry", err, "messaging_entry")
	}
	return &configv1.CreateMessagingEntryResponse{MessagingEntry: e}, nil
}

func (s *channelServer) GetMessagingEntry(ctx context.Context, req *configv1.GetMessagingEntryRequest) (*configv1.GetMessagingEntryResponse, error) {
	if err := canRead(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	e, err := s.app.GetMessagingEntry(ctx, req.GetTenantId(), req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, "GetMessagingEntry", err, "")
	}
	return &configv1.GetMessagingEntryResponse{MessagingEntry: e}, nil
}

func (s *channelServer) ListMessagingEntries(ctx context.Context, req *configv1.ListMessagingEntriesRequest) (*configv1.ListMessagingEntriesResponse, error) {
	if err := canRead(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	es, next, err := s.app.ListMessagingEntries(ctx, req.GetTenantId(), app.Page{Size: req.GetPageSize(), Token: req.GetPageToken()}, req.GetOrgUnitId(), req.GetConnectorId())
	if err != nil {
		return nil, s.toStatus(ctx, "ListMessagingEntries", err, "")
	}
	return &configv1.ListMessagingEntriesResponse{MessagingEntries: es, NextPageToken: next}, nil
}

func (s *channelServer) UpdateMessagingEntry(ctx context.Context, req *configv1.UpdateMessagingEntryRequest) (*configv1.UpdateMessagingEntryResponse, error) {
	if err := requireResource(req.GetMessagingEntry() != nil, "messaging_entry"); err != nil {
		return nil, err
	}
	if err := canWrite(ctx, req.GetMessagingEntry().GetTenantId()); err != nil {
		return nil, err
	}
	e, err := s.app.UpdateMessagingEntry(ctx, req.GetMessagingEntry(), req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, s.toStatus(ctx, "UpdateMessagingEntry", err, "messaging_entry")
	}
	return &configv1.UpdateMessagingEntryResponse{MessagingEntry: e}, nil
}

func (s *channelServer) DeleteMessagingEntry(ctx context.Context, req *configv1.DeleteMessagingEntryRequest) (*configv1.DeleteMessagingEntryResponse, error) {
	if err := canWrite(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	if err := s.app.DeleteMessagingEntry(ctx, req.GetTenantId(), req.GetId(), req.GetVersion()); err != nil {
		return nil, s.toStatus(ctx, "DeleteMessagingEntry", err, "")
	}
	return &configv1.DeleteMessagingEntryResponse{}, nil
}
