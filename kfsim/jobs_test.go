package kfsim

import (
	"net/url"
	"slices"
	"strings"
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
		{"negative delay runs at once", 0, -time.Second, 0},
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

			if tc.wantRun > 0 {
				h.clock.Set(t0.Add(tc.wantRun - time.Nanosecond))
				c := decode[wireCertificate](t, h.call("GET", "Certificates/"+itoa(rn.KeyfactorId)+"?includeLocations=true", alice, nil), 200)
				if len(c.Locations) != 0 || h.sim.Ledger().Jobs[0].State != JobScheduled {
					t.Fatalf("job ran early: locations %+v", c.Locations)
				}
			}

			h.clock.Set(t0.Add(tc.wantRun))
			c := decode[wireCertificate](t, h.call("GET", "Certificates/"+itoa(rn.KeyfactorId)+"?includeLocations=true", alice, nil), 200)
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

// TestInventoryDelay: a job that succeeded shows in Locations only
// InventoryDelay after it ran, and the entry it replaced stays until then.
func TestInventoryDelay(t *testing.T) {
	tests := []struct {
		name      string
		inventory time.Duration
		wantSeen  time.Duration // after the job ran
	}{
		{"recorded thirty seconds", 30 * time.Second, 30 * time.Second},
		{"zero is at once", 0, 0},
		{"negative is at once", -time.Second, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{JobDelay: 2 * time.Second, InventoryDelay: tc.inventory})
			rn := h.renew(alice, wireRenewalRequest{CertificateId: 100})
			h.deploy(alice, wireDeployRequest{CertificateId: rn.KeyfactorId, Stores: []wireDeployStore{{StoreId: storeWeb01, Alias: "web", Overwrite: true}}})
			ran := t0.Add(2 * time.Second)
			locations := func(id int) []Location {
				t.Helper()
				return decode[wireCertificate](t, h.call("GET", "Certificates/"+itoa(id)+"?includeLocations=true", alice, nil), 200).Locations
			}
			if tc.wantSeen > 0 {
				h.clock.Set(ran.Add(tc.wantSeen - time.Nanosecond))
				if j := h.sim.Ledger().Jobs[0]; j.State != JobSucceeded || !j.InventoryAt.Equal(ran.Add(tc.wantSeen)) {
					t.Fatalf("job = %+v, want succeeded, inventory at %s", j, ran.Add(tc.wantSeen))
				}
				if l := locations(rn.KeyfactorId); len(l) != 0 {
					t.Fatalf("new certificate seen before inventory: %+v", l)
				}
				if !holds(locations(100), storeWeb01, "web") {
					t.Fatal("old certificate left the store before inventory")
				}
			}
			h.clock.Set(ran.Add(tc.wantSeen))
			if l := locations(rn.KeyfactorId); len(l) != 1 || l[0].CertStoreId != storeWeb01 || l[0].Alias != "web" {
				t.Fatalf("new certificate locations = %+v", l)
			}
			if l := locations(100); len(l) != 0 {
				t.Errorf("old certificate still at %+v", l)
			}
		})
	}
}

func TestJobHistory(t *testing.T) {
	h := newHarness(t, Options{JobDelay: time.Second})
	rn := h.renew(bob, wireRenewalRequest{CertificateId: 104})
	h.sim.FailJobs(storeDB, "Access denied to /etc/ssl/db.pem")
	h.deploy(bob, wireDeployRequest{CertificateId: rn.KeyfactorId, Password: "pw", Stores: stores(storeWeb02, storeDB)})
	l := h.sim.Ledger()
	okJob, failJob := l.Jobs[0], l.Jobs[1]

	byJob := func(id string) url.Values {
		// The terraform provider's request: unprefixed names.
		return url.Values{"QueryString": {`JobId -eq "` + id + `"`}, "ReturnLimit": {"100"}, "SortField": {"JobHistoryId"}, "SortAscending": {"1"}}
	}
	if got := decode[[]wireJobHistory](t, h.call("GET", "OrchestratorJobs/JobHistory?"+byJob(okJob.Id).Encode(), olga, nil), 200); len(got) != 0 {
		t.Fatalf("history before the job ran = %+v", got)
	}
	h.clock.Advance(time.Second)
	got := decode[[]wireJobHistory](t, h.call("GET", "OrchestratorJobs/JobHistory?"+byJob(okJob.Id).Encode(), olga, nil), 200)
	if len(got) != 1 || got[0].JobId != okJob.Id || got[0].Result != 2 || got[0].Status != 3 || got[0].StorePath != "My" ||
		got[0].ClientMachine != "web02.corp.example" || got[0].JobType != "IISUManagement" || !got[0].OperationStart.Equal(okJob.RunAt) {
		t.Errorf("history of the job that succeeded = %+v", got)
	}
	got = decode[[]wireJobHistory](t, h.call("GET", "OrchestratorJobs/JobHistory?"+byJob(strings.ToUpper(failJob.Id)).Encode(), olga, nil), 200)
	if len(got) != 1 || got[0].Result != 4 || got[0].Status != 3 || got[0].Message != "Access denied to /etc/ssl/db.pem" {
		t.Errorf("history of the job that failed = %+v", got)
	}

	tests := []struct {
		name    string
		params  url.Values
		wantIDs []int64
		total   string
	}{
		{"all", url.Values{}, []int64{1001, 1002}, "2"},
		{"pq paging", url.Values{"pq.returnLimit": {"1"}, "pq.pageReturned": {"2"}}, []int64{1002}, "2"},
		{"newest first", url.Values{"pq.sortField": {"JobHistoryId"}, "pq.sortAscending": {"1"}}, []int64{1002, 1001}, "2"},
		{"failures", url.Values{"pq.queryString": {"Result -eq 4"}}, []int64{1002}, "1"},
		{"by machine or path", url.Values{"QueryString": {`ClientMachine -eq "db01.corp.example" OR StorePath -eq "My"`}}, []int64{1001, 1002}, "2"},
		{"by job type and time", url.Values{"QueryString": {`JobType -eq "PEMManagement" AND OperationStart -ge "` + t0.Format(time.RFC3339) + `"`}}, []int64{1002}, "1"},
		{"by status", url.Values{"QueryString": {`Status -eq 3 AND JobHistoryId -eq 1001`}}, []int64{1001}, "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := h.call("GET", "OrchestratorJobs/JobHistory?"+tc.params.Encode(), olga, nil)
			var ids []int64
			for _, e := range decode[[]wireJobHistory](t, res, 200) {
				ids = append(ids, e.JobHistoryId)
			}
			if !slices.Equal(ids, tc.wantIDs) || res.header.Get("X-Total-Count") != tc.total {
				t.Errorf("ids = %v (total %s), want %v (%s)", ids, res.header.Get("X-Total-Count"), tc.wantIDs, tc.total)
			}
		})
	}
	wantError(t, h.call("GET", "OrchestratorJobs/JobHistory", bob, nil), 403, PermAgentsRead)
	wantError(t, h.call("GET", "OrchestratorJobs/JobHistory?pq.queryString=Color+-eq+1", olga, nil), 400, "unknown field")
}
