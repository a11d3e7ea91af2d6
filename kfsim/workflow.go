package kfsim

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
)

// The CA-level approval endpoints [OAS /Workflow/Certificates/*; DOC v24.4
// WorkflowOriginalGETCertificatesPendingID, WorkflowOriginalPOSTCertificatesApprove].
// Request ids are the KeyfactorRequestId that Renew answered.

// requestModel renders a request as the pending and denied lists do.
func (s *Server) requestModel(rq *request) wireRequest {
	return wireRequest{
		Id:                   rq.id,
		CARequestId:          strconv.Itoa(rq.id),
		CommonName:           rq.old.IssuedCN,
		DistinguishedName:    rq.old.IssuedDN,
		SubmissionDate:       rq.submittedAt,
		CertificateAuthority: rq.ca,
		Template:             rq.template,
		Requester:            rq.identity,
		State:                int(rq.state),
		StateString:          rq.state.String(),
		Metadata:             map[string]string{},
	}
}

// requestDetails answers GET /Workflow/Certificates/{id}: a request in any
// state, with its DenialComment [DOC: "will return certificate requests with
// any state"].
func (s *Server) requestDetails(c *call) response {
	if !hasPermission(c.perms, PermAlertsRead, nil) {
		return forbidden(PermAlertsRead)
	}
	id, err := strconv.Atoi(c.param)
	if err != nil {
		return errorResponse(http.StatusBadRequest, codeInvalid, "The value '"+c.param+"' is not a valid certificate request id.")
	}
	rq := s.requests[id]
	if rq == nil {
		return errorResponse(http.StatusNotFound, codeNotFound, "Certificate request with id "+c.param+" was not found.")
	}
	d := wireRequestDetails{wireRequest: s.requestModel(rq), DenialComment: rq.denialComment, KeyLength: "2048",
		SANs: []string{}, CertStores: []wireRequestStore{}}
	for _, j := range s.jobs.waiting[id] {
		if st := s.stores[j.StoreId]; st != nil {
			d.CertStores = append(d.CertStores, wireRequestStore{ClientMachine: st.ClientMachine, StorePath: st.StorePath, EntryName: j.Alias})
		}
	}
	return jsonResponse(http.StatusOK, d)
}

func requestValue(rq *request, f string) fieldValue {
	switch f {
	case "Id":
		return fieldValue{num: int64(rq.id)}
	case "CommonName":
		return fieldValue{str: rq.old.IssuedCN}
	case "DistinguishedName":
		return fieldValue{str: rq.old.IssuedDN}
	case "SubmissionDate":
		return fieldValue{tm: rq.submittedAt}
	case "Requester":
		return fieldValue{str: rq.identity}
	case "Template":
		return fieldValue{str: rq.template}
	case "CertificateAuthority":
		return fieldValue{str: rq.ca}
	case "State":
		return fieldValue{num: int64(rq.state)}
	}
	return fieldValue{null: true}
}

// pendingRequests answers GET /Workflow/Certificates/Pending, and
// deniedRequests GET /Workflow/Certificates/Denied (pagedQuery.* or
// unprefixed paging).
func (s *Server) pendingRequests(c *call) response { return s.requestList(c, requestPending) }
func (s *Server) deniedRequests(c *call) response  { return s.requestList(c, requestDenied) }

func (s *Server) requestList(c *call, state requestState) response {
	if !hasPermission(c.perms, PermAlertsRead, nil) {
		return forbidden(PermAlertsRead)
	}
	lq, errResp := s.listQuery(c, requestFields, "Id", "pagedQuery")
	if errResp != nil {
		return *errResp
	}
	var found []*request
	for _, rq := range s.requests {
		if rq.state == state && lq.q.matches(func(f string) fieldValue { return requestValue(rq, f) }) {
			found = append(found, rq)
		}
	}
	sort.Slice(found, func(a, b int) bool { return found[a].id < found[b].id })
	sortPage(found, lq, requestValue, "Id")
	start, end := pageOf(len(found), lq.page, lq.limit)
	out := make([]wireRequest, 0, end-start)
	for _, rq := range found[start:end] {
		out = append(out, s.requestModel(rq))
	}
	return listResponse(out, len(found))
}

// processed renders one id of an Approve or Deny answer.
func (s *Server) processed(id int, comment string) wireProcessedRequest {
	p := wireProcessedRequest{KeyfactorRequestId: id, Comment: comment, CARequestId: strconv.Itoa(id)}
	if rq := s.requests[id]; rq != nil {
		p.CALogicalName, p.CAHost = rq.ca, "kfsim"
	}
	return p
}

// approveRequests answers POST /Workflow/Certificates/Approve: the body is
// a bare array of request ids; each lands in Successes or, with a comment,
// in Failures (unknown or not pending).
func (s *Server) approveRequests(c *call) response {
	if !hasPermission(c.perms, PermAlertsRead, nil) {
		return forbidden(PermAlertsRead)
	}
	var ids []int
	if r := decodeBody(c, &ids); r != nil {
		return *r
	}
	res := wireApproveDenyResult{Failures: []wireProcessedRequest{}, Denials: []wireProcessedRequest{}, Successes: []wireProcessedRequest{}}
	for _, id := range ids {
		if _, err := s.approve(id, c.now); err != nil {
			res.Failures = append(res.Failures, s.processed(id, err.Error()))
			continue
		}
		res.Successes = append(res.Successes, s.processed(id, "Approved."))
	}
	return jsonResponse(http.StatusOK, res)
}

// denyRequests answers POST /Workflow/Certificates/Deny:
// {"Comment", "CertificateRequestIds"}.
func (s *Server) denyRequests(c *call) response {
	if !hasPermission(c.perms, PermAlertsRead, nil) {
		return forbidden(PermAlertsRead)
	}
	var req wireDenialRequest
	if r := decodeBody(c, &req); r != nil {
		return *r
	}
	res := wireApproveDenyResult{Failures: []wireProcessedRequest{}, Denials: []wireProcessedRequest{}, Successes: []wireProcessedRequest{}}
	for _, id := range req.CertificateRequestIds {
		if err := s.deny(id, req.Comment, c.now); err != nil {
			res.Failures = append(res.Failures, s.processed(id, err.Error()))
			continue
		}
		res.Successes = append(res.Successes, s.processed(id, req.Comment))
	}
	return jsonResponse(http.StatusOK, res)
}

// serveDecision answers the simulator's own POST /_kfsim/approve/{id} and
// POST /_kfsim/deny/{id} (a JSON {"Comment"} body is optional), for trying
// approval by hand against `runner sim`.
func (s *Server) serveDecision(w http.ResponseWriter, r *http.Request, approve bool, idText string) {
	id, err := strconv.Atoi(idText)
	if err != nil {
		writeResponse(w, errorResponse(http.StatusBadRequest, codeInvalid, "request id "+strconv.Quote(idText)+" is not an integer"))
		return
	}
	if approve {
		certID, err := s.Approve(id)
		if err != nil {
			writeResponse(w, errorResponse(http.StatusNotFound, codeNotFound, err.Error()))
			return
		}
		writeResponse(w, jsonResponse(http.StatusOK, map[string]int{"CertificateId": certID, "RequestId": id}))
		return
	}
	var body struct{ Comment string }
	_ = json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&body)
	if err := s.Deny(id, body.Comment); err != nil {
		writeResponse(w, errorResponse(http.StatusNotFound, codeNotFound, err.Error()))
		return
	}
	writeResponse(w, jsonResponse(http.StatusOK, map[string]int{"RequestId": id}))
}
