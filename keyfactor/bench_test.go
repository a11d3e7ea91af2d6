package keyfactor

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkDecodeCertificatePage measures the decoding of one page of 100
// certificates as Command 25.4.1 sends them (the record of
// testdata/certificate.json), from body bytes to []Certificate.
func BenchmarkDecodeCertificatePage(b *testing.B) {
	rec := strings.TrimSpace(string(fixture(b, "certificate.json")))
	body := []byte("[" + strings.TrimSuffix(strings.Repeat(rec+",", 100), ",") + "]")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		certs := make([]Certificate, 0, 100)
		list := &records[certificateWire]{each: func(i int, w *certificateWire, err error) {
			var c Certificate
			if err == nil {
				err = c.fromWire(w)
			}
			if err != nil {
				b.Fatal(err)
			}
			certs = append(certs, c)
		}}
		if err := decodeResponse("GET", "/Certificates", 200, nil, body, list, time.Time{}, nil); err != nil || len(certs) != 100 {
			b.Fatal(err)
		}
	}
}
