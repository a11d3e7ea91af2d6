package runner

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"runner/keyfactor"
	"runner/plan"
	"runner/report"
)

// preflight proves that Command can be used before anything is renewed:
// the caller authenticates and holds the permissions renew and deploy need,
// and every target store exists, may be scheduled, and can take the
// certificate as the plan describes it. Its four reads run at once. Row
// problems fail those rows; a problem for everything is a *PreflightError.
func (s *run) preflight(ctx context.Context) error {
	var (
		stores   []keyfactor.CertificateStore
		types    []keyfactor.CertificateStoreType
		typesErr error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if _, err := s.client.StatusEndpoints(gctx); err != nil {
			return &PreflightError{Err: fmt.Errorf("authenticate to Command as %s: %w", s.cfg.Identity, err)}
		}
		return nil
	})
	g.Go(func() error {
		perms, err := s.client.Permissions(gctx)
		if err != nil {
			return &PreflightError{Err: fmt.Errorf("read the permissions of %s: %w", s.cfg.Identity, err)}
		}
		s.perms = perms
		return nil
	})
	g.Go(func() error {
		var odd []keyfactor.RecordError
		var err error
		if stores, odd, err = s.client.AllCertificateStores(gctx, ""); err != nil {
			return &PreflightError{Err: fmt.Errorf("list certificate stores: %w", err)}
		}
		for _, o := range odd {
			s.log.Warn("Command sent a certificate store record that could not be read; rows of that store fail as not found", "store", o.StoreId, "err", o.Err)
		}
		return nil
	})
	g.Go(func() error {
		// Store types only sharpen the checks below; an older or locked-down
		// Command that does not answer leaves them to Deploy.
		types, _, typesErr = s.client.CertificateStoreTypes(gctx)
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	if !s.perms.Known {
		s.log.Info("Command told nothing about the permissions of this user; Command itself will refuse at deploy time what is missing", "user", s.cfg.Identity, "why", s.perms.Why)
	} else if !s.perms.Has(keyfactor.PermEnrollPFX, nil) {
		return &PreflightError{Err: fmt.Errorf("%s lacks permission %s, which Renew and Deploy need; ask a Command administrator to grant it", s.cfg.Identity, keyfactor.PermEnrollPFX)}
	}
	if typesErr != nil {
		s.log.Info("could not read the certificate store types; alias rules are left to Command", "err", typesErr)
	}
	s.stores = make(map[string]keyfactor.CertificateStore, len(stores))
	for _, st := range stores {
		s.stores[st.Id] = st
	}
	s.storeTypes = make(map[int]keyfactor.CertificateStoreType, len(types))
	for _, t := range types {
		s.storeTypes[t.StoreType] = t
	}
	for _, job := range s.jobs {
		for _, pr := range job.Rows {
			if problem := s.storeProblem(pr); problem != "" {
				s.failRows(rowsOf(pr), report.StagePreflight, problem, nil)
			}
		}
	}
	return nil
}

// storeProblem says why a row's deploy cannot succeed, "" when it can.
func (s *run) storeProblem(pr *plan.Row) string {
	st, ok := s.stores[pr.StoreID]
	if !ok {
		return fmt.Sprintf("store not found: no certificate store %s is visible to %s", pr.StoreID, s.cfg.Identity)
	}
	if !s.perms.Has(keyfactor.PermStoresSchedule, st.ContainerId) {
		if st.ContainerId == nil {
			return fmt.Sprintf("permission %s missing (store %s is in no container, so only the global permission applies)", keyfactor.PermStoresSchedule, st.Id)
		}
		return fmt.Sprintf("permission %s missing for container %d", keyfactor.PermStoresSchedule, *st.ContainerId)
	}
	if !st.Approved {
		return fmt.Sprintf("store %s (%s) is not approved in Command, so no job can run on it; approve it under Certificate Stores first", st.Id, storeName(st))
	}
	if !st.AgentAssigned {
		return fmt.Sprintf("store %s (%s) has no orchestrator assigned, so no job can run on it", st.Id, storeName(st))
	}
	t, known := s.storeTypes[st.CertStoreType]
	if !known {
		return ""
	}
	switch {
	case t.CustomAliasAllowed == keyfactor.AliasRequired && pr.Alias == "":
		return fmt.Sprintf("store type %s needs an alias: set the alias column", t.ShortName)
	case t.CustomAliasAllowed == keyfactor.AliasForbidden && pr.Alias != "":
		return fmt.Sprintf("store type %s takes no alias (Command names the entry itself): leave the alias column empty", t.ShortName)
	}
	return ""
}

func storeName(st keyfactor.CertificateStore) string {
	return st.ClientMachine + " " + st.Storepath
}
