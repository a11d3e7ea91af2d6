package kfsim

import (
	"testing"
	"time"
)

func TestJobsReachLocationsAfterRunAt(t *testing.T) {
	tests := []struct {
		name    string
		jobTime time.Duration // from now; 0 = none
		delay   time.Duration
		wantRun time.Duration // from now
	}{
		{"immediate with default delay", 0, 0, DefaultJobDelay},
		{"past job time runs now", -time.Hour, 3 * time.Second, 3 * time.Second},
		{"future job time", 30 * time.Minute, 3 * time.Second, 30*time.Minute + 3*time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{JobDelay: tc.delay})
			rn := h.renew(alice, wireRenewalRequest{CertificateId: 104})
			req := wireDeployRequest{CertificateId: rn.KeyfactorId, Stores: []wireDeployStore{{StoreId: storeWeb02, Alias: "api"}}}
			if tc.jobTime != 0 {
				jt := t0.Add(tc.jobTime)
				req.JobTime = at(jt)
			}
			h.deploy(alice, req)
			j := h.sim.Ledger().Jobs[0]
			if !j.RunAt.Equal(t0.Add(tc.wantRun)) || !j.CreatedAt.Equal(t0) {
				t.Fatalf("job = %+v, want RunAt %s", j, t0.Add(tc.wantRun))
			}

			h.clock.Set(t0.Add(tc.wantRun - time.Nanosecond))
			c := decode[wireCertificate](t, h.call("GET", "Certificates/"+itoa(rn.KeyfactorId)+"?includeLocations=true", alice, nil), 200)
			if len(c.Locations) != 0 || h.sim.Ledger().Jobs[0].State != JobScheduled {
				t.Fatalf("job ran early: locations %+v", c.Locations)
			}

			h.clock.Set(t0.Add(tc.wantRun))
			c = decode[wireCertificate](t, h.call("GET", "Certificates/"+itoa(rn.KeyfactorId)+"?includeLocations=true", alice, nil), 200)
			want := Location{StoreMachine: "web02.corp.example", StorePath: "My", StoreType: 2, Alias: "api", CertStoreId: storeWeb02}
			if len(c.Locations) != 1 || c.Locations[0] != want {
				t.Fatalf("locations = %+v, want %+v", c.Locations, want)
			}
			if j := h.sim.Ledger().Jobs[0]; j.State != JobSucceeded {
				t.Errorf("job = %+v", j)
			}
		})
	}
}

func TestOverwriteAndAlias(t *testing.T) {
	tests := []struct {
		name          string
		alias         string
		overwrite     bool
		wantState     string
		wantMessage   string
		wantOldInWeb1 bool
	}{
		{"same alias without overwrite fails", "web", false, JobFailed, "alias exists, overwrite not set", true},
		{"same alias any case with overwrite replaces", "WEB", true, JobSucceeded, "", false},
		{"new alias adds an entry", "web-2026", false, JobSucceeded, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			rn := h.renew(alice, wireRenewalRequest{CertificateId: 100})
			h.deploy(alice, wireDeployRequest{CertificateId: rn.KeyfactorId,
				Stores: []wireDeployStore{{StoreId: storeWeb01, Alias: tc.alias, Overwrite: tc.overwrite}}})
			h.clock.Advance(time.Minute)
			j := h.sim.Ledger().Jobs[0]
			if j.State != tc.wantState || j.Message != tc.wantMessage {
				t.Errorf("job = %+v, want %s %q", j, tc.wantState, tc.wantMessage)
			}
			old, _ := h.sim.Certificate(100)
			if got := holds(old.Locations, storeWeb01, "web"); got != tc.wantOldInWeb1 {
				t.Errorf("old certificate in store: %v, want %v (%+v)", got, tc.wantOldInWeb1, old.Locations)
			}
			renewed, _ := h.sim.Certificate(rn.KeyfactorId)
			if got := len(renewed.Locations) == 1; got != (tc.wantState == JobSucceeded) {
				t.Errorf("new certificate locations = %+v", renewed.Locations)
			}
		})
	}
}

func TestRetriedDeployAfterFailedJobWithOverwrite(t *testing.T) {
	h := newHarness(t, Options{})
	rn := h.renew(alice, wireRenewalRequest{CertificateId: 100})
	h.deploy(alice, wireDeployRequest{CertificateId: rn.KeyfactorId, Stores: []wireDeployStore{{StoreId: storeWeb01, Alias: "web"}}})
	h.clock.Advance(DefaultJobDelay)
	h.deploy(alice, wireDeployRequest{CertificateId: rn.KeyfactorId, Stores: []wireDeployStore{{StoreId: storeWeb01, Alias: "web", Overwrite: true}}})
	h.clock.Advance(DefaultJobDelay)
	l := h.sim.Ledger()
	if l.Jobs[0].State != JobFailed || l.Jobs[1].State != JobSucceeded {
		t.Errorf("jobs = %+v", l.Jobs)
	}
	if old, _ := h.sim.Certificate(100); len(old.Locations) != 0 {
		t.Errorf("old certificate still at %+v", old.Locations)
	}
}

func TestFailJobs(t *testing.T) {
	h := newHarness(t, Options{})
	if err := h.sim.Load(Fixture{Stores: []Store{{Id: "77777777-7777-4777-8777-777777777777", ClientMachine: "f5", StorePath: "Common", CertStoreType: 9, FailJobs: "device unreachable"}}}); err != nil {
		t.Fatal(err)
	}
	rn := h.renew(alice, wireRenewalRequest{CertificateId: 104})
	h.sim.FailJobs(storeK8s, "orchestrator offline")
	got := h.deploy(alice, wireDeployRequest{CertificateId: rn.KeyfactorId, Stores: stores(storeK8s, storeWeb01, "77777777-7777-4777-8777-777777777777")})
	// The jobs were created: the failure comes later, on the orchestrator.
	if len(got.SuccessfulStores) != 3 {
		t.Fatalf("deploy = %+v", got)
	}
	h.clock.Advance(time.Minute)
	l := h.sim.Ledger()
	want := []struct{ state, msg string }{{JobFailed, "orchestrator offline"}, {JobSucceeded, ""}, {JobFailed, "device unreachable"}}
	for i, w := range want {
		if l.Jobs[i].State != w.state || l.Jobs[i].Message != w.msg {
			t.Errorf("job %d = %+v, want %s %q", i, l.Jobs[i], w.state, w.msg)
		}
	}
	c, _ := h.sim.Certificate(rn.KeyfactorId)
	if len(c.Locations) != 1 || c.Locations[0].CertStoreId != storeWeb01 {
		t.Errorf("locations = %+v", c.Locations)
	}

	// Lifting it lets later jobs succeed.
	h.sim.FailJobs(storeK8s, "")
	h.deploy(alice, wireDeployRequest{CertificateId: rn.KeyfactorId, Stores: stores(storeK8s)})
	h.clock.Advance(time.Minute)
	if j := h.sim.Ledger().Jobs[3]; j.State != JobSucceeded {
		t.Errorf("job after lifting = %+v", j)
	}
}
