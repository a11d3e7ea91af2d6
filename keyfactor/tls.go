package keyfactor

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
)

// tlsConfig trusts the system roots plus cfg.CACert (a path or PEM text).
// SkipVerify turns verification off; New logs a warning about it.
func tlsConfig(cfg *Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.SkipVerify {
		tc.InsecureSkipVerify = true
		return tc, nil
	}
	if strings.TrimSpace(cfg.CACert) == "" {
		return tc, nil // nil RootCAs means the system roots
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		// No system store (e.g. a scratch container): the given CA alone
		// is still a sensible trust anchor for a private Command server.
		pool = x509.NewCertPool()
	}
	pemData, source, err := readCACert(cfg.CACert)
	if err != nil {
		return nil, err
	}
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("KEYFACTOR_CA_CERT: no PEM certificate found in %s: expected a file path or PEM text with -----BEGIN CERTIFICATE-----", source)
	}
	tc.RootCAs = pool
	return tc, nil
}

// readCACert returns the PEM bytes of v, which is PEM text or a file path,
// and a description of where they came from for error messages.
func readCACert(v string) ([]byte, string, error) {
	if strings.Contains(v, "-----BEGIN") {
		return []byte(v), "the PEM text", nil
	}
	path := strings.TrimSpace(v)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("KEYFACTOR_CA_CERT: read CA certificate file: %w (expected a file path or PEM text)", err)
	}
	return data, fmt.Sprintf("file %q", path), nil
}
