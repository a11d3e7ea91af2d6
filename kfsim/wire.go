package kfsim

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Wire types of the simulated Command, written from the public sources and
// owned by this package alone, so a mistake in the client cannot be mirrored
// here. Responses carry the fields a real server sends, not only those runner
// reads. Sources, by tag (see the package README section):
//   - REC: recorded traffic of Command 25.4.1 (keyfactor-pub/terraform-provider-keyfactor,
//     keyfactor/testdata/cassettes/certificate_deploy_resource.yaml);
//   - SYN: the same folder's hand-written cassettes (maintainers' assumptions);
//   - OAS: Keyfactor/keyfactor-java-client-sdk api/openapi.yaml (Command ~v10);
//   - DOC: Keyfactor's documentation pages named in each comment.
//
// JSON keys are Go field names (PascalCase), as the server sends them; times
// are UTC, so encoding/json writes them with "Z" and only the fraction they
// have (ImportDate carries milliseconds, validity whole seconds) [REC].

// wireRenewalRequest is the body of POST /Enrollment/Renew [OAS
// Models.Enrollment.RenewalRequest]. Keys bind without regard to case, as
// ASP.NET binds them.
type wireRenewalRequest struct {
	CertificateId        int
	Thumbprint           string
	CertificateAuthority string
	Template             string
	Timestamp            *wireTime
}

// wireRenewalResponse is the answer to POST /Enrollment/Renew [OAS
// Models.Enrollment.RenewalResponse]. There is no CertificateId: KeyfactorId
// is the new certificate.
type wireRenewalResponse struct {
	KeyfactorId        int
	KeyfactorRequestId int
	Thumbprint         *string
	SerialNumber       *string
	IssuerDN           *string
	RequestDisposition string
	DispositionMessage string
	Password           *string
}

// wireDeployStore is one item of Stores in POST /Enrollment/PFX/Deploy
// (9.4 and later) [OAS Models.Enrollment.EnrollmentManagementStoreRequest].
type wireDeployStore struct {
	StoreId    string
	Alias      string
	Overwrite  bool
	Properties map[string]any
}

// wireLegacyStoreType is one item of the obsolete StoreTypes array: alias
// and overwrite per store type [OAS; Keyfactor/keyfactor-go-client v3
// DeployPFXCertificate].
type wireLegacyStoreType struct {
	StoreTypeId int
	Alias       string
	Overwrite   bool
	Properties  []map[string]any
}

// wireDeployRequest is the body of POST /Enrollment/PFX/Deploy, in either
// shape.
type wireDeployRequest struct {
	Stores        []wireDeployStore
	StoreIds      []string
	StoreTypes    []wireLegacyStoreType
	Password      string
	CertificateId int
	RequestId     int
	JobTime       *wireTime
}

// wireDeployResponse is the answer to POST /Enrollment/PFX/Deploy [OAS].
type wireDeployResponse struct {
	SuccessfulStores []string
	FailedStores     []string
}

// wireExtendedKeyUsage, wireSANElement and wireCRLDistributionPoint are the
// items of the certificate's arrays [OAS Models.CertificateRetrievalResponse.*].
type wireExtendedKeyUsage struct {
	Id          int
	Oid         string
	DisplayName string
}

type wireSANElement struct {
	Id        int
	Value     string
	Type      int
	ValueHash *string
}

type wireCRLDistributionPoint struct {
	Id      int
	Url     string
	UrlHash *string
}

// wireLocationCount is one item of LocationsCount [OAS LocationCountModel].
type wireLocationCount struct {
	Type  string
	Count int
}

// wireSSLLocation is one item of SSLLocations [OAS
// CertificateStoreLocationDetailModel]; the simulator has no SSL scans, so
// the array is always empty.
type wireSSLLocation struct {
	StorePath   string
	AgentPool   string
	IPAddress   string
	Port        int
	NetworkName string
}

