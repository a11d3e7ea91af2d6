package keyfactor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// APIError is an HTTP answer that was not a success, or a success whose
// body could not be decoded. It is the only error type that carries what the
// server said.
type APIError struct {
	Method   string // "POST"
	Endpoint string // route template, e.g. "/Enrollment/Renew" or "/Certificates/{id}"
	Status   int    // HTTP status code
	Code     string // ErrorCode from a Command error body, e.g. "0xA0110008"
	Message  string // Message from a Command error body (with FailedOperations reasons), or what went wrong decoding a 2xx body
	// Snippet is a short, sanitized excerpt of a body that was not a Command
	// error (HTML from a proxy, plain text) or that could not be decoded.
	Snippet string
	// RetryAfter is the server's Retry-After, 0 if it sent none.
	RetryAfter time.Duration
}

// Error renders "POST /Enrollment/Renew: HTTP 400: 0xA0110008: The format
// 'STORE' is invalid." or, for a body that is not a Command error, the status
// text and a snippet of the body.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: HTTP %d", e.Method, e.Endpoint, e.Status)
	switch {
	case e.Code != "" || e.Message != "":
		if e.Code != "" {
			b.WriteString(": " + e.Code)
		}
		if e.Message != "" {
			b.WriteString(": " + e.Message)
		}
		if e.Snippet != "" {
			b.WriteString(" (body: " + e.Snippet + ")")
		}
	default:
		// Nothing structured to say: the status text and whatever the body
		// held are all a reader gets, so show both.
		if t := http.StatusText(e.Status); t != "" {
			b.WriteString(" " + t)
		}
		if e.Snippet != "" {
			b.WriteString(": " + e.Snippet)
		} else {
			b.WriteString(" (empty body)")
		}
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// TransportError is a request that got no complete HTTP answer: the
// connection was refused, TLS failed, the per-request timeout expired, or the
// connection broke. Sent tells whether the request had been written to the
// connection; a request that was sent may have been processed.
type TransportError struct {
	Method   string
	Endpoint string
	Sent     bool
	Err      error
}

// Error says which request failed, whether it was sent, and why.
func (e *TransportError) Error() string {
	if e.Sent {
		return fmt.Sprintf("%s %s: request sent, no complete answer: %v", e.Method, e.Endpoint, e.Err)
	}
	return fmt.Sprintf("%s %s: request not sent: %v", e.Method, e.Endpoint, e.Err)
}

// Unwrap returns the underlying error.
func (e *TransportError) Unwrap() error { return e.Err }

// Class says what a failed request may have done on the server, which is
// what a caller needs to know before it repeats a request that is not
// idempotent, such as a renewal.
type Class int

const (
	// Permanent: the server refused the request (400, 401, 403, 404, …) or
	// the client could not build it; repeating it will fail the same way.
	Permanent Class = iota
	// Retryable: the request surely was not processed (connection refused,
	// DNS, TLS handshake, 429, 503); it is safe to send again later.
	Retryable
	// Unknown: the request may have been processed (timeout, reset or EOF
	// after sending, 500, 502, 504, an undecodable 2xx body). Before
	// repeating a non-idempotent request, find out what happened.
	Unknown
)

// String returns "permanent", "retryable" or "unknown".
func (c Class) String() string {
	switch c {
	case Permanent:
		return "permanent"
	case Retryable:
		return "retryable"
	case Unknown:
		return "unknown"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Classify tells whether err, returned by a Client method, means the request
// was refused for good, surely not processed, or maybe processed. A nil error
// and errors raised before any request was attempted (invalid arguments) are
// Permanent.
func Classify(err error) Class {
	if err == nil {
		return Permanent
	}
	// A TransportError is checked first: it may wrap an APIError from the
	// OAuth token endpoint, and then the API request itself was never sent.
	var te *TransportError
	if errors.As(err, &te) {
		if te.Sent {
			return Unknown
		}
		if isTLSError(te.Err) {
			// Nothing was processed, but trying again cannot change the
			// server's certificate: calling it Retryable would only make
			// callers wait for nothing.
			return Permanent
		}
		var ae *APIError
		if errors.As(te.Err, &ae) && classifyStatus(ae.Status) == Permanent {
			return Permanent // e.g. the token endpoint rejected the client secret
		}
		return Retryable
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return classifyStatus(ae.Status)
	}
	return Permanent
}

func classifyStatus(status int) Class {
	switch {
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		return Retryable
	case status == http.StatusRequestTimeout:
		// The server gave up waiting for the request before it had all of
		// it, so it did not act on it.
		return Retryable
	case status >= 200 && status < 300:
		return Unknown // the server acted, but we cannot read what it did
	case status >= 300 && status < 500:
		return Permanent
	default:
		return Unknown
	}
}

// RetryAfterOf returns the Retry-After the server sent with err (seconds or
// an HTTP date, converted to a duration), or 0 if there was none.
func RetryAfterOf(err error) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}

// parseRetryAfter reads a Retry-After header value: delay-seconds or an
// HTTP date. Garbage and dates in the past give 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		const maxSeconds = int64(1<<63-1) / int64(time.Second)
		if n > maxSeconds {
			n = maxSeconds
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

const (
	maxSnippet = 120  // characters of a non-JSON body quoted in an error
	maxMessage = 1000 // characters of a server Message kept in an error
)

// errorWire is the union of the error shapes a Command server or the IIS /
// ASP.NET stack in front of it may send: Command's {ErrorCode, Message,
// FailedOperations} and ASP.NET's problem details {title, errors}.
type errorWire struct {
	ErrorCode        json.RawMessage `json:"ErrorCode"` // a hex string on real servers; tolerate a number
	Message          string          `json:"Message"`
	FailedOperations []struct {
		Reason string `json:"Reason"`
	} `json:"FailedOperations"`
	Title  string              `json:"title"`
	Errors map[string][]string `json:"errors"`
}

// newAPIError builds the error for a non-2xx answer. The body is read as a
// Command error if it is one; anything else is kept as a short snippet.
// secrets are masked wherever the server's words are quoted.
func newAPIError(method, endpoint string, status int, header http.Header, body []byte, now time.Time, secrets []string) *APIError {
	e := &APIError{Method: method, Endpoint: endpoint, Status: status}
	if header != nil {
		e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), now)
	}
	var w errorWire
	if err := json.Unmarshal(body, &w); err == nil {
		e.Code = oneLine(redact(errorCode(w.ErrorCode), secrets), 64)
		msg := w.Message
		if msg == "" {
			msg = w.Title
		}
		var reasons []string
		for _, op := range w.FailedOperations {
			if op.Reason != "" {
				reasons = append(reasons, op.Reason)
			}
		}
		for field, msgs := range w.Errors {
			reasons = append(reasons, field+": "+strings.Join(msgs, ", "))
		}
		if len(reasons) > 0 {
			if msg != "" {
				msg += ": "
			}
			msg += strings.Join(reasons, "; ")
		}
		e.Message = oneLine(redact(msg, secrets), maxMessage)
	}
	if e.Code == "" && e.Message == "" {
		e.Snippet = snippet(body, secrets)
	}
	return e
}

// errorCode renders ErrorCode whether the server sent it as a string or a
// number.
func errorCode(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

var (
	titleRE  = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	hiddenRE = regexp.MustCompile(`(?is)<(script|style)[^>]*>.*?</(script|style)>`)
	tagRE    = regexp.MustCompile(`(?s)<[^>]*>`)
)

// snippet turns a body that is not a Command error into something a person
// can read in one line: the title of an HTML page or its text without tags,
// whitespace collapsed, control characters dropped, at most maxSnippet
// characters.
func snippet(body []byte, secrets []string) string {
	s := string(body)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	if m := titleRE.FindStringSubmatch(s); m != nil && strings.TrimSpace(m[1]) != "" {
		s = m[1]
	} else if strings.Contains(s, "<") && strings.Contains(s, ">") {
		s = hiddenRE.ReplaceAllString(s, " ")
		s = tagRE.ReplaceAllString(s, " ")
	}
	return oneLine(redact(s, secrets), maxSnippet)
}

// oneLine drops control characters, collapses whitespace and cuts s to max
// characters (runes), marking a cut with "…".
func oneLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:max-1])) + "…"
}

