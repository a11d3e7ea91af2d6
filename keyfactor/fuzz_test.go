package keyfactor

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
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
