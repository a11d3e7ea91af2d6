package keyfactor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Decoding is tolerant where Command varies and strict where runner
// depends on a value:
//   - only the fields runner uses are read (each is captured as raw JSON
//     and parsed here); every other field is skipped unread;
//   - null stands for the zero value, except in fields runner cannot do
//     without (a certificate's Id, NotBefore and NotAfter, a store's Id);
//   - counts and enums may come as numbers or numeric strings, text as
//     strings or numbers, flags as booleans or "true"/"false";
//   - ids that name what runner acts on (certificate, request) must be JSON
//     integers: a server that sends "abc" there is lying, not varying;
//   - dates may carry an offset or none, and any fraction of a second.

// fieldError names the field of a record that could not be read.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.field + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// fieldErrors is every unreadable field of one record, in one line. A
// decoder adds each field's error (nil is skipped) and returns err.
type fieldErrors []error

func (e fieldErrors) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (e fieldErrors) Unwrap() []error { return e }

// add keeps err if it is not nil.
func (e *fieldErrors) add(err error) {
	if err != nil {
		*e = append(*e, err)
	}
}

// err is nil when no field failed, the error itself when one did, and e
// when several did.
func (e fieldErrors) err() error {
	switch len(e) {
	case 0:
		return nil
	case 1:
		return e[0]
	}
	return e
}

func fieldErr(field string, format string, args ...any) error {
	return &fieldError{field: field, err: fmt.Errorf(format, args...)}
}

// isNull reports whether raw is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// kindOf names the JSON kind of raw for error messages.
func kindOf(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// plainString returns the text of a JSON string literal that holds no
// escapes and is valid UTF-8, without the cost of a full decode; ok is
// false for anything else.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	ascii := true
	for _, b := range inner {
		switch {
		case b == '\\' || b == '"' || b < 0x20:
			return "", false
		case b >= utf8.RuneSelf:
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(inner) {
		return "", false // encoding/json replaces invalid bytes; let it
	}
	return string(inner), true
}

// plainInt reads a JSON number written as optional minus and digits.
func plainInt(raw []byte) (int64, bool) {
	if len(raw) == 0 || len(raw) > 19 {
		return 0, false
	}
	digits := raw
	if raw[0] == '-' {
		digits = raw[1:]
	}
	if len(digits) == 0 {
		return 0, false
	}
	for _, b := range digits {
		if b < '0' || b > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(string(raw), 10, 64)
	return v, err == nil
}

// strictID reads an id runner acts on: a JSON integer >= 0, or null (0).
func strictID(raw json.RawMessage, field string) (int, error) {
	if isNull(raw) {
		return 0, nil
	}
	raw = bytes.TrimSpace(raw)
	if v, ok := plainInt(raw); ok && v >= 0 && v <= math.MaxInt32 {
		return int(v), nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil || bytes.TrimSpace(raw)[0] == '"' {
		return 0, fieldErr(field, "expected an integer id, got %s", kindOf(raw))
	}
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil || v < 0 || v > math.MaxInt32 {
		return 0, fieldErr(field, "expected a non-negative 32-bit integer id, got %s", oneLine(n.String(), 32))
	}
	return int(v), nil
}

// lenientInt reads a count or enum: a JSON integer, a string holding one,
// or null (0).
func lenientInt(raw json.RawMessage, field string) (int64, error) {
	if isNull(raw) {
		return 0, nil
	}
	raw = bytes.TrimSpace(raw)
	if v, ok := plainInt(raw); ok {
		return v, nil
	}
	text := string(raw)
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fieldErr(field, "expected an integer, got %s", kindOf(raw))
		}
		if text = strings.TrimSpace(s); text == "" {
			return 0, nil
		}
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		// 12.0 is an integer too; 12.5 is not.
		f, ferr := strconv.ParseFloat(text, 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, fieldErr(field, "expected an integer, got %s", oneLine(text, 32))
		}
		v = int64(f)
	}
	return v, nil
}

// lenientString reads text: a JSON string, a number or boolean (their
// text), or null ("").
func lenientString(raw json.RawMessage, field string) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	raw = bytes.TrimSpace(raw)
	if s, ok := plainString(raw); ok {
		return s, nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fieldErr(field, "malformed string")
		}
		return s, nil
	case '{', '[':
		return "", fieldErr(field, "expected a string, got %s", kindOf(raw))
	}
	return string(raw), nil
}

