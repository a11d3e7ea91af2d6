package kfsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Request dispositions in RenewalResponse. ISSUED and its message are
// recorded [REC id 4]; the others are the simulator's (UNCONFIRMED):
// "EXTERNAL VALIDATION" names the documented request state, DENIED and
// FAILED the outcomes a CA reports.
const (
	dispositionIssued  = "ISSUED"
	dispositionPending = "EXTERNAL VALIDATION"
	dispositionDenied  = "DENIED"
	dispositionFailed  = "FAILED"
)

// Reasons a Deploy call is refused as a whole, as recorded in Deploy.Refused.
const (
	RefusedNotStaged = "not staged"
	RefusedExpired   = "expired"
	RefusedOtherUser = "other user"
	RefusedDenied    = "denied"
)

// requestState is the state of an enrollment request, with the numbers and
// names GET /Workflow/Certificates/{id} answers. The OpenAPI file declares
// State as 0–8 without names and the documentation names Pending, Denied and
// External Validation; the numbers are the simulator's (UNCONFIRMED).
type requestState int

const (
	requestPending requestState = 1
	requestIssued  requestState = 2
	requestDenied  requestState = 3
)

func (st requestState) String() string {
	switch st {
	case requestPending:
		return "Pending"
	case requestIssued:
		return "Issued"
	case requestDenied:
		return "Denied"
	}
	return "Unknown"
}

// Errors of Approve and Deny.
var (
	errUnknownRequest = errors.New("no such request")
	errNotPending     = errors.New("request is not pending approval")
)

// decodeBody decodes a JSON request body; keys match fields without regard
// to case, as ASP.NET binds them.
func decodeBody(c *call, v any) *response {
	trimmed := bytes.TrimSpace(c.body)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		r := errorResponse(http.StatusBadRequest, codeInvalid, "The request body is required.")
		return &r
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		r := errorResponse(http.StatusBadRequest, codeInvalid, "The request body is not valid: "+err.Error())
		return &r
	}
	return nil
}

