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

	"runner/keyfactor"
)

// Request dispositions in RenewalResponse.
const (
	dispositionIssued  = "ISSUED"
	dispositionPending = "EXTERNAL VALIDATION"
)

// Reasons a Deploy call is refused as a whole, as recorded in Deploy.Refused.
const (
	RefusedNotStaged = "not staged"
	RefusedExpired   = "expired"
	RefusedOtherUser = "other user"
)

// Errors of Approve.
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
// and stages its private key for the caller for the window.
func (s *Server) renew(c *call) response {
	for _, p := range []string{keyfactor.PermCertificatesRead, keyfactor.PermEnrollPFX} {
		if !keyfactor.HasPermission(c.perms, p, nil) {
			return forbidden(p)
		}
	}
	var req keyfactor.RenewalRequest
	if r := decodeBody(c, &req); r != nil {
		return *r
	}
	req.Thumbprint = normalizeHex(req.Thumbprint)
	var old *certRecord
	switch {
	case req.CertificateId != 0 && req.Thumbprint != "":
		return errorResponse(http.StatusBadRequest, codeInvalid, "Supply either CertificateId or Thumbprint, not both.")
	case req.CertificateId != 0:
		old = s.certs[req.CertificateId]
		if old == nil {
			return errorResponse(http.StatusNotFound, codeNotFound, "Certificate with id "+strconv.Itoa(req.CertificateId)+" was not found.")
		}
	case req.Thumbprint != "":
		if id, ok := s.thumbs[req.Thumbprint]; ok {
			old = s.certs[id]
		}
		if old == nil {
			return errorResponse(http.StatusNotFound, codeNotFound, "Certificate with thumbprint "+req.Thumbprint+" was not found.")
		}
	default:
		return errorResponse(http.StatusBadRequest, codeInvalid, "CertificateId or Thumbprint is required.")
	}
	if old.requiresTemplate {
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
				old.cert.Id, strings.Join(missing, " and ")))
		}
	}

	rq := &request{
		id:       s.nextReqID,
		identity: c.identity,
		stagedAt: c.now,
		old:      copyCertificate(old.cert, false),
		template: firstNonEmpty(req.Template, old.cert.TemplateName),
		ca:       firstNonEmpty(req.CertificateAuthority, old.cert.CertificateAuthorityName),
		lifetime: old.cert.NotAfter.Sub(old.cert.NotBefore),
	}
	s.nextReqID++
	tmpl := s.templates[strings.ToLower(rq.template)]
	if tmpl != nil {
		rq.lifetime = tmpl.Lifetime
	}
	s.requests[rq.id] = rq
	rn := Renewal{At: c.now, Identity: c.identity, OldCertificateId: old.cert.Id, RequestId: rq.id, ResponseLost: c.lost}

	if tmpl != nil && tmpl.RequiresApproval {
		rq.pending = true
		rn.Pending = true
		rq.renewalLedger = len(s.ledger.Renewals)
		s.ledger.Renewals = append(s.ledger.Renewals, rn)
		return jsonResponse(http.StatusOK, keyfactor.RenewalResponse{
			KeyfactorRequestId: rq.id,
			RequestDisposition: dispositionPending,
			DispositionMessage: "The request is awaiting approval.",
		})
	}
	cert := s.issue(rq, c.now)
	rn.NewCertificateId = cert.Id
	rq.renewalLedger = len(s.ledger.Renewals)
	s.ledger.Renewals = append(s.ledger.Renewals, rn)
	issuer := cert.IssuerDN
	return jsonResponse(http.StatusOK, keyfactor.RenewalResponse{
		KeyfactorId:        cert.Id,
		KeyfactorRequestId: rq.id,
		Thumbprint:         cert.Thumbprint,
		SerialNumber:       cert.SerialNumber,
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
func (s *Server) issue(rq *request, now time.Time) *keyfactor.Certificate {
	s.maxCertID++
	id := s.maxCertID
	tp := s.randomHex(20)
	for s.thumbs[tp] != 0 {
		tp = s.randomHex(20)
	}
	reqID := rq.id
	notBefore := now.Truncate(time.Second)
	old := rq.old
	rec := &certRecord{
		requiresTemplate: s.certs[old.Id] != nil && s.certs[old.Id].requiresTemplate,
		cert: keyfactor.Certificate{
			Id:                       id,
			Thumbprint:               tp,
			SerialNumber:             s.randomHex(20),
			IssuedDN:                 old.IssuedDN,
			IssuedCN:                 old.IssuedCN,
			IssuerDN:                 firstNonEmpty(old.IssuerDN, defaultIssuerDN),
			ImportDate:               now.Truncate(time.Millisecond),
			NotBefore:                notBefore,
			NotAfter:                 notBefore.Add(rq.lifetime),
			CertState:                1,
			CertStateString:          "Active (1)",
			TemplateName:             rq.template,
			CertificateAuthorityName: rq.ca,
			CertRequestId:            &reqID,
			RequesterName:            rq.identity,
			Locations:                []keyfactor.Location{},
		},
	}
	s.certs[id] = rec
	s.thumbs[tp] = id
	rq.certID, rq.pending = id, false
	return &rec.cert
}

// Approve issues the certificate of a request that awaits approval, as a CA
// manager would; the deploy jobs waiting for it are scheduled. The private
// key is staged (for the requester) from the moment of issue.
func (s *Server) Approve(requestID int) (certificateID int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.settle(now)
	rq := s.requests[requestID]
	if rq == nil {
		return 0, fmt.Errorf("approve request %d: %w", requestID, errUnknownRequest)
	}
	if !rq.pending {
		return 0, fmt.Errorf("approve request %d: %w (certificate %d)", requestID, errNotPending, rq.certID)
	}
	cert := s.issue(rq, now)
	rq.stagedAt = now
	rn := &s.ledger.Renewals[rq.renewalLedger]
	rn.NewCertificateId, rn.Pending = cert.Id, false
	for _, j := range s.jobs {
		if j.RequestId == requestID && j.State == JobAwaitingApproval {
			j.CertificateId = cert.Id
			s.schedule(j, now)
		}
	}
	return cert.Id, nil
}

// deployTarget is one store a Deploy call names, in either request shape.
type deployTarget struct {
	storeID   string
	alias     string
	overwrite bool
}

// deploy answers POST /Enrollment/PFX/Deploy: it checks the staging (same
// user, inside the window), then each store (exists, schedule permission for
// its container, entry password), and creates a management job per store
// that passes.
func (s *Server) deploy(c *call) response {
	if !keyfactor.HasPermission(c.perms, keyfactor.PermEnrollPFX, nil) {
		return forbidden(keyfactor.PermEnrollPFX)
	}
	var req keyfactor.DeployRequest
	if r := decodeBody(c, &req); r != nil {
		return *r
	}
	var targets []deployTarget
	legacy := false
	switch {
	case len(req.Stores) > 0:
		// Stores takes precedence over the obsolete shape.
		for _, st := range req.Stores {
			targets = append(targets, deployTarget{strings.ToLower(strings.TrimSpace(st.StoreId)), st.Alias, st.Overwrite})
		}
	case len(req.StoreIds) > 0:
		legacy = true
		for _, id := range req.StoreIds {
			t := deployTarget{storeID: strings.ToLower(strings.TrimSpace(id))}
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
		rec := s.certs[req.CertificateId]
		if rec == nil {
			return errorResponse(http.StatusNotFound, codeNotFound, "Certificate with id "+strconv.Itoa(req.CertificateId)+" was not found.")
		}
		if rec.cert.CertRequestId != nil {
			rq = s.requests[*rec.cert.CertRequestId]
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
			return jsonResponse(http.StatusOK, keyfactor.DeployResponse{SuccessfulStores: []string{}, FailedStores: d.Failed})
		}
		s.ledger.Deploys = append(s.ledger.Deploys, d)
		return errorResponse(http.StatusBadRequest, codeStaging, refusal)
	}

	resp := keyfactor.DeployResponse{SuccessfulStores: []string{}, FailedStores: []string{}}
	d.Reasons = map[string]string{}
	for _, t := range targets {
		st := s.stores[t.storeID]
		var reason string
		switch {
		case st == nil:
			reason = "store not found"
		case !keyfactor.HasPermission(c.perms, keyfactor.PermStoresSchedule, containerPtr(st)):
			reason = "permission " + keyfactor.PermStoresSchedule + " missing"
			if st.ContainerId != 0 {
				reason += " for container " + strconv.Itoa(st.ContainerId)
			}
		case st.RequiresEntryPassword && req.Password == "":
			reason = "store requires an entry password"
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
