package main

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

// runner sim warns when it listens beyond loopback; the host it checks is
// the one net.SplitHostPort takes from the listener's address, so the
// addresses of "all interfaces" are checked in that form too. No socket
// is opened: a test listening on 0.0.0.0 would expose the simulator.
func TestIsLoopbackHost(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:8080", true},
		{"127.10.20.30:8080", true}, // all of 127/8 is loopback
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{"LocalHost:8080", true},
		{"0.0.0.0:8080", false}, // all interfaces, IPv4
		{"[::]:8080", false},    // all interfaces, as Go prints a listener on ":8080"
		{"10.1.2.3:8080", false},
		{"[fe80::1]:8080", false},
		{"localhost.example.com:8080", false},
		{"example.com:8080", false},
	} {
		host, _, err := net.SplitHostPort(tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := isLoopbackHost(host); got != tc.want {
			t.Errorf("isLoopbackHost(%q) = %v, want %v", host, got, tc.want)
		}
	}
}

// The simulator's certificate is trusted for the names a client uses on
// loopback, and by nothing else: it is its own CA, for a day.
func TestSelfSignedTLSCoversLoopback(t *testing.T) {
	cfg, pemCert, err := selfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemCert) {
		t.Fatal("the PEM is not a certificate")
	}
	leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("not valid for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "command.example.com", Roots: roots}); err == nil {
		t.Error("valid for command.example.com")
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		t.Errorf("MinVersion %x", cfg.MinVersion)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d > 25*time.Hour {
		t.Errorf("valid for %s, want about a day", d)
	}
}