// renew answers POST /Enrollment/Renew: it issues a new certificate from an
// old one (or, for templates that need approval, opens a pending request)
// and stages its private key for the caller for the window. Templates and
// certificates configured with a DENIED or FAILED disposition answer 200
// with that disposition and no ids.
func (s *Server) renew(c *call) response {
	col, errResp := s.collectionParam(c)
	if errResp != nil {
		return *errResp
	}
	if !canReadCertificates(c.perms, col) {
		return readCertificatesForbidden(col)
	}
	if !hasPermission(c.perms, PermEnrollPFX, nil) {
		return forbidden(PermEnrollPFX)
	}
	var req wireRenewalRequest
	if r := decodeBody(c, &req); r != nil {
		return *r
	}
	req.Thumbprint = normalizeHex(req.Thumbprint)
	var old *certRecord
	switch {
	case req.CertificateId != 0 && req.Thumbprint != "":
		return errorResponse(http.StatusBadRequest, codeInvalid, "Supply either CertificateId or Thumbprint, not both.")
	case req.CertificateId != 0:
		old = s.world.byID[req.CertificateId]
		if old == nil {
			return errorResponse(http.StatusNotFound, codeNotFound, "Certificate with id "+strconv.Itoa(req.CertificateId)+" was not found.")
		}
	case req.Thumbprint != "":
		if id, ok := s.world.byThumb[req.Thumbprint]; ok {
			old = s.world.byID[id]
		}
		if old == nil {
			return errorResponse(http.StatusNotFound, codeNotFound, "Certificate with thumbprint "+req.Thumbprint+" was not found.")
		}
	default:
		return errorResponse(http.StatusBadRequest, codeInvalid, "CertificateId or Thumbprint is required.")
	}
	if col != nil && !col.members[old.Id] {
		return errorResponse(http.StatusNotFound, codeNotFound, fmt.Sprintf("Certificate %d is not in certificate collection %d.", old.Id, col.Id))
	}
	if old.RequiresTemplate {
		var missing []string
		if strings.TrimSpace(req.Template) == "" {
			missing = append(missing, "Template")
		}
		if strings.TrimSpace(req.CertificateAuthority) == "" {
			missing = append(missing, "CertificateAuthority")
		}
		if len(missing) > 0 {
			return errorResponse(http.StatusBadRequest, codeInvalid, fmt.Sprintf(
				"Certificate %d is not available for one-click renewal; the request must include %s.",
				old.Id, strings.Join(missing, " and ")))
		}
	}

	template := firstNonEmpty(req.Template, old.TemplateName)
	tmpl := s.templates[strings.ToLower(template)]
	rn := Renewal{At: c.now, Identity: c.identity, OldCertificateId: old.Id, ResponseLost: c.lost}
	if !c.lost {
		rn.AnsweredAt = c.now
	}

	disposition, message := strings.ToUpper(old.RenewDisposition), old.DispositionMessage
	if disposition == "" && tmpl != nil {
		disposition, message = strings.ToUpper(tmpl.Disposition), tmpl.DispositionMessage
	}
	if disposition == dispositionDenied || disposition == dispositionFailed {
		if message == "" {
			message = "The certificate authority " + map[string]string{dispositionDenied: "denied", dispositionFailed: "failed to process"}[disposition] +
				" the request for certificate " + strconv.Itoa(old.Id) + "."
		}
		rn.Disposition, rn.Denied = disposition, disposition == dispositionDenied
		s.ledger.Renewals = append(s.ledger.Renewals, rn)
		return jsonResponse(http.StatusOK, wireRenewalResponse{RequestDisposition: disposition, DispositionMessage: message})
	}

	rq := &request{
		id:          s.nextReqID,
		identity:    c.identity,
		submittedAt: c.now,
		stagedAt:    c.now,
		old:         *old,
		template:    template,
		ca:          firstNonEmpty(req.CertificateAuthority, old.CertificateAuthorityName),
		lifetime:    old.NotAfter.Sub(old.NotBefore),
	}
	s.nextReqID++
	if tmpl != nil {
		rq.lifetime = tmpl.Lifetime
	}
	s.requests[rq.id] = rq
	rn.RequestId = rq.id
	rq.renewalLedger = len(s.ledger.Renewals)

	if tmpl != nil && tmpl.RequiresApproval {
		rq.state = requestPending
		rn.Pending, rn.Disposition = true, dispositionPending
		s.ledger.Renewals = append(s.ledger.Renewals, rn)
		return jsonResponse(http.StatusOK, wireRenewalResponse{
			KeyfactorRequestId: rq.id,
			RequestDisposition: dispositionPending,
			DispositionMessage: "The request is awaiting approval.",
		})
	}
	cert := s.issue(rq, c.now)
	rn.NewCertificateId, rn.Disposition = cert.Id, dispositionIssued
	s.ledger.Renewals = append(s.ledger.Renewals, rn)
	tp, serial, issuer := cert.Thumbprint, cert.SerialNumber, cert.IssuerDN
	return jsonResponse(http.StatusOK, wireRenewalResponse{
		KeyfactorId:        cert.Id,
		KeyfactorRequestId: rq.id,
		Thumbprint:         &tp,
		SerialNumber:       &serial,
		IssuerDN:           &issuer,
		RequestDisposition: dispositionIssued,
		DispositionMessage: "The private key was successfully retained.",
	})
}

func firstNonEmpty(a, b string) string {
	if strings.TrimSpace(a) != "" {
		return a
	}
	return b
}

// issue creates the certificate of request rq, valid from now. Callers hold
// s.mu.
func (s *Server) issue(rq *request, now time.Time) *certRecord {
	s.world.maxID++
	tp := s.randomHex(20)
	for s.world.byThumb[tp] != 0 {
		tp = s.randomHex(20)
	}
	notBefore := now.Truncate(time.Second)
	old := rq.old
	rec := &certRecord{Certificate: Certificate{
		Id:                       s.world.maxID,
		Thumbprint:               tp,
		SerialNumber:             s.randomHex(20),
		IssuedDN:                 old.IssuedDN,
		IssuedCN:                 old.IssuedCN,
		IssuerDN:                 firstNonEmpty(old.IssuerDN, defaultIssuerDN),
		ImportDate:               now.Truncate(time.Millisecond),
		NotBefore:                notBefore,
		NotAfter:                 notBefore.Add(rq.lifetime),
		TemplateName:             rq.template,
		CertificateAuthorityName: rq.ca,
		RequiresTemplate:         old.RequiresTemplate,
		RenewDisposition:         old.RenewDisposition,
		DispositionMessage:       old.DispositionMessage,
		CertRequestId:            rq.id,
		RequesterName:            rq.identity,
		Locations:                []Location{},
	}}
	rec.PrincipalId = s.defaultPrincipal(rec.Id)
	s.numberNames(rec)
	s.world.add(rec)
	rq.certID, rq.state = rec.Id, requestIssued
	return rec
}