// lenientBool reads a flag: a JSON boolean, "true"/"false" in any case,
// 0/1, or null (false).
func lenientBool(raw json.RawMessage, field string) (bool, error) {
	if isNull(raw) {
		return false, nil
	}
	s, err := lenientString(raw, field)
	if err != nil {
		return false, err
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1":
		return true, nil
	case "false", "0", "":
		return false, nil
	}
	return false, fieldErr(field, "expected true or false, got %s", oneLine(s, 32))
}

// timeField reads a date; null or "" is the zero time unless required.
func timeField(raw json.RawMessage, field string, required bool) (time.Time, error) {
	s, err := lenientString(raw, field)
	if err != nil {
		return time.Time{}, err
	}
	if strings.TrimSpace(s) == "" {
		if required {
			return time.Time{}, fieldErr(field, "missing, expected a date")
		}
		return time.Time{}, nil
	}
	t, err := ParseTime(s)
	if err != nil {
		return time.Time{}, &fieldError{field: field, err: err}
	}
	return t, nil
}

// ParseTime reads a date as Command writes it: ISO 8601 with or without an
// offset, with any fraction of a second ("2026-03-19T21:26:35.967Z",
// "2026-03-19T21:26:35", "2026-03-19T21:26:35.1234567",
// "2026-03-19T21:26:35+02:00"; a space instead of the T is accepted too).
// A date without an offset is UTC: Command keeps its dates in UTC (its
// documentation asks for ISO 8601 UTC on input, and every date a real
// server sent in the recordings ends in Z), and .NET drops the Z when a
// value read back from the database has lost its kind; reading it in the
// runner's own time zone would shift it by that zone's offset, which says
// nothing about the server. The result is in UTC.
func ParseTime(s string) (time.Time, error) {
	v := strings.ToUpper(strings.TrimSpace(s))
	if len(v) > 10 && v[10] == ' ' {
		v = v[:10] + "T" + v[11:]
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	// time.Parse accepts any fraction after the seconds even though the
	// layout names none.
	if t, err := time.ParseInLocation("2006-01-02T15:04:05", v, time.UTC); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("expected an ISO 8601 date such as 2026-03-19T21:26:35Z, got %q", oneLine(s, 40))
}

// normGUID puts a GUID (a store or job id) in the one form runner
// compares: lower case, without braces or surrounding space.
func normGUID(s string) string {
	return strings.ToLower(strings.Trim(s, "{} \t\r\n"))
}

// normThumbprint upper-cases a hex thumbprint and drops the separators
// some tools print (spaces, colons); anything else that is not hex is an
// error, since runner matches certificates by thumbprint.
func normThumbprint(s, field string) (string, error) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9', r >= 'A' && r <= 'F':
			b.WriteRune(r)
		case r >= 'a' && r <= 'f':
			b.WriteRune(r - 'a' + 'A')
		case r == ' ' || r == ':':
		default:
			return "", fieldErr(field, "expected hex digits, got %q", oneLine(s, 70))
		}
	}
	return b.String(), nil
}

// objectFields checks that raw is a JSON object and decodes the fields of
// into (a struct of json.RawMessage) from it.
func objectFields(raw []byte, into any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return wrongKind(raw)
	}
	if validJSON(raw) {
		if err, ok := fastObjectFields(raw, into); ok {
			return err
		}
	}
	return json.Unmarshal(raw, into)
}

// wrongKind is the error for a value that should have been an object.
func wrongKind(raw []byte) error {
	return fmt.Errorf("expected a JSON object, got %s", kindOf(raw))
}

type locationWire struct {
	CertStoreId, Alias, StorePath, StoreMachine, StoreType json.RawMessage
}

type certificateWire struct {
	Id, Thumbprint, SerialNumber, IssuedDN, IssuedCN      json.RawMessage
	ImportDate, NotBefore, NotAfter                       json.RawMessage
	CertState, CertRequestId, RequesterName, TemplateName json.RawMessage
	Locations                                             json.RawMessage
}

