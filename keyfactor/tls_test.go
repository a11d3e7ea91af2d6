package keyfactor

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTLSTrust(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, "[]") }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(pemText), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		caCert     string
		skipVerify bool
		wantErr    bool
		wantWarn   bool
	}{
		{name: "CA as PEM text", caCert: pemText},
		{name: "CA as file path", caCert: caFile},
		{name: "no CA", wantErr: true},
		{name: "skip verify", skipVerify: true, wantWarn: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			c, _ := newTestClient(t, srv.URL, func(c *Config) {
				c.CACert, c.SkipVerify, c.GetRetries = tt.caCert, tt.skipVerify, -1
				c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			})
			if !strings.HasPrefix(c.BaseURL(), "https://127.0.0.1:") {
				t.Fatalf("BaseURL = %q", c.BaseURL())
			}
			_, err := c.StatusEndpoints(context.Background())
			if tt.wantErr {
				var te *TransportError
				var uae x509.UnknownAuthorityError
				if !errors.As(err, &te) || te.Sent || !errors.As(err, &uae) {
					t.Fatalf("error = %v, want an unsent TransportError for an unknown authority", err)
				}
				if Classify(err) != Permanent || CauseOf(err) != CauseTLS {
					t.Errorf("Classify = %v, CauseOf = %v; want permanent, tls", Classify(err), CauseOf(err))
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if warned := strings.Contains(logs.String(), "level=WARN"); warned != tt.wantWarn {
				t.Errorf("warning logged = %v, want %v: %s", warned, tt.wantWarn, logs.String())
			}
		})
	}
}

// Requests go over HTTP/1.1 even to a server that offers HTTP/2 (see
// newTransport).
func TestHTTP1EvenWhereHTTP2IsOffered(t *testing.T) {
	protos := make(chan string, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case protos <- r.Proto:
		default:
		}
		writeJSON(w, 200, "[]")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	c, _ := newTestClient(t, srv.URL, func(c *Config) { c.CACert = pemText })
	if _, err := c.StatusEndpoints(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := <-protos; p != "HTTP/1.1" {
		t.Errorf("request sent as %s, want HTTP/1.1", p)
	}
}
