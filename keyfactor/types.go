package keyfactor

import (
	"encoding/json"
	"time"
)

// Wire types of the Keyfactor Command REST API. A type Command sends keeps
// only the fields runner uses and is decoded by hand in decode.go: a field
// runner does not read is never looked at, so it can never fail a decode,
// and the fields runner depends on are checked there. Field names follow
// what a real server emits (PascalCase, "Storepath" on stores but
// "StorePath" in locations); shared/keyfactor-api.md names the source of
// each field.

// wireTimeLayout is how Timestamp and JobTime go on the wire: the docs of
// POST /Enrollment/Renew and POST /Enrollment/PFX/Deploy ask for ISO 8601
// UTC "YYYY-MM-DDTHH:mm:ss.000Z".
const wireTimeLayout = "2006-01-02T15:04:05.000Z"

// wireTime renders t in UTC as wireTimeLayout.
func wireTime(t time.Time) string { return t.UTC().Format(wireTimeLayout) }

// RenewalRequest is the body of POST /Enrollment/Renew. Send either
// CertificateId or Thumbprint, never both.
type RenewalRequest struct {
	CertificateId        int    `json:"CertificateId,omitempty"`
	Thumbprint           string `json:"Thumbprint,omitempty"`
	CertificateAuthority string `json:"CertificateAuthority,omitempty"`
	Template             string `json:"Template,omitempty"`
	// Timestamp is the time of the request; the docs mark it required. Renew
	// sets a zero Timestamp to now.
	Timestamp time.Time `json:"Timestamp"`
}

// MarshalJSON writes Timestamp as YYYY-MM-DDTHH:mm:ss.000Z in UTC.
func (r RenewalRequest) MarshalJSON() ([]byte, error) {
	type plain RenewalRequest
	return json.Marshal(struct {
		plain
		Timestamp string `json:"Timestamp"`
	}{plain(r), wireTime(r.Timestamp)})
}

// RenewalResponse is the answer to POST /Enrollment/Renew. KeyfactorId is
// the id of the new certificate; it is 0 while the request awaits approval,
// and then only KeyfactorRequestId identifies it. Outcome says which case an
// answer is.
type RenewalResponse struct {
	KeyfactorId        int
	KeyfactorRequestId int
	Thumbprint         string // upper-case hex
	SerialNumber       string
	RequestDisposition string // e.g. "ISSUED"; see Outcome
	DispositionMessage string
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
//
// Password is always sent, as "" when the stores take no entry password:
// the OpenAPI schema lists it under "required" with type string (so a
// missing field or null fails a schema check, and "" is the one value that
// passes and means "none"), while the endpoint's documentation says it is
// needed only for store types with an entry password, such as PEM.
type DeployRequest struct {
	Stores        []DeployStore     `json:"Stores,omitempty"`
	StoreIds      []string          `json:"StoreIds,omitempty"`
	StoreTypes    []LegacyStoreType `json:"StoreTypes,omitempty"`
	Password      string            `json:"Password"`
	CertificateId int               `json:"CertificateId,omitempty"`
	RequestId     int               `json:"RequestId,omitempty"`
	// JobTime schedules the management jobs; nil runs them at once.
	JobTime *time.Time `json:"JobTime,omitempty"`
}

// MarshalJSON writes JobTime as YYYY-MM-DDTHH:mm:ss.000Z in UTC.
func (r DeployRequest) MarshalJSON() ([]byte, error) {
	type plain DeployRequest
	jt := ""
	if r.JobTime != nil {
		jt = wireTime(*r.JobTime)
	}
	return json.Marshal(struct {
		plain
		JobTime string `json:"JobTime,omitempty"`
	}{plain(r), jt})
}

// DeployResponse is the answer to POST /Enrollment/PFX/Deploy. A store in
// SuccessfulStores has a management job; it is not yet installed. Store ids
// are normalised (lower case, braces removed) so that callers can compare
// them with the stores they asked for; a server that names a store nobody
// asked for, or one store in both lists, is the caller's to judge.
type DeployResponse struct {
	SuccessfulStores []string
	FailedStores     []string
}

// Location is one entry of Certificate.Locations: a store that inventory
// found holding the certificate.
type Location struct {
	CertStoreId  string // lower case, braces removed
	Alias        string
	StorePath    string
	StoreMachine string
	StoreType    int
}

// Certificate is a record of GET /Certificates/{id} and GET /Certificates,
// with only the fields runner uses.
type Certificate struct {
	Id            int
	Thumbprint    string // upper-case hex
	SerialNumber  string
	IssuedDN      string
	IssuedCN      string
	ImportDate    time.Time // zero when Command sent none
	NotBefore     time.Time
	NotAfter      time.Time
	CertState     int
	CertRequestId int // 0 when null
	RequesterName string
	TemplateName  string
	Locations     []Location // filled only when asked for with includeLocations
}

// CertificateStore is a record of GET /CertificateStores and
// GET /CertificateStores/{id}, with only the fields runner uses.
type CertificateStore struct {
	Id            string // lower case, braces removed
	ContainerId   *int   // nil for a store outside any container
	ContainerName string
	DisplayName   string
	ClientMachine string
	Storepath     string
	CertStoreType int
	// Approved is false for a discovered store nobody approved; AgentAssigned
	// is false for a store without an orchestrator. Jobs for either fail.
	Approved      bool
	AgentAssigned bool
}

// Values of CertificateStoreType.CustomAliasAllowed.
const (
	AliasForbidden = "Forbidden"
	AliasOptional  = "Optional"
	AliasRequired  = "Required"
)

// CertificateStoreType is a record of GET /CertificateStoreTypes.
type CertificateStoreType struct {
	StoreType int
	ShortName string
	Name      string
	// EntryPasswordSupported is PasswordOptions.EntrySupported: the store
	// type takes an entry password (the Deploy Password).
	EntryPasswordSupported bool
	// StorePasswordRequired is PasswordOptions.StoreRequired: the store
	// itself needs a password, set on the store, not sent with Deploy.
	StorePasswordRequired bool
	// CustomAliasAllowed is AliasForbidden, AliasOptional or AliasRequired
	// (Command 25 sends the word, the v10 OpenAPI file the number 0, 1, 2),
	// or "" when Command sent something else.
	CustomAliasAllowed string
}

// CertificateRequest is the answer to GET /Workflow/Certificates/{id}: a
// certificate request that awaits (or awaited) approval at the CA.
type CertificateRequest struct {
	Id             int
	State          int    // the numbers' names are not published; see Status
	StateString    string // e.g. "Pending", "Denied", "External Validation"
	DenialComment  string
	SubmissionDate time.Time
}

// JobHistory is a record of GET /OrchestratorJobs/JobHistory: one run of
// an orchestrator job.
type JobHistory struct {
	JobHistoryId   int64
	JobId          string // lower case
	JobType        string // e.g. "Management", "Inventory"
	Message        string
	StorePath      string
	ClientMachine  string
	OperationStart time.Time
	OperationEnd   time.Time
	Result         int // see Failed and Succeeded
	Status         int
}