// UnmarshalJSON reads a certificate record; see the rules at the top of
// decode.go. Id, NotBefore and NotAfter are required: a certificate
// without them would look expired and be renewed.
func (c *Certificate) UnmarshalJSON(data []byte) error {
	var w certificateWire
	if err := objectFields(data, &w); err != nil {
		return err
	}
	return c.fromWire(&w)
}

func (c *Certificate) fromWire(w *certificateWire) error {
	var out Certificate
	var errs fieldErrors
	var err error
	if out.Id, err = strictID(w.Id, "Id"); err != nil {
		errs.add(err)
	} else if out.Id == 0 {
		errs.add(fieldErr("Id", "missing, expected the certificate id"))
	}
	tp, err := lenientString(w.Thumbprint, "Thumbprint")
	errs.add(err)
	out.Thumbprint, err = normThumbprint(tp, "Thumbprint")
	errs.add(err)
	for _, f := range []struct {
		raw  json.RawMessage
		name string
		to   *string
	}{
		{w.SerialNumber, "SerialNumber", &out.SerialNumber},
		{w.IssuedDN, "IssuedDN", &out.IssuedDN},
		{w.IssuedCN, "IssuedCN", &out.IssuedCN},
		{w.RequesterName, "RequesterName", &out.RequesterName},
		{w.TemplateName, "TemplateName", &out.TemplateName},
	} {
		*f.to, err = lenientString(f.raw, f.name)
		errs.add(err)
	}
	out.ImportDate, err = timeField(w.ImportDate, "ImportDate", false)
	errs.add(err)
	out.NotBefore, err = timeField(w.NotBefore, "NotBefore", true)
	errs.add(err)
	out.NotAfter, err = timeField(w.NotAfter, "NotAfter", true)
	errs.add(err)
	state, err := lenientInt(w.CertState, "CertState")
	errs.add(err)
	out.CertState = int(state)
	out.CertRequestId, err = strictID(w.CertRequestId, "CertRequestId")
	errs.add(err)
	out.Locations, err = decodeLocations(w.Locations)
	errs.add(err)
	if err := errs.err(); err != nil {
		return err
	}
	*c = out
	return nil
}

// decodeLocations reads Certificate.Locations; every entry must name its
// store, since verification looks stores up by id.
func decodeLocations(raw json.RawMessage) ([]Location, error) {
	if isNull(raw) {
		return nil, nil
	}
	var items []json.RawMessage
	valid := validJSON(raw)
	if trimmed := bytes.TrimSpace(raw); valid && trimmed[0] == '[' {
		eachElement(trimmed, func(item []byte) { items = append(items, item) })
	} else if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fieldErr("Locations", "expected an array, got %s", kindOf(raw))
	}
	out := make([]Location, 0, len(items))
	for i, item := range items {
		field := "Locations[" + strconv.Itoa(i) + "]"
		var w locationWire
		err, fast := fastObjectFields(item, &w) // item is part of valid JSON
		if !fast {
			err = objectFields(item, &w)
		}
		if err != nil {
			return nil, &fieldError{field: field, err: err}
		}
		id, err := lenientString(w.CertStoreId, field+".CertStoreId")
		if err != nil {
			return nil, err
		}
		l := Location{CertStoreId: normGUID(id)}
		if l.CertStoreId == "" {
			return nil, fieldErr(field+".CertStoreId", "missing, expected the store id")
		}
		if l.Alias, err = lenientString(w.Alias, field+".Alias"); err != nil {
			return nil, err
		}
		if l.StorePath, err = lenientString(w.StorePath, field+".StorePath"); err != nil {
			return nil, err
		}
		if l.StoreMachine, err = lenientString(w.StoreMachine, field+".StoreMachine"); err != nil {
			return nil, err
		}
		st, err := lenientInt(w.StoreType, field+".StoreType")
		if err != nil {
			return nil, err
		}
		l.StoreType = int(st)
		out = append(out, l)
	}
	return out, nil
}