// Approve issues the certificate of a request that awaits approval, as a CA
// manager would; the deploy jobs waiting for it are scheduled. The private
// key is staged (for the requester) from the moment of issue, and the
// certificate is found by `CertRequestId -eq <requestID>`.
func (s *Server) Approve(requestID int) (certificateID int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.approve(requestID, s.now())
}

func (s *Server) approve(requestID int, now time.Time) (int, error) {
	s.settle(now)
	rq := s.requests[requestID]
	if rq == nil {
		return 0, fmt.Errorf("approve request %d: %w", requestID, errUnknownRequest)
	}
	if rq.state != requestPending {
		return 0, fmt.Errorf("approve request %d: %w (%s)", requestID, errNotPending, rq.state)
	}
	cert := s.issue(rq, now)
	rq.stagedAt = now
	rn := &s.ledger.Renewals[rq.renewalLedger]
	rn.NewCertificateId, rn.Pending, rn.Disposition = cert.Id, false, dispositionIssued
	s.releaseWaiting(requestID, cert.Id, now, "")
	return cert.Id, nil
}

// Deny denies a request that awaits approval, with a comment that GET
// /Workflow/Certificates/{id} shows as DenialComment. The deploy jobs
// waiting for it are cancelled, and a later Deploy by its RequestId is
// refused.
func (s *Server) Deny(requestID int, comment string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deny(requestID, comment, s.now())
}

func (s *Server) deny(requestID int, comment string, now time.Time) error {
	s.settle(now)
	rq := s.requests[requestID]
	if rq == nil {
		return fmt.Errorf("deny request %d: %w", requestID, errUnknownRequest)
	}
	if rq.state != requestPending {
		return fmt.Errorf("deny request %d: %w (%s)", requestID, errNotPending, rq.state)
	}
	rq.state, rq.denialComment = requestDenied, comment
	rn := &s.ledger.Renewals[rq.renewalLedger]
	rn.Pending, rn.Denied, rn.Disposition = false, true, dispositionDenied
	msg := "The certificate request " + strconv.Itoa(requestID) + " was denied"
	if comment != "" {
		msg += ": " + comment
	}
	s.releaseWaiting(requestID, 0, now, msg+".")
	return nil
}

// deployTarget is one store a Deploy call names, in either request shape.
type deployTarget struct {
	storeID   string
	alias     string
	overwrite bool
}

