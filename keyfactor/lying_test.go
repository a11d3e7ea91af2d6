package keyfactor

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// Answers that lie (issue 8 §3, the client's side): a 2xx body the client
// cannot trust is an APIError of class Unknown, so the caller treats the
// request as maybe processed and never acts on made-up values.
func TestLyingAnswers(t *testing.T) {
	deploy := func(c *Client) error {
		_, err := c.Deploy(context.Background(), DeployRequest{CertificateId: 1, Stores: []DeployStore{{StoreId: "s"}}})
		return err
	}
	renew := func(c *Client) error {
		_, err := c.Renew(context.Background(), RenewalRequest{CertificateId: 1})
		return err
	}
	get := func(c *Client) error {
		_, err := c.GetCertificate(context.Background(), 1, false)
		return err
	}
	tests := []struct {
		name string
		body string
		call func(*Client) error
		want string
	}{
		{"renew id as a string", `{"KeyfactorId":"12","KeyfactorRequestId":3}`, renew, "KeyfactorId: expected an integer id"},
		{"renew negative id", `{"KeyfactorId":-12}`, renew, "KeyfactorId: expected a non-negative"},
		{"renew request id as an object", `{"KeyfactorId":12,"KeyfactorRequestId":{"Id":3}}`, renew, "KeyfactorRequestId"},
		{"renew as an array", `[{"KeyfactorId":12}]`, renew, "expected a JSON object"},
		{"deploy store id as a number", `{"SuccessfulStores":[7],"FailedStores":[]}`, deploy, "SuccessfulStores[0]: expected a store id string"},
		{"deploy stores as an object", `{"SuccessfulStores":{"a":1}}`, deploy, "SuccessfulStores: expected an array"},
		{"certificate without NotAfter", `{"Id":1,"NotBefore":"2026-01-01T00:00:00Z"}`, get, "NotAfter: missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serveBody(t, tt.body, "")
			err := tt.call(c)
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != 200 || Classify(err) != Unknown || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want an undecodable-200 APIError naming %q", err, tt.want)
			}
		})
	}
}

// serveBody answers every request with 200, body and, if set, X-Total-Count.
func serveBody(tb testing.TB, body, total string) *Client {
	tb.Helper()
	srv := serve(tb, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if total != "" {
			w.Header().Set("X-Total-Count", total)
		}
		writeJSON(w, 200, body)
	}))
	c, _ := newTestClient(tb, srv.URL, nil)
	return c
}

func TestTotalCount(t *testing.T) {
	tests := []struct {
		header string
		want   int
	}{{"3", 3}, {"", -1}, {"x", -1}, {"-2", -1}, {" 7 ", 7}}
	for _, tt := range tests {
		page, err := serveBody(t, "["+minimalCert(1)+"]", tt.header).ListCertificates(context.Background(), CertificateQuery{})
		if err != nil || page.Total != tt.want {
			t.Errorf("X-Total-Count %q: Total %d, %v; want %d", tt.header, page.Total, err, tt.want)
		}
	}
}

func TestDisagreeingCountIsLogged(t *testing.T) {
	var logs bytes.Buffer
	ps := &pageServer{ids: seq(1, 30), total: func(int) int { return 45 }}
	c, _ := newTestClient(t, serve(t, ps).URL, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	if _, err := c.AllCertificates(context.Background(), CertificateQuery{}, func(*Certificate) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "x_total_count=45 records=30") {
		t.Errorf("log = %q, want the disagreement", logs.String())
	}
}

// A certificate nobody asked for is not handed back as if it had been.
func TestCertificatesByIDIgnoresUnaskedRecords(t *testing.T) {
	c := serveBody(t, "["+minimalCert(1)+","+minimalCert(999)+"]", "2")
	got, _, err := c.CertificatesByID(context.Background(), []int{1, 2}, false)
	if err != nil || len(got) != 1 || got[1] == nil {
		t.Errorf("got %v, %v; want only certificate 1", got, err)
	}
}

func TestNormalisers(t *testing.T) {
	for in, want := range map[string]string{
		"d2:5f:42 37": "D25F4237", "abcdef0123": "ABCDEF0123", "": "",
	} {
		if got, err := normThumbprint(in, "Thumbprint"); err != nil || got != want {
			t.Errorf("normThumbprint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := normThumbprint("D25F-4237", "Thumbprint"); err == nil {
		t.Error("a thumbprint with a dash was accepted")
	}
	for in, want := range map[string]string{
		"{F0CC1EDE-7D1B-4A2C-9B7E-0E3F5D1A2B3C}": "f0cc1ede-7d1b-4a2c-9b7e-0e3f5d1a2b3c", " a-b ": "a-b", "{ x }": "x",
	} {
		if got := normGUID(in); got != want {
			t.Errorf("normGUID(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		`0`: AliasForbidden, `1`: AliasOptional, `2`: AliasRequired, `"forbidden"`: AliasForbidden, `"Optional"`: AliasOptional,
		`"2"`: AliasRequired, `3`: "", `null`: "", `{}`: "",
	} {
		if got := aliasRule([]byte(in)); got != want {
			t.Errorf("aliasRule(%s) = %q, want %q", in, got, want)
		}
	}
}
