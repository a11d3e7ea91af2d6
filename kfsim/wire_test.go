package kfsim

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// recordedCertificateKeys are the keys of GET /Certificates/{id} in the
// Command 25.4.1 recording, in order, but AltKeyAlgorithm, AltKeySizeInBits,
// AltKeyType, AltSigningAlgorithm, AltKeyTypeString and HasAltPrivateKey
// (post-quantum fields of 25.x that runner never reads).
const recordedCertificateKeys = "IsCACertificate PathLengthConstraint Id Thumbprint SerialNumber IssuedDN IssuedCN ImportDate " +
	"NotBefore NotAfter IssuerDN PrincipalId OwnerRoleId OwnerRoleName TemplateId CertState KeySizeInBits KeyType KeyAlgorithm " +
	"RequesterId IssuedOU IssuedEmail KeyUsage SigningAlgorithm CertStateString KeyTypeString RevocationEffDate RevocationReason " +
	"RevocationComment CertificateAuthorityId CertificateAuthorityName TemplateName ArchivedKey HasPrivateKey PrincipalName " +
	"CertRequestId RequesterName ContentBytes ExtendedKeyUsages SubjectAltNameElements CRLDistributionPoints LocationsCount " +
	"SSLLocations Locations Metadata CARowIndex CARecordId DetailedKeyUsage KeyRecoverable Curve EnrollmentPatternId Lifespan"

// keysInOrder returns the top-level keys of a JSON object in order.
func keysInOrder(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", b)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestCertificateWireShape(t *testing.T) {
	h := newHarness(t, Options{})
	h.clock.Advance(1234 * time.Millisecond)
	rn := h.renew(alice, wireRenewalRequest{CertificateId: 105})
	res := h.call("GET", "Certificates/"+itoa(rn.KeyfactorId)+"?includeLocations=true", alice, nil)
	if got := strings.Join(keysInOrder(t, decodeRaw(t, res)), " "); got != recordedCertificateKeys {
		t.Errorf("keys:\n%s\nwant (25.4.1 recording):\n%s", got, recordedCertificateKeys)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(res.body, &raw); err != nil {
		t.Fatal(err)
	}
	checks := map[string]string{
		"ImportDate":      `"2026-06-01T12:00:01.234Z"`, // milliseconds and Z, as recorded
		"NotBefore":       `"2026-06-01T12:00:01Z"`,
		"CertStateString": `"Active (1)"`,
		"CertRequestId":   itoa(rn.KeyfactorRequestId),
		"PrincipalId":     "null",
		"LocationsCount":  "[]",
		"Locations":       "[]",
		"SSLLocations":    "[]",
		"Metadata":        "{}",
		"HasPrivateKey":   "true",
		"RequesterName":   `"CORP\\alice"`,
	}
	for k, want := range checks {
		if got := string(raw[k]); got != want {
			t.Errorf("%s = %s, want %s", k, got, want)
		}
	}
	// A certificate in stores counts them per store type.
	old := decode[map[string]json.RawMessage](t, h.call("GET", "Certificates/105?includeLocations=true", alice, nil), 200)
	if got := string(old["LocationsCount"]); got != `[{"Type":"F5-SL-REST","Count":1},{"Type":"IISU","Count":1}]` {
		t.Errorf("LocationsCount = %s", got)
	}
}

func TestStoreWireShape(t *testing.T) {
	h := newHarness(t, Options{})
	res := h.call("GET", "CertificateStores/"+storeWeb01, alice, nil)
	want := "Id ContainerId DisplayName ClientMachine Storepath CertStoreInventoryJobId CertStoreType Approved CreateIfMissing " +
		"Properties AgentId AgentAssigned ContainerName InventorySchedule ReenrollmentStatus SetNewPasswordAllowed Password"
	if got := strings.Join(keysInOrder(t, decodeRaw(t, res)), " "); got != want {
		t.Errorf("keys:\n%s\nwant (25.4.1 recording):\n%s", got, want)
	}
}

func TestPrincipalId(t *testing.T) {
	principal := func(h *harness, id int) string {
		t.Helper()
		return string(decode[map[string]json.RawMessage](t, h.call("GET", "Certificates/"+itoa(id), alice, nil), 200)["PrincipalId"])
	}
	h := newHarness(t, Options{})
	if got := principal(h, 105); got != "42" {
		t.Errorf("fixture PrincipalId = %s, want 42", got)
	}
	if got := principal(h, 100); got != "null" {
		t.Errorf("PrincipalId without one = %s, want null (Keyfactor's Go client v3 cannot decode a number)", got)
	}
	n := newHarness(t, Options{NumericPrincipalId: true})
	if got := principal(n, 100); got == "null" || got == "" {
		t.Errorf("NumericPrincipalId: PrincipalId = %s, want a number", got)
	}
	rn := n.renew(alice, wireRenewalRequest{CertificateId: 100})
	if got := principal(n, rn.KeyfactorId); got == "null" {
		t.Errorf("NumericPrincipalId: issued PrincipalId = %s, want a number", got)
	}
	if c, _ := n.sim.Certificate(105); c.PrincipalId == nil || *c.PrincipalId != 42 {
		t.Errorf("a fixture's own PrincipalId must win: %v", c.PrincipalId)
	}
}
