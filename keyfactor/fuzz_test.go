package keyfactor

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecodeResponse feeds arbitrary statuses, Retry-After values and
// bodies through the decoding of answers into every wire type. It must never
// panic, and every failure must be an APIError that names the endpoint and
// the status and quotes at most a short snippet.
func FuzzDecodeResponse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		if fi, err := os.Stat(name); err != nil || fi.IsDir() {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for i, status := range []int{200, 400, 401, 403, 404, 429, 500, 502, 503} {
			f.Add(status, "", b, uint8(i))
		}
	}
	f.Add(429, "Tue, 24 Nov 2026 12:00:30 GMT", []byte(""), uint8(0))
	f.Add(200, "", []byte("null"), uint8(1))
	f.Add(200, "", []byte("[null,{}]"), uint8(2))
	f.Add(204, "", []byte{}, uint8(3))
	f.Add(-1, "-1", []byte("\xff\x00<title></title>"), uint8(4))

	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte, kind uint8) {
		outs := []func() any{
			func() any { return new(Certificate) },
			func() any { return new([]Certificate) },
			func() any { return new(CertificateStore) },
			func() any { return new([]CertificateStore) },
			func() any { return new(RenewalResponse) },
			func() any { return new(DeployResponse) },
			func() any { return new([]string) },
			func() any { return new(CertificateStoreType) },
			func() any { return new(CertificateRequest) },
			func() any { return new(JobHistory) },
			func() any { return new([]json.RawMessage) },
		}
		out := outs[int(kind)%len(outs)]()
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		err := decodeResponse("GET", "/Fuzz/{id}", status, h, body, out, now, []string{testPassword})
		if status >= 200 && status <= 299 && err == nil {
			return
		}
		if err == nil {
			t.Fatalf("status %d: no error", status)
		}
		var ae *APIError
		if !errors.As(err, &ae) {
			t.Fatalf("error %T, want *APIError", err)
		}
		if ae.Status != status || ae.Endpoint != "/Fuzz/{id}" || ae.RetryAfter < 0 {
			t.Fatalf("APIError %+v for status %d", ae, status)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "GET /Fuzz/{id}: HTTP ") || !utf8.ValidString(msg) {
			t.Fatalf("error text %q", msg)
		}
		if n := utf8.RuneCountInString(ae.Snippet); n > maxSnippet {
			t.Fatalf("snippet of %d characters", n)
		}
		if strings.ContainsAny(ae.Snippet+ae.Message, "\n\r\t") {
			t.Fatalf("multi-line error text %q", msg)
		}
		if strings.Contains(msg, testPassword) {
			t.Fatalf("secret in error %q", msg)
		}
		_ = Classify(err)
	})
}

// FuzzDecodeRecords feeds arbitrary list bodies through the record
// decoders the list endpoints use. Nothing may panic, a record is either
// decoded or reported with a one-line error, and what decodes keeps the
// invariants runner relies on.
func FuzzDecodeRecords(f *testing.F) {
	for _, name := range []string{"certificates_page50.json", "stores_page.json", "store_types.json", "job_history.json",
		"certificate.json", "certificate_principal.json", "renew_issued.json", "renew_bad_ids.json", "deploy_response_messy.json",
		"workflow_request.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`[{"Id":1,"NotBefore":"2026-03-19T21:26:35.1234567","NotAfter":"2026-03-19 21:26:35+02:00","Locations":[{}]}]`))
	f.Add([]byte(`[{"Id":1e3,"Thumbprint":"a:b","CertState":"9e99"},{"Id":"{"},null,[],"",0]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		// The list path: the whole body as a page of certificates, and of
		// stores.
		certs := &records[certificateWire]{each: func(i int, w *certificateWire, err error) {
			var c Certificate
			if err == nil {
				err = c.fromWire(w)
			}
			if err != nil {
				checkRecordError(t, RecordError{Index: i, Id: wireID(w.Id), Err: err})
				return
			}
			checkCertificate(t, c)
		}}
		_ = decodeResponse("GET", "/Certificates", 200, nil, body, certs, time.Time{}, nil)
		stores := &records[storeWire]{each: func(i int, w *storeWire, err error) {
			var s CertificateStore
			if err == nil {
				err = s.fromWire(w)
			}
			if err != nil {
				checkRecordError(t, RecordError{Index: i, StoreId: wireStoreID(w.Id), Err: err})
			} else if s.Id == "" || s.Id != normGUID(s.Id) {
				t.Fatalf("store decoded with id %q", s.Id)
			}
		}}
		_ = decodeResponse("GET", "/CertificateStores", 200, nil, body, stores, time.Time{}, nil)

		// The single-object path, for every record type.
		var items []json.RawMessage
		if json.Unmarshal(body, &items) != nil {
			items = []json.RawMessage{body}
		}
		for i, item := range items {
			var c Certificate
			if err := c.UnmarshalJSON(item); err != nil {
				checkRecordError(t, RecordError{Index: i, Err: err})
			} else {
				checkCertificate(t, c)
			}
			for _, dec := range []func([]byte) error{
				new(CertificateStore).UnmarshalJSON, new(CertificateStoreType).UnmarshalJSON, new(JobHistory).UnmarshalJSON,
				new(CertificateRequest).UnmarshalJSON,
			} {
				if err := dec(item); err != nil {
					checkRecordError(t, RecordError{Index: i, Err: err})
				}
			}
			var r RenewalResponse
			if err := r.UnmarshalJSON(item); err == nil {
				if r.KeyfactorId < 0 || r.KeyfactorRequestId < 0 {
					t.Fatalf("negative ids decoded: %+v", r)
				}
				_ = r.Outcome()
			}
			var d DeployResponse
			if err := d.UnmarshalJSON(item); err == nil {
				for _, id := range append(d.SuccessfulStores, d.FailedStores...) {
					if id != normGUID(id) {
						t.Fatalf("deploy store id %q not normalised", id)
					}
				}
			}
		}
		// The fast paths of the field readers agree with encoding/json.
		if trimmed := bytes.TrimSpace(body); json.Valid(trimmed) && len(trimmed) > 0 {
			var want string
			if json.Unmarshal(trimmed, &want) == nil {
				if got, err := lenientString(trimmed, "F"); err != nil || got != want {
					t.Fatalf("lenientString(%q) = %q, %v; encoding/json reads %q", trimmed, got, err, want)
				}
			}
			var n int64
			if json.Unmarshal(trimmed, &n) == nil && trimmed[0] != '"' {
				if got, err := lenientInt(trimmed, "F"); err != nil || got != n {
					t.Fatalf("lenientInt(%q) = %d, %v; encoding/json reads %d", trimmed, got, err, n)
				}
			}
		}
		if tm, err := ParseTime(string(body)); err == nil && tm.Location() != time.UTC {
			t.Fatalf("ParseTime(%q) not in UTC", body)
		}
		if q, err := Quote(string(body)); err == nil && (strings.Count(q, `"`) != 2 || strings.ContainsAny(q, "\r\n")) {
			t.Fatalf("Quote(%q) = %q", body, q)
		}
	})
}