type storeWire struct {
	Id, ContainerId, ContainerName, DisplayName, ClientMachine, Storepath json.RawMessage
	CertStoreType, Approved, AgentAssigned                                json.RawMessage
}

// UnmarshalJSON reads a certificate store record; Id is required.
func (s *CertificateStore) UnmarshalJSON(data []byte) error {
	var w storeWire
	if err := objectFields(data, &w); err != nil {
		return err
	}
	return s.fromWire(&w)
}

func (s *CertificateStore) fromWire(w *storeWire) error {
	var out CertificateStore
	var errs fieldErrors
	id, err := lenientString(w.Id, "Id")
	errs.add(err)
	if out.Id = normGUID(id); err == nil && out.Id == "" {
		errs.add(fieldErr("Id", "missing, expected the store id"))
	}
	if !isNull(w.ContainerId) {
		n, err := lenientInt(w.ContainerId, "ContainerId")
		errs.add(err)
		if err == nil {
			v := int(n)
			out.ContainerId = &v
		}
	}
	for _, f := range []struct {
		raw  json.RawMessage
		name string
		to   *string
	}{
		{w.ContainerName, "ContainerName", &out.ContainerName},
		{w.DisplayName, "DisplayName", &out.DisplayName},
		{w.ClientMachine, "ClientMachine", &out.ClientMachine},
		{w.Storepath, "Storepath", &out.Storepath},
	} {
		*f.to, err = lenientString(f.raw, f.name)
		errs.add(err)
	}
	t, err := lenientInt(w.CertStoreType, "CertStoreType")
	errs.add(err)
	out.CertStoreType = int(t)
	out.Approved, err = lenientBool(w.Approved, "Approved")
	errs.add(err)
	out.AgentAssigned, err = lenientBool(w.AgentAssigned, "AgentAssigned")
	errs.add(err)
	if err := errs.err(); err != nil {
		return err
	}
	*s = out
	return nil
}

type storeTypeWire struct {
	StoreType, ShortName, Name, CustomAliasAllowed json.RawMessage
	PasswordOptions                                json.RawMessage
}

type passwordOptionsWire struct {
	EntrySupported, StoreRequired json.RawMessage
}

// UnmarshalJSON reads a certificate store type record.
func (s *CertificateStoreType) UnmarshalJSON(data []byte) error {
	var w storeTypeWire
	if err := objectFields(data, &w); err != nil {
		return err
	}
	return s.fromWire(&w)
}

func (s *CertificateStoreType) fromWire(w *storeTypeWire) error {
	var out CertificateStoreType
	var errs fieldErrors
	t, err := lenientInt(w.StoreType, "StoreType")
	errs.add(err)
	out.StoreType = int(t)
	out.ShortName, err = lenientString(w.ShortName, "ShortName")
	errs.add(err)
	out.Name, err = lenientString(w.Name, "Name")
	errs.add(err)
	out.CustomAliasAllowed = aliasRule(w.CustomAliasAllowed)
	if !isNull(w.PasswordOptions) {
		var p passwordOptionsWire
		if err := objectFields(w.PasswordOptions, &p); err != nil {
			errs.add(&fieldError{field: "PasswordOptions", err: err})
		} else {
			out.EntryPasswordSupported, err = lenientBool(p.EntrySupported, "PasswordOptions.EntrySupported")
			errs.add(err)
			out.StorePasswordRequired, err = lenientBool(p.StoreRequired, "PasswordOptions.StoreRequired")
			errs.add(err)
		}
	}
	if err := errs.err(); err != nil {
		return err
	}
	*s = out
	return nil
}

// aliasRule maps CustomAliasAllowed to its word. Command 25.4.1 sends
// "Forbidden" for the K8STLSSecr type and 0 for the same setting inside a
// store's ReenrollmentStatus (recordings), so 0 is Forbidden; 1 and 2
// follow the documented order Forbidden, Optional, Required.
func aliasRule(raw json.RawMessage) string {
	if isNull(raw) {
		return ""
	}
	s, err := lenientString(raw, "CustomAliasAllowed")
	if err != nil {
		return ""
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0", "forbidden":
		return AliasForbidden
	case "1", "optional":
		return AliasOptional
	case "2", "required":
		return AliasRequired
	}
	return ""
}

