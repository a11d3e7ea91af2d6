package kfsim

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pendingRenewal renews certificate 101 (its template needs approval) and
// deploys it by request id to the k8s store; the job waits.
func pendingRenewal(t *testing.T, h *harness) renewAnswer {
	t.Helper()
	rn := h.renew(alice, wireRenewalRequest{CertificateId: 101})
	if rn.KeyfactorId != 0 || rn.KeyfactorRequestId == 0 {
		t.Fatalf("renewal = %+v, want pending", rn)
	}
	h.deploy(alice, wireDeployRequest{RequestId: rn.KeyfactorRequestId, Stores: stores(storeK8s)})
	return rn
}

func TestWorkflowApprove(t *testing.T) {
	h := newHarness(t, Options{JobDelay: 10 * time.Second})
	rn := pendingRenewal(t, h)
	rid := strconv.Itoa(rn.KeyfactorRequestId)

	wantError(t, h.call("GET", "Workflow/Certificates/"+rid, alice, nil), 403, PermAlertsRead)
	d := decode[wireRequestDetails](t, h.call("GET", "Workflow/Certificates/"+rid, olga, nil), 200)
	if d.Id != rn.KeyfactorRequestId || d.State != 1 || d.StateString != "Pending" || d.Requester != `CORP\alice` ||
		d.CommonName != "db.example.com" || d.Template != "Approved" || len(d.CertStores) != 1 || d.CertStores[0].ClientMachine != "k8s-prod" {
		t.Errorf("details = %+v", d)
	}
	q := url.Values{"pagedQuery.queryString": {`Requester -eq "CORP\alice" AND State -eq 1`}}
	res := h.call("GET", "Workflow/Certificates/Pending?"+q.Encode(), olga, nil)
	if pending := decode[[]wireRequest](t, res, 200); len(pending) != 1 || pending[0].Id != rn.KeyfactorRequestId || res.header.Get("X-Total-Count") != "1" {
		t.Errorf("pending = %+v (total %s)", pending, res.header.Get("X-Total-Count"))
	}

	got := decode[wireApproveDenyResult](t, h.call("POST", "Workflow/Certificates/Approve", olga, []int{rn.KeyfactorRequestId, 12345}), 200)
	if len(got.Successes) != 1 || got.Successes[0].KeyfactorRequestId != rn.KeyfactorRequestId ||
		len(got.Failures) != 1 || got.Failures[0].KeyfactorRequestId != 12345 || !strings.Contains(got.Failures[0].Comment, "no such request") {
		t.Fatalf("approve = %+v", got)
	}
	d = decode[wireRequestDetails](t, h.call("GET", "Workflow/Certificates/"+rid, olga, nil), 200)
	if d.State != 2 || d.StateString != "Issued" {
		t.Errorf("details after approval = %+v", d)
	}
	issued := decode[[]wireCertificate](t, h.call("GET", "Certificates?pq.queryString="+url.QueryEscape("CertRequestId -eq "+rid), alice, nil), 200)
	if len(issued) != 1 || issued[0].IssuedDN != "CN=db.example.com" {
		t.Fatalf("issued certificate = %+v", issued)
	}
	l := h.sim.Ledger()
	if j := l.Jobs[0]; j.State != JobScheduled || j.CertificateId != issued[0].Id {
		t.Errorf("job after approval = %+v", j)
	}
	if rn := l.Renewals[0]; rn.Pending || rn.NewCertificateId != issued[0].Id || rn.Disposition != "ISSUED" {
		t.Errorf("renewal after approval = %+v", rn)
	}
	// Approving again fails, as a request that is no longer pending.
	again := decode[wireApproveDenyResult](t, h.call("POST", "Workflow/Certificates/Approve", olga, []int{rn.KeyfactorRequestId}), 200)
	if len(again.Failures) != 1 || len(again.Successes) != 0 {
		t.Errorf("second approve = %+v", again)
	}
}