// wireKeyUsage is DetailedKeyUsage [OAS; REC].
type wireKeyUsage struct {
	CrlSign, DataEncipherment, DecipherOnly, DigitalSignature, EncipherOnly bool
	KeyAgreement, KeyCertSign, KeyEncipherment, NonRepudiation              bool
	HexCode                                                                 string
}

// wireCertificate is the model of GET /Certificates/{id} and GET
// /Certificates, field for field as Command 25.4.1 answered [REC id 5],
// with types from [OAS Models.CertificateRetrievalResponse]. PrincipalId is
// a nullable integer (OAS); Keyfactor's Go client v3 declares it a string
// and cannot decode a number, which is why seeded worlds leave it null.
type wireCertificate struct {
	IsCACertificate          bool
	PathLengthConstraint     *int
	Id                       int
	Thumbprint               string
	SerialNumber             string
	IssuedDN                 string
	IssuedCN                 string
	ImportDate               time.Time
	NotBefore                time.Time
	NotAfter                 time.Time
	IssuerDN                 string
	PrincipalId              *int
	OwnerRoleId              *int
	OwnerRoleName            *string
	TemplateId               int
	CertState                int
	KeySizeInBits            int
	KeyType                  int
	KeyAlgorithm             string
	RequesterId              int
	IssuedOU                 *string
	IssuedEmail              *string
	KeyUsage                 int
	SigningAlgorithm         string
	CertStateString          string
	KeyTypeString            string
	RevocationEffDate        *time.Time
	RevocationReason         *int
	RevocationComment        *string
	CertificateAuthorityId   int
	CertificateAuthorityName string
	TemplateName             string
	ArchivedKey              bool
	HasPrivateKey            bool
	PrincipalName            *string
	CertRequestId            *int
	RequesterName            string
	ContentBytes             string
	ExtendedKeyUsages        []wireExtendedKeyUsage
	SubjectAltNameElements   []wireSANElement
	CRLDistributionPoints    []wireCRLDistributionPoint
	LocationsCount           []wireLocationCount
	SSLLocations             []wireSSLLocation
	Locations                []Location
	Metadata                 map[string]string
	CARowIndex               *int
	CARecordId               string
	DetailedKeyUsage         wireKeyUsage
	KeyRecoverable           bool
	Curve                    *string
	EnrollmentPatternId      int
	Lifespan                 int
}

// wireStore is the model of GET /CertificateStores and GET
// /CertificateStores/{id} [REC id 3, 14]: `Storepath` with a small p,
// ContainerId null or an integer, Properties a JSON-encoded string.
type wireStore struct {
	Id                      string
	ContainerId             *int
	DisplayName             string
	ClientMachine           string
	Storepath               string
	CertStoreInventoryJobId *string
	CertStoreType           int
	Approved                bool
	CreateIfMissing         bool
	Properties              string
	AgentId                 *string
	AgentAssigned           bool
	ContainerName           *string
	InventorySchedule       map[string]any
	ReenrollmentStatus      *struct{}
	SetNewPasswordAllowed   bool
	Password                *struct{}
}

// wireStoreTypeOperations is SupportedOperations [OAS; REC].
type wireStoreTypeOperations struct {
	Add, Create, Discovery, Enrollment, Remove bool
}

// wirePasswordOptions is PasswordOptions [OAS Models.CertStoreTypePasswordOptions;
// REC]: whether entries take a password, whether the store needs one, and a
// style ("Default" in 25.4.1, 0/1 in the v10 spec).
type wirePasswordOptions struct {
	EntrySupported bool
	StoreRequired  bool
	Style          any
}

// wireStoreType is the model of GET /CertificateStoreTypes [REC id 0; OAS
// CertificateStoreTypeResponse]. 25.4.1 writes CustomAliasAllowed and
// PrivateKeyAllowed as strings ("Forbidden", "Optional", "Required"); the v10
// spec declares them integers 0, 1, 2.
type wireStoreType struct {
	Name                string
	ShortName           string
	Capability          string
	StoreType           int
	ImportType          int
	LocalStore          bool
	SupportedOperations wireStoreTypeOperations
	Properties          []any
	EntryParameters     []any
	PasswordOptions     wirePasswordOptions
	PrivateKeyAllowed   any
	CertificateFormat   int
	JobProperties       []string
	ServerRequired      bool
	PowerShell          bool
	BlueprintAllowed    bool
	CustomAliasAllowed  any
	ServerRegistration  int
	InventoryEndpoint   string
	InventoryJobType    string
	ManagementJobType   string
	DiscoveryJobType    string
}