// redact masks every secret the client knows, in case a server or proxy
// echoes one back in an error.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// ErrQueryRefused is wrapped by the error of CertificatesByID when Command
// refused the batched query (400, 414, or 404 on the list endpoint, as IIS
// answers a query string over its limit): the caller reads the ids one at
// a time instead.
var ErrQueryRefused = errors.New("command refused the batched certificate query")

// IsQueryRefused reports whether err is Command (or the IIS in front of it)
// refusing a GET /Certificates query: 400, 414, or 404 on the list
// endpoint, which is how IIS answers a query string over its limit. A
// caller that batched clauses into the query can ask again with fewer.
func IsQueryRefused(err error) bool {
	if errors.Is(err, ErrQueryRefused) {
		return true
	}
	var ae *APIError
	return errors.As(err, &ae) && ae.Endpoint == "/Certificates" &&
		(ae.Status == http.StatusBadRequest || ae.Status == http.StatusNotFound || ae.Status == http.StatusRequestURITooLong)
}

// Cause is what a failure means to the person running runner, so that the
// CLI can give the hint that fits it.
type Cause int

const (
	// CauseOther: none of the below (a refused request, a bad answer,
	// cancellation).
	CauseOther Cause = iota
	// CauseUnreachable: no answer from Command: DNS, connection refused or
	// reset, or a timeout before any answer.
	CauseUnreachable
	// CauseTLS: the TLS handshake failed, most often because the server's
	// certificate is not trusted (KEYFACTOR_CA_CERT).
	CauseTLS
	// CauseUnauthorized: 401 from Command, or the token endpoint refused
	// the client credentials.
	CauseUnauthorized
	// CauseForbidden: 403.
	CauseForbidden
	// CauseNotFound: 404; EndpointOf names the endpoint (a 404 on
	// /Status/Endpoints means the API path is wrong).
	CauseNotFound
	// CauseBusy: 429 or 503; try again later.
	CauseBusy
	// CauseServer: another 5xx.
	CauseServer
)

