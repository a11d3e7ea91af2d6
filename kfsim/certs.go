package kfsim

import (
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Certificate states on the wire [REC "Active (1)"; OAS enum 0–8]. Only 1 was
// seen; 2 for revoked is the simulator's reading (UNCONFIRMED).
const (
	certStateActive  = 1
	certStateRevoked = 2
)

// collectionParam reads collectionId: the collection whose scoped read
// permission a certificate read or Renew may rely on [DOC CertificatesGet,
// EnrollmentPOSTRenew]; nil when absent.
func (s *Server) collectionParam(c *call) (*collection, *response) {
	_, v, ok := param(c, "collectionId")
	if !ok || v == "" {
		return nil, nil
	}
	id, err := strconv.Atoi(v)
	if err != nil {
		r := errorResponse(http.StatusBadRequest, codeInvalid, "The value '"+v+"' is not valid for collectionId: want an integer.")
		return nil, &r
	}
	col := s.collections[id]
	if col == nil {
		r := errorResponse(http.StatusNotFound, codeNotFound, "Certificate collection with id "+v+" was not found.")
		return nil, &r
	}
	return col, nil
}

// canReadCertificates checks certificate read permission: global, or scoped
// to the collection the request names.
func canReadCertificates(perms []string, col *collection) bool {
	if hasPermission(perms, PermCertificatesRead, nil) {
		return true
	}
	if col == nil {
		return false
	}
	id := col.Id
	return hasPermission(perms, PermCertificatesRead, &id)
}

// readCertificatesForbidden is the 403 of a certificate read.
func readCertificatesForbidden(col *collection) response {
	if col == nil {
		return forbidden(PermCertificatesRead)
	}
	return forbidden(PermCertificatesRead + " (or " + scoped(PermCertificatesRead, col.Id) + ")")
}

// getCertificate answers GET /Certificates/{id}.
func (s *Server) getCertificate(c *call) response {
	col, errResp := s.collectionParam(c)
	if errResp != nil {
		return *errResp
	}
	if !canReadCertificates(c.perms, col) {
		return readCertificatesForbidden(col)
	}
	id, err := strconv.Atoi(c.param)
	if err != nil {
		return errorResponse(http.StatusBadRequest, codeInvalid, "The value '"+c.param+"' is not a valid certificate id.")
	}
	withLocations, errResp := boolParam(c, "includeLocations")
	if errResp != nil {
		return *errResp
	}
	rec := s.world.byID[id]
	if rec == nil || (col != nil && !col.members[id]) {
		return errorResponse(http.StatusNotFound, codeNotFound, "Certificate with id "+strconv.Itoa(id)+" was not found.")
	}
	return jsonResponse(http.StatusOK, s.certificateModel(rec, withLocations))
}

// listCertificates answers GET /Certificates: the query, includeExpired and
// includeRevoked (both false by default, so expired and revoked
// certificates are left out [DOC Core-OnPrem/Current CertificatesGet]),
// collectionId, includeLocations, paging and sorting. Indexed clauses (Id,
// Thumbprint, CertRequestId, IssuedDN, IssuedCN) are answered from the
// indexes; other queries scan in id order.
func (s *Server) listCertificates(c *call) response {
	col, errResp := s.collectionParam(c)
	if errResp != nil {
		return *errResp
	}
	if !canReadCertificates(c.perms, col) {
		return readCertificatesForbidden(col)
	}
	lq, errResp := s.listQuery(c, certificateFields, "Id", "pq")
	if errResp != nil {
		return *errResp
	}
	withLocations, errResp := boolParam(c, "includeLocations", "pq.includeLocations")
	if errResp != nil {
		return *errResp
	}
	includeExpired, errResp := boolParam(c, "pq.includeExpired", "includeExpired")
	if errResp != nil {
		return *errResp
	}
	includeRevoked, errResp := boolParam(c, "pq.includeRevoked", "includeRevoked")
	if errResp != nil {
		return *errResp
	}

	ids, indexed := lq.q.candidates(s.world.lookup)
	switch {
	case indexed:
		ids = sortedIDs(ids)
	case col != nil:
		ids = sortedIDs(col.CertificateIds)
	default:
		ids = s.world.order
	}
	var found []*certRecord
	for _, id := range ids {
		rec := s.world.byID[id]
		switch {
		case rec == nil:
			continue
		case col != nil && !col.members[id]:
			continue
		case !includeExpired && rec.NotAfter.Before(c.now):
			continue
		case !includeRevoked && rec.Revoked:
			continue
		}
		if lq.q.matches(func(f string) fieldValue { return certificateValue(rec, f) }) {
			found = append(found, rec)
		}
	}
	sortPage(found, lq, certificateValue, "Id")
	start, end := pageOf(len(found), lq.page, lq.limit)
	out := make([]wireCertificate, 0, end-start)
	for _, rec := range found[start:end] {
		out = append(out, s.certificateModel(rec, withLocations))
	}
	return listResponse(out, len(found))
}

func certificateValue(c *certRecord, f string) fieldValue {
	switch f {
	case "Id":
		return fieldValue{num: int64(c.Id)}
	case "Thumbprint":
		return fieldValue{str: c.Thumbprint}
	case "SerialNumber":
		return fieldValue{str: c.SerialNumber}
	case "IssuedDN":
		return fieldValue{str: c.IssuedDN}
	case "IssuedCN":
		return fieldValue{str: c.IssuedCN}
	case "IssuerDN":
		return fieldValue{str: c.IssuerDN}
	case "TemplateName":
		return fieldValue{str: c.TemplateName}
	case "CertificateAuthorityName":
		return fieldValue{str: c.CertificateAuthorityName}
	case "RequesterName":
		return fieldValue{str: c.RequesterName}
	case "CertRequestId":
		if c.CertRequestId == 0 {
			return fieldValue{null: true}
		}
		return fieldValue{num: int64(c.CertRequestId)}
	case "PrincipalId":
		if c.PrincipalId == nil {
			return fieldValue{null: true}
		}
		return fieldValue{num: int64(*c.PrincipalId)}
	case "CertState":
		return fieldValue{num: int64(certState(c))}
	case "ImportDate":
		return fieldValue{tm: c.ImportDate}
	case "NotBefore":
		return fieldValue{tm: c.NotBefore}
	case "NotAfter":
		return fieldValue{tm: c.NotAfter}
	}
	return fieldValue{null: true}
}

func certState(c *certRecord) int {
	if c.Revoked {
		return certStateRevoked
	}
	return certStateActive
}

// certificateModel renders a certificate as GET /Certificates does. Without
// locations, LocationsCount and Locations are empty arrays, not null [DOC
// CertificatesGet: "the fields will still appear … but contain no data"].
func (s *Server) certificateModel(c *certRecord, withLocations bool) wireCertificate {
	m := wireCertificate{
		Id:                       c.Id,
		Thumbprint:               c.Thumbprint,
		SerialNumber:             c.SerialNumber,
		IssuedDN:                 c.IssuedDN,
		IssuedCN:                 c.IssuedCN,
		ImportDate:               c.ImportDate,
		NotBefore:                c.NotBefore,
		NotAfter:                 c.NotAfter,
		IssuerDN:                 c.IssuerDN,
		TemplateId:               c.templateID,
		CertState:                certState(c),
		KeySizeInBits:            2048,
		KeyType:                  1,
		KeyAlgorithm:             "1.2.840.113549.1.1.1",
		RequesterId:              c.requesterID,
		KeyUsage:                 160,
		SigningAlgorithm:         "SHA-256withRSA",
		CertStateString:          "Active (1)",
		KeyTypeString:            "RSA",
		CertificateAuthorityId:   c.caID,
		CertificateAuthorityName: c.CertificateAuthorityName,
		TemplateName:             c.TemplateName,
		HasPrivateKey:            true,
		RequesterName:            c.RequesterName,
		ExtendedKeyUsages:        []wireExtendedKeyUsage{{Id: 1, Oid: "1.3.6.1.5.5.7.3.1", DisplayName: "Server Authentication"}},
		SubjectAltNameElements:   []wireSANElement{},
		CRLDistributionPoints:    []wireCRLDistributionPoint{},
		LocationsCount:           []wireLocationCount{},
		SSLLocations:             []wireSSLLocation{},
		Locations:                []Location{},
		Metadata:                 map[string]string{},
		CARecordId:               c.SerialNumber,
		DetailedKeyUsage:         wireKeyUsage{DigitalSignature: true, KeyEncipherment: true, HexCode: "a0"},
		EnrollmentPatternId:      1,
		Lifespan:                 int(c.NotAfter.Sub(c.NotBefore).Round(24*time.Hour) / (24 * time.Hour)),
	}
	if c.PrincipalId != nil {
		v := *c.PrincipalId
		m.PrincipalId = &v
		name := "KFSIM\\principal-" + strconv.Itoa(v)
		m.PrincipalName = &name
	}
	if c.CertRequestId != 0 {
		v := c.CertRequestId
		m.CertRequestId = &v
	}
	if c.Revoked {
		m.CertStateString = "Revoked (2)"
		at := c.ImportDate
		reason := 0
		m.RevocationEffDate, m.RevocationReason = &at, &reason
	}
	if withLocations {
		m.Locations = slices.Clone(c.Locations)
		counts := map[string]int{}
		var order []string
		for _, l := range c.Locations {
			name := strconv.Itoa(l.StoreType)
			if t := s.storeTypes[l.StoreType]; t != nil {
				name = t.ShortName
			}
			if counts[name] == 0 {
				order = append(order, name)
			}
			counts[name]++
		}
		for _, name := range order {
			m.LocationsCount = append(m.LocationsCount, wireLocationCount{Type: name, Count: counts[name]})
		}
	}
	return m
}
