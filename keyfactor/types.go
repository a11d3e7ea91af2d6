package keyfactor

import "time"

// Wire types of the Keyfactor Command REST API, shared by the client and by
// the simulator in kfsim. Field names follow what a real server emits
// (PascalCase, `Storepath` on stores but `StorePath` in locations); see
// shared/keyfactor-api.md for the source of each field.

// RenewalRequest is the body of POST /Enrollment/Renew. Send either
// CertificateId or Thumbprint, never both.
type RenewalRequest struct {
	CertificateId        int    `json:"CertificateId,omitempty"`
	Thumbprint           string `json:"Thumbprint,omitempty"`
	CertificateAuthority string `json:"CertificateAuthority,omitempty"`
	Template             string `json:"Template,omitempty"`
	// Timestamp is the current time in ISO 8601 UTC; the docs mark it required.
	Timestamp time.Time `json:"Timestamp"`
}

// RenewalResponse is the answer to POST /Enrollment/Renew. KeyfactorId is
// the id of the new certificate; it is 0 while the request awaits approval,
// and then only KeyfactorRequestId identifies it.
type RenewalResponse struct {
	KeyfactorId        int     `json:"KeyfactorId"`
	KeyfactorRequestId int     `json:"KeyfactorRequestId"`
	Thumbprint         string  `json:"Thumbprint"`
	SerialNumber       string  `json:"SerialNumber"`
	IssuerDN           *string `json:"IssuerDN"`
	RequestDisposition string  `json:"RequestDisposition"`
	DispositionMessage string  `json:"DispositionMessage"`
	Password           *string `json:"Password"`
}

// DeployStore is one item of Stores in POST /Enrollment/PFX/Deploy (9.4+).
type DeployStore struct {
	StoreId    string         `json:"StoreId"`
	Alias      string         `json:"Alias,omitempty"`
	Overwrite  bool           `json:"Overwrite"`
	Properties map[string]any `json:"Properties,omitempty"`
}

// LegacyStoreType is one item of the obsolete StoreTypes array (before 9.4):
// alias and overwrite are given per store type, not per store.
type LegacyStoreType struct {
	StoreTypeId int              `json:"StoreTypeId"`
	Alias       string           `json:"Alias,omitempty"`
	Overwrite   bool             `json:"Overwrite"`
	Properties  []map[string]any `json:"Properties,omitempty"`
}

// DeployRequest is the body of POST /Enrollment/PFX/Deploy. Stores is the
// current shape; StoreIds and StoreTypes are the obsolete one. Send either
// CertificateId or RequestId.
type DeployRequest struct {
	Stores        []DeployStore     `json:"Stores,omitempty"`
	StoreIds      []string          `json:"StoreIds,omitempty"`
	StoreTypes    []LegacyStoreType `json:"StoreTypes,omitempty"`
	Password      string            `json:"Password"`
	CertificateId int               `json:"CertificateId,omitempty"`
	RequestId     int               `json:"RequestId,omitempty"`
	JobTime       *time.Time        `json:"JobTime,omitempty"`
}

// DeployResponse is the answer to POST /Enrollment/PFX/Deploy. A store in
// SuccessfulStores has a management job; it is not yet installed.
type DeployResponse struct {
	SuccessfulStores []string `json:"SuccessfulStores"`
	FailedStores     []string `json:"FailedStores"`
}

// Location is one entry of Certificate.Locations: a store that inventory
// found holding the certificate.
type Location struct {
	StoreMachine string `json:"StoreMachine"`
	StorePath    string `json:"StorePath"`
	StoreType    int    `json:"StoreType"`
	Alias        string `json:"Alias"`
	ChainLevel   int    `json:"ChainLevel"`
	CertStoreId  string `json:"CertStoreId"`
}

// Certificate is the model of GET /Certificates/{id} and GET /Certificates.
type Certificate struct {
	Id                       int        `json:"Id"`
	Thumbprint               string     `json:"Thumbprint"`
	SerialNumber             string     `json:"SerialNumber"`
	IssuedDN                 string     `json:"IssuedDN"`
	IssuedCN                 string     `json:"IssuedCN"`
	IssuerDN                 string     `json:"IssuerDN"`
	ImportDate               time.Time  `json:"ImportDate"`
	NotBefore                time.Time  `json:"NotBefore"`
	NotAfter                 time.Time  `json:"NotAfter"`
	CertState                int        `json:"CertState"`
	CertStateString          string     `json:"CertStateString,omitempty"`
	TemplateName             string     `json:"TemplateName"`
	CertificateAuthorityName string     `json:"CertificateAuthorityName"`
	CertRequestId            *int       `json:"CertRequestId"`
	RequesterName            string     `json:"RequesterName,omitempty"`
	PrincipalId              *string    `json:"PrincipalId"`
	Locations                []Location `json:"Locations"`
}

// CertificateStore is the model of GET /CertificateStores and
// GET /CertificateStores/{id}. Properties is a JSON-encoded string, as a real
// server sends it.
type CertificateStore struct {
	Id            string `json:"Id"`
	ContainerId   *int   `json:"ContainerId"`
	ContainerName string `json:"ContainerName,omitempty"`
	DisplayName   string `json:"DisplayName,omitempty"`
	ClientMachine string `json:"ClientMachine"`
	Storepath     string `json:"Storepath"`
	CertStoreType int    `json:"CertStoreType"`
	Approved      bool   `json:"Approved"`
	Properties    string `json:"Properties"`
}

// MyPermissions is the answer to GET /Security/My/Permissions.
type MyPermissions struct {
	Permissions []string `json:"Permissions"`
}

// ErrorBody is the error shape Command sends with a failing status:
// {"ErrorCode": "0xA0110008", "Message": "…"}.
type ErrorBody struct {
	ErrorCode        string            `json:"ErrorCode"`
	Message          string            `json:"Message"`
	FailedOperations []FailedOperation `json:"FailedOperations,omitempty"`
}

// FailedOperation carries one reason inside an ErrorBody.
type FailedOperation struct {
	Reason string `json:"Reason"`
}