// String returns "unreachable", "tls", "unauthorized", "forbidden",
// "not found", "busy", "server" or "other".
func (c Cause) String() string {
	switch c {
	case CauseOther:
		return "other"
	case CauseUnreachable:
		return "unreachable"
	case CauseTLS:
		return "tls"
	case CauseUnauthorized:
		return "unauthorized"
	case CauseForbidden:
		return "forbidden"
	case CauseNotFound:
		return "not found"
	case CauseBusy:
		return "busy"
	case CauseServer:
		return "server"
	}
	return "Cause(" + strconv.Itoa(int(c)) + ")"
}

// CauseOf tells what err, returned by a Client method, means for a hint.
func CauseOf(err error) Cause {
	if err == nil || errors.Is(err, context.Canceled) {
		return CauseOther
	}
	var te *TransportError
	if errors.As(err, &te) {
		var ae *APIError
		if errors.As(te.Err, &ae) {
			// The token endpoint answered: a refusal of the client
			// credentials is an authentication problem.
			if ae.Status == http.StatusUnauthorized || ae.Status == http.StatusBadRequest &&
				(ae.Code == "invalid_client" || ae.Code == "unauthorized_client" || ae.Code == "invalid_grant") {
				return CauseUnauthorized
			}
			return causeOfStatus(ae.Status)
		}
		if isTLSError(te.Err) {
			return CauseTLS
		}
		return CauseUnreachable
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return causeOfStatus(ae.Status)
	}
	return CauseOther
}

func causeOfStatus(status int) Cause {
	switch {
	case status == http.StatusUnauthorized:
		return CauseUnauthorized
	case status == http.StatusForbidden:
		return CauseForbidden
	case status == http.StatusNotFound:
		return CauseNotFound
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		return CauseBusy
	case status >= 500:
		return CauseServer
	}
	return CauseOther
}

// isTLSError reports whether err is a failed TLS handshake: an untrusted
// or mismatched certificate, an alert, or a server that does not speak TLS.
func isTLSError(err error) bool {
	var verr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var cerr x509.CertificateInvalidError
	var rerr tls.RecordHeaderError
	var aerr tls.AlertError
	return errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr) ||
		errors.As(err, &rerr) || errors.As(err, &aerr) ||
		// net/http replaces the RecordHeaderError of a plain-HTTP answer
		// with an error of its own that wraps nothing.
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// EndpointOf returns the method and route template of the request err
// failed on ("GET", "/Status/Endpoints"), or "", "" if err names none.
func EndpointOf(err error) (method, endpoint string) {
	var te *TransportError
	if errors.As(err, &te) {
		return te.Method, te.Endpoint
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Method, ae.Endpoint
	}
	return "", ""
}