// wireMyPermissions is the answer to GET /Security/My/Permissions [DOC
// Core-Hosted/Current SecurityGETMyPermissions].
type wireMyPermissions struct {
	Permissions []string
}

// wireGlobalPermission and wireSecurityMy are the answer to GET /Security/My
// [DOC Core-OnPrem/v11.3 SecurityGETMy]: roles and v1 {Area, Permission} pairs.
type wireGlobalPermission struct {
	Area       string
	Permission string
}

type wireSecurityMy struct {
	Roles             []string
	GlobalPermissions []wireGlobalPermission
}

// wireRequest is one item of GET /Workflow/Certificates/Pending and /Denied
// [OAS Models.Workflow.CertificateRequestModel].
type wireRequest struct {
	Id                   int
	CARequestId          string
	CommonName           string
	DistinguishedName    string
	SubmissionDate       time.Time
	CertificateAuthority string
	Template             string
	Requester            string
	State                int
	StateString          string
	Metadata             map[string]string
}

// wireRequestStore is one item of CertStores in the request details [OAS
// Models.Workflow.CertificateRequestCertStoreModel].
type wireRequestStore struct {
	ClientMachine string
	StorePath     string
	EntryName     string
}

// wireRequestDetails is the answer to GET /Workflow/Certificates/{id} [OAS
// Models.Workflow.CertificateRequestDetailsModel].
type wireRequestDetails struct {
	wireRequest
	DenialComment string
	KeyLength     string
	SANs          []string
	CertStores    []wireRequestStore
	Curve         *string
}

// wireDenialRequest is the body of POST /Workflow/Certificates/Deny [OAS
// Models.Workflow.DenialRequest]; Approve takes a bare array of ids.
type wireDenialRequest struct {
	Comment               string
	CertificateRequestIds []int
}

// wireProcessedRequest and wireApproveDenyResult are the answer to Approve
// and Deny [OAS Models.Workflow.ApproveDenyResult, ProcessedCertificateRequest].
type wireProcessedRequest struct {
	Comment            string
	CARowId            int
	CARequestId        string
	CALogicalName      string
	KeyfactorRequestId int
	CAHost             string
}

type wireApproveDenyResult struct {
	Failures  []wireProcessedRequest
	Denials   []wireProcessedRequest
	Successes []wireProcessedRequest
}

// wireJobHistory is one item of GET /OrchestratorJobs/JobHistory [OAS
// KeyfactorApi.Models.CertificateStores.JobHistoryResponse; SYN for the
// values of JobType, Result and Status].
type wireJobHistory struct {
	JobHistoryId   int64
	AgentMachine   string
	JobId          string
	Schedule       map[string]any
	JobType        string
	OperationStart time.Time
	OperationEnd   time.Time
	Message        string
	Result         int
	Status         int
	StorePath      string
	ClientMachine  string
}

// wireError is the error shape Command sends with a failing status [REC id
// 16]: {"ErrorCode": "0xA0110008", "Message": "…"}.
type wireError struct {
	ErrorCode string
	Message   string
}

// wireTime is a request time as ASP.NET binds it: RFC 3339 with or without
// an offset (none means UTC) and with any fraction.
type wireTime struct{ time.Time }

// timeLayouts are the request time forms the simulator accepts.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05", "2006-01-02"}

func (t *wireTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a date string, got %s", b)
	}
	parsed, err := parseTime(s)
	if err != nil {
		return err
	}
	t.Time = parsed
	return nil
}

// parseTime reads one of timeLayouts; a time without an offset is UTC.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 date", s)
}
