// Package grpcapi is the config service's gRPC adapter: it checks who may
// call what, hands requests to the app, and maps domain errors to status
// codes with google.rpc details, once, here.
//
// Access:
//   - platform operators (role platform) manage tenants and may act in any
//     tenant;
//   - a tenant's admins read and change their tenant's configuration;
//     supervisors read it; agents have no access;
//   - Switchboard services (role service) may read everything and are the
//     only callers of LookupService, whose answers carry decrypted secrets.
package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/app"
)

// API implements every config service.
type API struct {
	app *app.App
	log *slog.Logger
}

// New returns the adapter over a.
func New(a *app.App, log *slog.Logger) *API { return &API{app: a, log: log} }

// Register adds the services to s.
func (api *API) Register(s grpc.ServiceRegistrar) {
	configv1.RegisterTenantServiceServer(s, &tenantServer{API: api})
	configv1.RegisterChannelServiceServer(s, &channelServer{API: api})
	configv1.RegisterServiceServiceServer(s, &serviceServer{API: api})
	configv1.RegisterUserServiceServer(s, &userServer{API: api})
	configv1.RegisterWorkflowServiceServer(s, &workflowServer{API: api})
	configv1.RegisterLookupServiceServer(s, &lookupServer{API: api})
}

// ServiceNames are the registered services, for health reporting.
var ServiceNames = []string{
	configv1.TenantService_ServiceDesc.ServiceName,
	configv1.ChannelService_ServiceDesc.ServiceName,
	configv1.ServiceService_ServiceDesc.ServiceName,
	configv1.UserService_ServiceDesc.ServiceName,
	configv1.WorkflowService_ServiceDesc.ServiceName,
	configv1.LookupService_ServiceDesc.ServiceName,
}

// canRead: the caller may read tenant's configuration.
func canRead(ctx context.Context, tenant string) error {
	if _, err := grpcserver.RequireTenant(ctx, tenant); err != nil {
		return err
	}
	_, err := grpcserver.RequireRole(ctx, authn.RoleAdmin, authn.RoleSupervisor, authn.RolePlatform)
	return err
}

// canWrite: the caller may change tenant's configuration.
func canWrite(ctx context.Context, tenant string) error {
	if _, err := grpcserver.RequireTenant(ctx, tenant); err != nil {
		return err
	}
	_, err := grpcserver.RequireRole(ctx, authn.RoleAdmin, authn.RolePlatform)
	return err
}

// isPlatform: the caller manages tenants themselves.
func isPlatform(ctx context.Context) bool {
	c := authn.FromContext(ctx)
	return c != nil && (c.Has(authn.RolePlatform) || c.Has(authn.RoleService))
}

func requireID(id string) error {
	if id == "" {
		return fieldError(codes.InvalidArgument, "id", "is required")
	}
	return nil
}

func requireResource(present bool, field string) error {
	if !present {
		return fieldError(codes.InvalidArgument, field, "is required")
	}
	return nil
}

func fieldError(code codes.Code, field, desc string) error {
	st := status.New(code, field+": "+desc)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}}); err == nil {
		st = d
	}
	return st.Err()
}

var codeOf = map[app.Code]codes.Code{
	app.CodeInvalid:            codes.InvalidArgument,
	app.CodeNotFound:           codes.NotFound,
	app.CodeAlreadyExists:      codes.AlreadyExists,
	app.CodeFailedPrecondition: codes.FailedPrecondition,
	app.CodeStale:              codes.Aborted,
	app.CodeUnauthenticated:    codes.Unauthenticated,
	app.CodeThrottled:          codes.ResourceExhausted,
}

// toStatus maps an error of the app to a status. Field violations name the
// request field: prefix (the resource's field in the request, such as
// "service") is put in front of resource-relative fields.
func (api *API) toStatus(ctx context.Context, method string, err error, prefix string) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var de *app.Error
	if !errors.As(err, &de) {
		switch {
		case errors.Is(err, context.Canceled):
			return status.Error(codes.Canceled, "canceled")
		case errors.Is(err, context.DeadlineExceeded):
			return status.Error(codes.DeadlineExceeded, "deadline exceeded")
		}
		api.log.ErrorContext(ctx, "config request failed", "method", method, "err", err)
		return status.Error(codes.Internal, "internal error; the config service logged the cause")
	}
	code := codeOf[de.Code]
	var fvs []*errdetails.BadRequest_FieldViolation
	for _, v := range de.Violations {
		field := v.Field
		if prefix != "" && field != "update_mask" && !strings.HasPrefix(field, "page_") {
			field = prefix + "." + field
		}
		fvs = append(fvs, &errdetails.BadRequest_FieldViolation{Field: field, Description: v.Description})
	}
	msg := de.Message
	if len(fvs) > 0 {
		parts := make([]string, len(fvs))
		for i, f := range fvs {
			parts[i] = f.Field + ": " + f.Description
		}
		msg = strings.Join(parts, "; ")
	}
	st := status.New(code, msg)
	var details []protoadapt.MessageV1
	if de.RetryAfter > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(de.RetryAfter)})
	}
	if len(fvs) > 0 {
		details = append(details, &errdetails.BadRequest{FieldViolations: fvs})
	}
	if code == codes.FailedPrecondition {
		pf := &errdetails.PreconditionFailure{}
		for _, f := range fvs {
			pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{Type: "STATE", Subject: f.Field, Description: f.Description})
		}
		details = append(details, pf)
	}
	if len(details) > 0 {
		if d, err := st.WithDetails(details...); err == nil {
			st = d
		}
	}
	return st.Err()
}
