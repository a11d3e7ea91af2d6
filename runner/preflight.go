package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"runner/keyfactor"
	"runner/report"
)

// preflight proves that Command can be used before anything is renewed:
// the caller authenticates, holds the global permissions renew and deploy
// need, and every target store exists and may be scheduled. Row-level
// problems fail those rows; a problem for everything is a *PreflightError.
func (s *run) preflight(ctx context.Context) error {
	if _, err := s.client.StatusEndpoints(ctx); err != nil {
		return &PreflightError{Err: fmt.Errorf("authenticate to Command as %s: %w", s.cfg.Identity, err)}
	}
	perms, err := s.client.MyPermissions(ctx)
	known := true
	if err != nil {
		var apiErr *keyfactor.APIError
		if errors.As(err, &apiErr) && (apiErr.Status == http.StatusNotFound || apiErr.Status == http.StatusMethodNotAllowed) {
			// Older Command versions lack /Security/My/Permissions: go on,
			// and let Command refuse per store at deploy time.
			known = false
			s.log.Info("Command does not offer GET /Security/My/Permissions; permissions will be checked by Command itself")
		} else {
			return &PreflightError{Err: fmt.Errorf("read permissions of %s: %w", s.cfg.Identity, err)}
		}
	}
	if known && !keyfactor.HasPermission(perms, keyfactor.PermEnrollPFX, nil) {
		return &PreflightError{Err: fmt.Errorf("%s lacks permission %s, which Renew and Deploy need; ask a Command administrator to grant it", s.cfg.Identity, keyfactor.PermEnrollPFX)}
	}

	stores, err := s.client.AllCertificateStores(ctx, "")
	if err != nil {
		return &PreflightError{Err: fmt.Errorf("list certificate stores: %w", err)}
	}
	s.stores = make(map[string]keyfactor.CertificateStore, len(stores))
	for _, st := range stores {
		s.stores[strings.ToLower(st.Id)] = st
	}
	for _, pr := range s.plan.Rows {
		st, ok := s.stores[pr.StoreID]
		switch {
		case !ok:
			s.failRows(rowsOf(pr), report.StagePreflight,
				fmt.Sprintf("store not found: no certificate store %s is visible to %s", pr.StoreID, s.cfg.Identity), nil)
		case known && !keyfactor.HasPermission(perms, keyfactor.PermStoresSchedule, st.ContainerId):
			s.failRows(rowsOf(pr), report.StagePreflight, missingSchedule(st), nil)
		}
	}
	return nil
}

func missingSchedule(st keyfactor.CertificateStore) string {
	if st.ContainerId == nil {
		return fmt.Sprintf("permission %s missing (store %s is in no container, so only the global permission applies)", keyfactor.PermStoresSchedule, st.Id)
	}
	return fmt.Sprintf("permission %s missing for container %d", keyfactor.PermStoresSchedule, *st.ContainerId)
}