// checkCertificate fails t if a decoded certificate lacks what runner
// relies on.
func checkCertificate(t *testing.T, c Certificate) {
	t.Helper()
	if c.Id <= 0 || c.NotBefore.IsZero() || c.NotAfter.IsZero() || c.Thumbprint != strings.ToUpper(c.Thumbprint) {
		t.Fatalf("certificate decoded without its required fields: %+v", c)
	}
	for _, l := range c.Locations {
		if l.CertStoreId == "" || l.CertStoreId != normGUID(l.CertStoreId) {
			t.Fatalf("location store id %q not normalised", l.CertStoreId)
		}
	}
}

func checkRecordError(t *testing.T, e RecordError) {
	t.Helper()
	msg := e.Error()
	if !utf8.ValidString(msg) {
		t.Fatalf("record error text %q is not valid UTF-8", msg)
	}
	if strings.ContainsAny(msg, "\n\r") {
		t.Fatalf("multi-line record error %q", msg)
	}
}

// FuzzFastDecodeMatchesEncodingJSON checks the hand-split path of a valid
// body against encoding/json's: the same records, fields and errors.
func FuzzFastDecodeMatchesEncodingJSON(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`[{"id":1,"ID":2,"Id":3},{"\u0049d":4,"Locations":[{"certstoreid":"x"}]},null,[],"",0,true,{"Id":"x\"y"}]`))
	f.Add([]byte(` [ { "Id" : 1 , "Locations" : [ ] } ] `))
	f.Add([]byte(`{"Id":1}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[{"ſd":1,"K":2,"ＩＤ":3}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			return
		}
		type rec struct {
			w   certificateWire
			err string
		}
		collect := func(decode func(r *records[certificateWire]) error) ([]rec, string) {
			var got []rec
			r := &records[certificateWire]{each: func(i int, w *certificateWire, err error) {
				x := rec{w: *w}
				if err != nil {
					x.err = err.Error()
				}
				got = append(got, x)
			}}
			err := decode(r)
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			return got, msg
		}
		trimmed := bytes.TrimSpace(body)
		fast, fastErr := collect(func(r *records[certificateWire]) error {
			return r.decodeValid(wireFieldsOf(reflect.TypeFor[certificateWire]()), trimmed)
		})
		slow, slowErr := collect(func(r *records[certificateWire]) error { return r.decodeStream(trimmed) })
		if fastErr != slowErr || !reflect.DeepEqual(fast, slow) {
			t.Fatalf("body %q:\nfast %+v, %q\nslow %+v, %q", body, fast, fastErr, slow, slowErr)
		}
		// One object, as objectFields reads Renew's answer or a location.
		if trimmed[0] == '{' {
			var a, b locationWire
			ferr, ok := fastObjectFields(trimmed, &a)
			serr := json.Unmarshal(trimmed, &b)
			if !ok || (ferr == nil) != (serr == nil) || !reflect.DeepEqual(a, b) {
				t.Fatalf("object %q:\nfast %+v, %v\nslow %+v, %v", body, a, ferr, b, serr)
			}
		}
	})
}

// FuzzValidJSON checks the hand-written validator against json.Valid.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,-0.5e+3,true,false,null,"\u00e9\n"]}`, `[1,]`, `{"a" 1}`, `01`, `-`, `1.`, `1e`, `"\x01"`, `"\q"`, `"\u12g4"`,
		` [ ] `, `{}x`, `nul`, `"` + "\xff" + `"`, strings.Repeat("[", 10001) + strings.Repeat("]", 10001), strings.Repeat("[", 10000) + strings.Repeat("]", 10000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %t, json.Valid = %t", b, got, want)
		}
	})
}