type renewalWire struct {
	KeyfactorId, KeyfactorRequestId, Thumbprint, SerialNumber json.RawMessage
	RequestDisposition, DispositionMessage                    json.RawMessage
}

// UnmarshalJSON reads the answer to a renewal. The ids must be JSON
// integers: an answer with ids of another type is undecodable, which the
// client reports as an APIError of class Unknown (the renewal may have
// happened).
func (r *RenewalResponse) UnmarshalJSON(data []byte) error {
	var w renewalWire
	if err := objectFields(data, &w); err != nil {
		return err
	}
	var out RenewalResponse
	var errs fieldErrors
	var err error
	out.KeyfactorId, err = strictID(w.KeyfactorId, "KeyfactorId")
	errs.add(err)
	out.KeyfactorRequestId, err = strictID(w.KeyfactorRequestId, "KeyfactorRequestId")
	errs.add(err)
	tp, err := lenientString(w.Thumbprint, "Thumbprint")
	errs.add(err)
	out.Thumbprint, err = normThumbprint(tp, "Thumbprint")
	errs.add(err)
	out.SerialNumber, err = lenientString(w.SerialNumber, "SerialNumber")
	errs.add(err)
	out.RequestDisposition, err = lenientString(w.RequestDisposition, "RequestDisposition")
	errs.add(err)
	out.DispositionMessage, err = lenientString(w.DispositionMessage, "DispositionMessage")
	errs.add(err)
	if err := errs.err(); err != nil {
		return err
	}
	*r = out
	return nil
}

// UnmarshalJSON reads the answer to a deploy; each store id must be a
// string, and is normalised.
func (d *DeployResponse) UnmarshalJSON(data []byte) error {
	var w struct{ SuccessfulStores, FailedStores json.RawMessage }
	if err := objectFields(data, &w); err != nil {
		return err
	}
	ok, err := storeIDList(w.SuccessfulStores, "SuccessfulStores")
	if err != nil {
		return err
	}
	failed, err := storeIDList(w.FailedStores, "FailedStores")
	if err != nil {
		return err
	}
	*d = DeployResponse{SuccessfulStores: ok, FailedStores: failed}
	return nil
}

func storeIDList(raw json.RawMessage, field string) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var ids []json.RawMessage
	if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, fieldErr(field, "expected an array of store ids, got %s", kindOf(raw))
	}
	out := make([]string, 0, len(ids))
	for i, id := range ids {
		var s string
		if err := json.Unmarshal(id, &s); err != nil {
			return nil, fieldErr(field+"["+strconv.Itoa(i)+"]", "expected a store id string, got %s", kindOf(id))
		}
		out = append(out, normGUID(s))
	}
	return out, nil
}

type certificateRequestWire struct {
	Id, State, StateString, DenialComment, SubmissionDate json.RawMessage
}

// UnmarshalJSON reads the details of a certificate request.
func (r *CertificateRequest) UnmarshalJSON(data []byte) error {
	var w certificateRequestWire
	if err := objectFields(data, &w); err != nil {
		return err
	}
	var out CertificateRequest
	var errs fieldErrors
	var err error
	out.Id, err = strictID(w.Id, "Id")
	errs.add(err)
	st, err := lenientInt(w.State, "State")
	errs.add(err)
	out.State = int(st)
	out.StateString, err = lenientString(w.StateString, "StateString")
	errs.add(err)
	out.DenialComment, err = lenientString(w.DenialComment, "DenialComment")
	errs.add(err)
	out.SubmissionDate, err = timeField(w.SubmissionDate, "SubmissionDate", false)
	errs.add(err)
	if err := errs.err(); err != nil {
		return err
	}
	*r = out
	return nil
}

type jobHistoryWire struct {
	JobHistoryId, JobId, JobType, Message, StorePath, ClientMachine json.RawMessage
	OperationStart, OperationEnd, Result, Status                    json.RawMessage
}

// UnmarshalJSON reads a job history record.
func (j *JobHistory) UnmarshalJSON(data []byte) error {
	var w jobHistoryWire
	if err := objectFields(data, &w); err != nil {
		return err
	}
	return j.fromWire(&w)
}