func TestWorkflowDeny(t *testing.T) {
	for _, via := range []string{"Deny", "POST /Workflow/Certificates/Deny", "POST /_kfsim/deny"} {
		t.Run(via, func(t *testing.T) {
			h := newHarness(t, Options{})
			rn := pendingRenewal(t, h)
			rid := rn.KeyfactorRequestId
			switch via {
			case "Deny":
				if err := h.sim.Deny(rid, "not now"); err != nil {
					t.Fatal(err)
				}
			case "POST /Workflow/Certificates/Deny":
				got := decode[wireApproveDenyResult](t, h.call("POST", "Workflow/Certificates/Deny", olga,
					map[string]any{"Comment": "not now", "CertificateRequestIds": []int{rid}}), 200)
				if len(got.Successes) != 1 || got.Successes[0].Comment != "not now" {
					t.Fatalf("deny = %+v", got)
				}
			default:
				decode[map[string]int](t, h.call("POST", "/_kfsim/deny/"+strconv.Itoa(rid), cred{}, `{"Comment":"not now"}`), 200)
			}
			d := decode[wireRequestDetails](t, h.call("GET", "Workflow/Certificates/"+strconv.Itoa(rid), olga, nil), 200)
			if d.State != 3 || d.StateString != "Denied" || d.DenialComment != "not now" {
				t.Errorf("details = %+v", d)
			}
			if denied := decode[[]wireRequest](t, h.call("GET", "Workflow/Certificates/Denied", olga, nil), 200); len(denied) != 1 || denied[0].Id != rid {
				t.Errorf("denied list = %+v", denied)
			}
			if pending := decode[[]wireRequest](t, h.call("GET", "Workflow/Certificates/Pending", olga, nil), 200); len(pending) != 0 {
				t.Errorf("pending list = %+v", pending)
			}
			l := h.sim.Ledger()
			if j := l.Jobs[0]; j.State != JobCancelled || !strings.Contains(j.Message, "was denied: not now") {
				t.Errorf("job = %+v, want cancelled with the comment", j)
			}
			if r := l.Renewals[0]; !r.Denied || r.Pending || r.Disposition != "DENIED" || r.NewCertificateId != 0 {
				t.Errorf("renewal = %+v", r)
			}
			wantError(t, h.call("POST", "Enrollment/PFX/Deploy", alice, wireDeployRequest{RequestId: rid, Stores: stores(storeK8s)}), http.StatusBadRequest, "denied")
			if r := h.sim.Ledger().Deploys[1].Refused; r != RefusedDenied {
				t.Errorf("Refused = %q, want %q", r, RefusedDenied)
			}
			if _, err := h.sim.Approve(rid); !errors.Is(err, errNotPending) {
				t.Errorf("Approve after Deny: %v", err)
			}
			if err := h.sim.Deny(rid, "again"); !errors.Is(err, errNotPending) {
				t.Errorf("second Deny: %v", err)
			}
			if err := h.sim.Deny(12345, ""); !errors.Is(err, errUnknownRequest) {
				t.Errorf("Deny of an unknown request: %v", err)
			}
		})
	}
}

func TestWorkflowRejects(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name, method, path string
		body               any
		status             int
		msg                string
	}{
		{"unknown request", "GET", "Workflow/Certificates/5", nil, 404, "5"},
		{"bad id", "GET", "Workflow/Certificates/five", nil, 400, "five"},
		{"approve needs a body", "POST", "Workflow/Certificates/Approve", "", 400, "body is required"},
		{"approve takes an array", "POST", "Workflow/Certificates/Approve", `{"Ids":[1]}`, 400, "not valid"},
		{"list without permission", "GET", "Workflow/Certificates/Pending", nil, 403, PermAlertsRead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			who := olga
			if tc.status == 403 {
				who = alice
			}
			wantError(t, h.call(tc.method, tc.path, who, tc.body), tc.status, tc.msg)
		})
	}
	eps := decode[[]string](t, h.call("GET", "Status/Endpoints", olga, nil), 200)
	for ep, want := range map[string]bool{"GET /Workflow/Certificates/{id}": true, "POST /Workflow/Certificates/Deny": true,
		"GET /OrchestratorJobs/JobHistory": true, "POST /Enrollment/Renew": false} {
		if slices.Contains(eps, ep) != want {
			t.Errorf("olga's endpoints %q: %s listed %v, want %v", eps, ep, !want, want)
		}
	}
}
