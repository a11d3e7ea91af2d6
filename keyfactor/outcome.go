package keyfactor

import (
	"strconv"
	"strings"
)

// RenewOutcome says what a 200 answer to POST /Enrollment/Renew means.
type RenewOutcome int

const (
	// RenewIssued: a new certificate exists (KeyfactorId); deploy it.
	RenewIssued RenewOutcome = iota
	// RenewPending: the request awaits approval; only KeyfactorRequestId
	// names it, and a deploy goes by RequestId.
	RenewPending
	// RenewDenied: the CA or a workflow denied the request;
	// DispositionMessage says why. Nothing to deploy.
	RenewDenied
	// RenewFailed: the request failed; DispositionMessage says why.
	RenewFailed
	// RenewEmpty: a 200 without any id, so nothing can be deployed or
	// found later by id.
	RenewEmpty
)

// String returns "issued", "pending", "denied", "failed" or "empty".
func (o RenewOutcome) String() string {
	switch o {
	case RenewIssued:
		return "issued"
	case RenewPending:
		return "pending"
	case RenewDenied:
		return "denied"
	case RenewFailed:
		return "failed"
	case RenewEmpty:
		return "empty"
	}
	return "RenewOutcome(" + strconv.Itoa(int(o)) + ")"
}

// disposition normalises a RequestDisposition for comparison: upper case,
// single spaces ("External_Validation" and "EXTERNAL VALIDATION" agree).
func disposition(s string) string {
	s = strings.ToUpper(strings.ReplaceAll(s, "_", " "))
	return strings.Join(strings.Fields(s), " ")
}

// Outcome classifies the answer. RequestDisposition decides where it names
// a known end ("DENIED", "FAILED") or a waiting state ("PENDING", as
// Keyfactor's own Terraform provider checks after a PFX enrollment;
// "EXTERNAL VALIDATION", the request state Command's workflow endpoints
// document beside Pending and Denied; "UNDER SUBMISSION", the Microsoft CA
// wording). "ISSUED" (recorded from a real 25.4.1) and any other or empty
// disposition fall back to the ids: a certificate id means issued, only a
// request id means pending, neither means empty.
func (r *RenewalResponse) Outcome() RenewOutcome {
	switch d := disposition(r.RequestDisposition); {
	case d == "DENIED" || strings.HasPrefix(d, "DENIED "):
		return RenewDenied
	case d == "FAILED" || d == "FAILURE" || d == "ERROR":
		return RenewFailed
	case d == "PENDING" || d == "EXTERNAL VALIDATION" || d == "UNDER SUBMISSION" || d == "TAKEN UNDER SUBMISSION":
		if r.KeyfactorRequestId > 0 {
			return RenewPending
		}
		return RenewEmpty
	}
	switch {
	case r.KeyfactorId > 0:
		return RenewIssued
	case r.KeyfactorRequestId > 0:
		return RenewPending
	}
	return RenewEmpty
}

// RequestStatus is the state of a certificate request, as far as runner
// needs to know it.
type RequestStatus int

const (
	RequestUnknown RequestStatus = iota
	RequestPending
	RequestIssued
	RequestDenied
	RequestFailed
)

// String returns "unknown", "pending", "issued", "denied" or "failed".
func (s RequestStatus) String() string {
	switch s {
	case RequestUnknown:
		return "unknown"
	case RequestPending:
		return "pending"
	case RequestIssued:
		return "issued"
	case RequestDenied:
		return "denied"
	case RequestFailed:
		return "failed"
	}
	return "RequestStatus(" + strconv.Itoa(int(s)) + ")"
}

// Status reads StateString: the names of the State numbers are not
// published (the OpenAPI file lists 0 to 8 without names), while the docs
// of GET /Workflow/Certificates/{id} name the states Pending, Denied and
// External Validation. A state it does not know is RequestUnknown.
func (r *CertificateRequest) Status() RequestStatus {
	switch s := disposition(r.StateString); {
	case strings.Contains(s, "PENDING"), strings.Contains(s, "EXTERNAL VALIDATION"), strings.Contains(s, "SUBMISSION"):
		return RequestPending
	case strings.Contains(s, "ISSUED"):
		return RequestIssued
	case strings.Contains(s, "DENIED"):
		return RequestDenied
	case strings.Contains(s, "FAIL"), strings.Contains(s, "ERROR"):
		return RequestFailed
	}
	return RequestUnknown
}

// Values of JobHistory.Result and Status, as the docs of
// GET /OrchestratorJobs/JobHistory list them (v11.3, v11.4, Hosted v24.4).
const (
	JobResultUnknown = 0
	JobResultSuccess = 2
	JobResultWarning = 3
	JobResultFailure = 4

	JobStatusUnknown            = 0
	JobStatusWaiting            = 1
	JobStatusInProcess          = 2
	JobStatusCompleted          = 3
	JobStatusAcknowledged       = 4
	JobStatusCompletedWillRetry = 5
)

// Done reports whether the job ran to its end and will not run again
// (Completed, or Acknowledged after a failure or warning).
func (j JobHistory) Done() bool {
	return j.Status == JobStatusCompleted || j.Status == JobStatusAcknowledged
}

// Failed reports whether the job ended in failure for good; a failure
// Command will retry (CompletedWillRetry) is not final.
func (j JobHistory) Failed() bool { return j.Result == JobResultFailure && j.Done() }

// Succeeded reports whether the job ended in success.
func (j JobHistory) Succeeded() bool { return j.Result == JobResultSuccess && j.Done() }
