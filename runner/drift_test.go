package runner_test

import (
	"slices"
	"strings"
	"testing"

	"runner/kfsim"
	"runner/report"
	"runner/runner"
)

// Drift (issue 12 §2): from the locations the due check reads anyway, a
// store that holds the certificate but is not in the plan, and a row whose
// store does not hold it, are warned about; --drift fail fails them.
func TestDriftIsWarnedAndCanFail(t *testing.T) {
	plan := planText(row(1001, storeA), row(1001, storeB), row(1002, storeC))
	drifted := func(t *testing.T) *world {
		w := newWorld(t, plan, withFixture(func(f *kfsim.Fixture) {
			f.Stores = append(f.Stores, kfsim.Store{Id: storeD, ContainerId: 2, ClientMachine: "dmz.example.internal", StorePath: "/d", CertStoreType: 1})
			for i := range f.Certificates {
				if f.Certificates[i].Id == 1001 {
					// 1001 also sits in store D (alias web03), and no longer in B.
					f.Certificates[i].Locations = []kfsim.Location{{CertStoreId: storeA}, {CertStoreId: storeD, Alias: "web03"}}
				}
			}
		}))
		w.cfg.DryRun = true
		return w
	}
	t.Run("warn", func(t *testing.T) {
		w := drifted(t)
		rep := w.mustRun()
		rows := rowsByLine(rep)
		wantWarning(t, rows[2], "drift: certificate 1001 is also in store "+storeD+" (alias web03), not in the plan")
		wantWarning(t, rows[3], "stale: store "+storeB+" does not hold certificate 1001")
		if len(rows[4].Warnings) != 0 {
			t.Errorf("line 4 has no drift, but warns %q", rows[4].Warnings)
		}
		wantRow(t, rep, 3, report.Skipped, report.StageCheck, "would renew")
	})
	t.Run("fail", func(t *testing.T) {
		w := drifted(t)
		w.cfg.Drift = runner.DriftFail
		rep := w.mustRun()
		wantRow(t, rep, 2, report.Failed, report.StageCheck, "drift: certificate 1001 is also in store")
		wantRow(t, rep, 3, report.Failed, report.StageCheck, "drift: certificate 1001 is also in store")
		wantRow(t, rep, 4, report.Skipped, report.StageCheck, "would renew certificate 1002")
	})
	t.Run("a store the user cannot schedule on is no drift", func(t *testing.T) {
		w := newWorld(t, plan, withPermissions(append(renewPerms[:3:3], "/certificate_stores/schedule/1/")...), withFixture(func(f *kfsim.Fixture) {
			f.Stores = append(f.Stores, kfsim.Store{Id: storeD, ContainerId: 2, ClientMachine: "dmz.example.internal", StorePath: "/d", CertStoreType: 1})
			for i := range f.Certificates {
				if f.Certificates[i].Id == 1002 {
					f.Certificates[i].Locations = append(f.Certificates[i].Locations, kfsim.Location{CertStoreId: storeD, Alias: "dmz"})
				}
			}
		}))
		w.cfg.DryRun = true
		if r := rowsByLine(w.mustRun())[4]; len(r.Warnings) != 0 {
			t.Errorf("line 4 warns %q about a store it may not deploy to", r.Warnings)
		}
	})
	t.Run("no drift, no warning", func(t *testing.T) {
		w := newWorld(t, plan)
		w.cfg.DryRun = true
		for _, r := range w.mustRun().Rows {
			if len(r.Warnings) != 0 {
				t.Errorf("line %d warns %q", r.Line, r.Warnings)
			}
		}
	})
}

func wantWarning(t *testing.T, r report.Row, want string) {
	t.Helper()
	if !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, want) }) {
		t.Errorf("line %d warnings %q lack %q", r.Line, r.Warnings, want)
	}
}