// deploy answers POST /Enrollment/PFX/Deploy: it checks the staging (same
// user, inside the window, not denied), then each store (exists, schedule
// permission for its container, its type's alias rule, entry password),
// and creates a management job per store that passes. Stores that are not
// approved or have no orchestrator pass here; their jobs fail.
func (s *Server) deploy(c *call) response {
	if !hasPermission(c.perms, PermEnrollPFX, nil) {
		return forbidden(PermEnrollPFX)
	}
	var req wireDeployRequest
	if r := decodeBody(c, &req); r != nil {
		return *r
	}
	var targets []deployTarget
	legacy := false
	switch {
	case len(req.Stores) > 0:
		// Stores takes precedence over the obsolete shape.
		for _, st := range req.Stores {
			targets = append(targets, deployTarget{storeKey(st.StoreId), st.Alias, st.Overwrite})
		}
	case len(req.StoreIds) > 0:
		legacy = true
		for _, id := range req.StoreIds {
			t := deployTarget{storeID: storeKey(id)}
			if st := s.stores[t.storeID]; st != nil {
				for _, typ := range req.StoreTypes {
					if typ.StoreTypeId == st.CertStoreType {
						t.alias, t.overwrite = typ.Alias, typ.Overwrite
						break
					}
				}
			}
			targets = append(targets, t)
		}
	default:
		return errorResponse(http.StatusBadRequest, codeInvalid, "Stores is required.")
	}
	if req.CertificateId == 0 && req.RequestId == 0 {
		return errorResponse(http.StatusBadRequest, codeInvalid, "CertificateId or RequestId is required.")
	}

	var rq *request
	subject := ""
	if req.CertificateId != 0 {
		rec := s.world.byID[req.CertificateId]
		if rec == nil {
			return errorResponse(http.StatusNotFound, codeNotFound, "Certificate with id "+strconv.Itoa(req.CertificateId)+" was not found.")
		}
		if rec.CertRequestId != 0 {
			rq = s.requests[rec.CertRequestId]
		}
		if rq != nil && req.RequestId != 0 && rq.id != req.RequestId {
			return errorResponse(http.StatusBadRequest, codeInvalid, fmt.Sprintf(
				"CertificateId %d does not belong to RequestId %d.", req.CertificateId, req.RequestId))
		}
		subject = "certificate " + strconv.Itoa(req.CertificateId)
	} else {
		rq = s.requests[req.RequestId]
		if rq == nil {
			return errorResponse(http.StatusNotFound, codeNotFound, "Certificate request with id "+strconv.Itoa(req.RequestId)+" was not found.")
		}
		subject = "certificate request " + strconv.Itoa(req.RequestId)
	}

	d := Deploy{At: c.now, Identity: c.identity, CertificateId: req.CertificateId, RequestId: req.RequestId, Legacy: legacy}
	for _, t := range targets {
		d.Stores = append(d.Stores, t.storeID)
	}
	if req.JobTime != nil {
		t := req.JobTime.UTC()
		d.JobTime = &t
	}
	if rq != nil {
		d.CertificateId, d.RequestId, d.StagedAt, d.StagedBy = rq.certID, rq.id, rq.stagedAt, rq.identity
	}

	var refusal string
	switch {
	case rq == nil:
		d.Refused = RefusedNotStaged
		refusal = "No staging data was found for " + subject + "; only a certificate enrolled or renewed for deployment can be deployed."
	case rq.state == requestDenied:
		d.Refused = RefusedDenied
		refusal = "The " + subject + " was denied; there is nothing to deploy."
	case c.now.After(rq.stagedAt.Add(s.window)):
		d.Refused = RefusedExpired
		refusal = fmt.Sprintf("The staging data for %s has expired; deploy must be called within %s of the enrollment.", subject, s.window)
	case !strings.EqualFold(rq.identity, c.identity):
		d.Refused = RefusedOtherUser
		refusal = "The staging data for " + subject + " belongs to another user; deploy must be called by the user who made the request."
	}
	if d.Refused != "" {
		s.logf("kfsim: deploy of %s by %s refused: %s", subject, c.identity, d.Refused)
		if s.opts.ExpiredStaging == StagingFailedStores {
			d.Failed = append([]string{}, d.Stores...)
			s.ledger.Deploys = append(s.ledger.Deploys, d)
			return jsonResponse(http.StatusOK, wireDeployResponse{SuccessfulStores: []string{}, FailedStores: d.Failed})
		}
		s.ledger.Deploys = append(s.ledger.Deploys, d)
		return errorResponse(http.StatusBadRequest, codeStaging, refusal)
	}

	resp := wireDeployResponse{SuccessfulStores: []string{}, FailedStores: []string{}}
	d.Reasons = map[string]string{}
	for _, t := range targets {
		st := s.stores[t.storeID]
		reason := ""
		if st == nil {
			reason = "store not found"
		} else {
			reason = s.storeRefusal(st, t, req.Password, c.perms)
		}
		if reason != "" {
			resp.FailedStores = append(resp.FailedStores, t.storeID)
			d.Reasons[t.storeID] = reason
			continue
		}
		s.newJob(c.now, st.Id, rq.certID, rq.id, t.alias, t.overwrite, d.JobTime)
		resp.SuccessfulStores = append(resp.SuccessfulStores, t.storeID)
	}
	d.Successful = append([]string{}, resp.SuccessfulStores...)
	d.Failed = append([]string{}, resp.FailedStores...)
	s.ledger.Deploys = append(s.ledger.Deploys, d)
	return jsonResponse(http.StatusOK, resp)
}

// storeRefusal says why Deploy fails one existing store, "" if it does not:
// schedule permission for the store's container, the store type's alias
// rule, and the entry password a store or its type needs.
func (s *Server) storeRefusal(st *Store, t deployTarget, password string, perms []string) string {
	if !hasPermission(perms, PermStoresSchedule, containerPtr(st)) {
		reason := "permission " + PermStoresSchedule + " missing"
		if st.ContainerId != 0 {
			reason += " for container " + strconv.Itoa(st.ContainerId)
		}
		return reason
	}
	typ := s.storeTypes[st.CertStoreType]
	if typ != nil {
		switch {
		case typ.CustomAliasAllowed == AliasRequired && strings.TrimSpace(t.alias) == "":
			return "store type " + typ.ShortName + " requires an alias"
		case typ.CustomAliasAllowed == AliasForbidden && t.alias != "":
			return "store type " + typ.ShortName + " does not allow a custom alias"
		}
	}
	if password == "" {
		if st.RequiresEntryPassword {
			return "store requires an entry password"
		}
		if typ != nil && typ.EntryPasswordRequired {
			return "store type " + typ.ShortName + " requires an entry password"
		}
	}
	return ""
}
