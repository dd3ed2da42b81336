package ingest

import (
	"context"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/tracectl/tracectl/internal/tenant"
)

// tenantFrom picks the tenant of a request from the values of its
// X-Scope-OrgID header or metadata.
func tenantFrom(multi bool, values []string, protocol string) (string, *requestError) {
	if !multi {
		return DefaultTenant, nil
	}
	if len(values) == 0 || (len(values) == 1 && strings.TrimSpace(values[0]) == "") {
		return "", &requestError{http.StatusUnauthorized, codes.Unauthenticated, reasonNoTenant,
			protocol + ": no tenant: multi-tenancy is on, so each request must name its tenant in the " +
				TenantHeader + " header (gRPC metadata x-scope-orgid)"}
	}
	if len(values) > 1 {
		return "", &requestError{http.StatusBadRequest, codes.InvalidArgument, reasonBadTenant,
			protocol + ": " + TenantHeader + " is given more than once; send exactly one tenant per request"}
	}
	id := strings.TrimSpace(values[0])
	if err := tenant.Validate(id); err != nil {
		return "", &requestError{http.StatusBadRequest, codes.InvalidArgument, reasonBadTenant,
			protocol + ": invalid " + TenantHeader + ": " + err.Error()}
	}
	return id, nil
}

func tenantFromHTTP(multi bool, r *http.Request, protocol string) (string, *requestError) {
	return tenantFrom(multi, r.Header.Values(TenantHeader), protocol)
}

func tenantFromGRPC(multi bool, ctx context.Context, protocol string) (string, *requestError) {
	md, _ := metadata.FromIncomingContext(ctx)
	return tenantFrom(multi, md.Get(strings.ToLower(TenantHeader)), protocol)
}