func (j *JobHistory) fromWire(w *jobHistoryWire) error {
	var out JobHistory
	var errs fieldErrors
	var err error
	out.JobHistoryId, err = lenientInt(w.JobHistoryId, "JobHistoryId")
	errs.add(err)
	id, err := lenientString(w.JobId, "JobId")
	errs.add(err)
	out.JobId = normGUID(id)
	for _, f := range []struct {
		raw  json.RawMessage
		name string
		to   *string
	}{
		{w.JobType, "JobType", &out.JobType},
		{w.Message, "Message", &out.Message},
		{w.StorePath, "StorePath", &out.StorePath},
		{w.ClientMachine, "ClientMachine", &out.ClientMachine},
	} {
		*f.to, err = lenientString(f.raw, f.name)
		errs.add(err)
	}
	out.OperationStart, err = timeField(w.OperationStart, "OperationStart", false)
	errs.add(err)
	out.OperationEnd, err = timeField(w.OperationEnd, "OperationEnd", false)
	errs.add(err)
	res, err := lenientInt(w.Result, "Result")
	errs.add(err)
	out.Result = int(res)
	st, err := lenientInt(w.Status, "Status")
	errs.add(err)
	out.Status = int(st)
	if err := errs.err(); err != nil {
		return err
	}
	*j = out
	return nil
}

// wireID reads a record's Id for an error report, 0 if unreadable.
func wireID(raw json.RawMessage) int {
	id, err := strictID(raw, "Id")
	if err != nil {
		return 0
	}
	return id
}

// wireStoreID reads a store record's Id for an error report.
func wireStoreID(raw json.RawMessage) string {
	s, err := lenientString(raw, "Id")
	if err != nil {
		return ""
	}
	return normGUID(s)
}

// bodyDecoder is a destination that decodes a 2xx body itself, instead of
// encoding/json decoding into it (see decodeResponse).
type bodyDecoder interface {
	decodeBody(body []byte) error
}

// records decodes a JSON array one element at a time into wire values of
// type W and hands each to each, with the JSON-level error of that element
// (an element that is not an object) if any. Reading the array with one
// decoder scans the body once per element instead of once for the array
// and again per record. null is an empty list.
type records[W any] struct {
	each func(i int, w *W, err error)
	n    int // elements seen
}

func (r *records[W]) decodeBody(body []byte) error {
	if wf := wireFieldsOf(reflect.TypeFor[W]()); wf != nil && validJSON(body) {
		return r.decodeValid(wf, bytes.TrimSpace(body))
	}
	return r.decodeStream(body)
}

// decodeStream is decodeBody through encoding/json, for any body.
func (r *records[W]) decodeStream(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("expected a JSON array, got %s", kindOf(body))
	}
	for dec.More() {
		var w W
		err := dec.Decode(&w)
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			// The message wrongKind gives, from encoding/json's name of
			// the kind.
			err = fmt.Errorf("expected a JSON object, got %s", jsonKind(te.Value))
		case err != nil:
			return err
		}
		r.each(r.n, &w, err)
		r.n++
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON array")
	}
	return nil
}

// decodeValid is decodeBody for a body that is valid JSON, with the same
// outcome as encoding/json's path: an element that is not an object is
// handed over with its error, a null element as an empty record.
func (r *records[W]) decodeValid(wf *wireFields, body []byte) error {
	if body[0] != '[' {
		return r.decodeStream(body) // null, or not a list: rare, and its error is encoding/json's
	}
	eachElement(body, func(elem []byte) {
		var w W
		var err error
		switch elem[0] {
		case '{':
			wf.bindObject(elem, reflect.ValueOf(&w).Elem())
		case 'n':
		default:
			err = wrongKind(elem)
		}
		r.each(r.n, &w, err)
		r.n++
	})
	return nil
}

// jsonKind names a kind as encoding/json reports it ("string", "number",
// "array", "bool") for error messages.
func jsonKind(v string) string {
	switch v {
	case "array":
		return "an array"
	case "bool":
		return "a boolean"
	case "string", "number":
		return "a " + v
	}
	return v
}
