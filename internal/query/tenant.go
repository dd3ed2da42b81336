package query

import (
	"net/http"
	"strings"

	"github.com/tracectl/tracectl/internal/tenant"
)

// TenantHeader names the tenant of a request when multi-tenancy is on.
const TenantHeader = "X-Scope-OrgID"

// tenantOf returns the tenant of r: "single-tenant" when multi-tenancy is
// off (the header is then ignored, as Tempo does), else the validated
// X-Scope-OrgID.
func (a *API) tenantOf(r *http.Request) (string, error) {
	if !a.cfg.MultiTenancy {
		return tenant.Default, nil
	}
	values := r.Header.Values(TenantHeader)
	if len(values) == 0 || (len(values) == 1 && strings.TrimSpace(values[0]) == "") {
		return "", errorf(http.StatusUnauthorized,
			"no org id: multi-tenancy is on, so each query must name its tenant in the %s header (in Grafana: the data source's custom HTTP headers)", TenantHeader)
	}
	if len(values) > 1 {
		return "", errorf(http.StatusBadRequest, "%s is given %d times; send exactly one tenant per query", TenantHeader, len(values))
	}
	id := strings.TrimSpace(values[0])
	if strings.Contains(id, "|") {
		return "", errorf(http.StatusBadRequest,
			"%s %q names several tenants; tracectl answers one tenant per query", TenantHeader, id)
	}
	if err := tenant.Validate(id); err != nil {
		return "", errorf(http.StatusBadRequest, "invalid %s: %v", TenantHeader, err)
	}
	return id, nil
}
