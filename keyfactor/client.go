// Package keyfactor is the client of the Keyfactor Command REST API used by
// runner: the wire types, authentication (AD Basic, OAuth2 client
// credentials, bearer token), TLS trust, one method per endpoint, paging,
// the query language's quoting, the decoding of answers (tolerant where
// Command versions differ, strict where runner depends on a value), and the
// classification of failures into what may be retried (Classify) and what
// they mean for a hint (CauseOf).
//
// It owns the wire and nothing else: it does not decide what to renew or
// when, and it never retries a request that changes state (Renew, Deploy)
// except once after Command refused an OAuth token with 401, which means
// the request was not processed. Classify tells the caller what a failure
// may have done on the server.
package keyfactor

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of Config fields left zero.
const (
	DefaultAPIPath         = "KeyfactorAPI"
	DefaultTimeout         = 60 * time.Second
	DefaultMaxConnsPerHost = 16
	DefaultGetRetries      = 2
	DefaultUserAgent       = "runner-keyfactor-client"
)

const (
	// maxBody bounds what is read of any answer; a page of 100
	// certificates with locations is far below it.
	maxBody = 32 << 20
	// maxRetryAfter is the longest Retry-After a GET retry waits for; a
	// server asking for longer gets its error handed to the caller.
	maxRetryAfter = 2 * time.Minute
	// Backoff between GET retries when the server gave no Retry-After.
	backoffBase = 250 * time.Millisecond
	backoffMax  = 5 * time.Second
)

// Config holds the connection settings of a Client. Exactly one way to
// authenticate must be set: Username and Password (Basic), ClientID,
// ClientSecret and TokenURL (OAuth2 client credentials), or AccessToken.
type Config struct {
	// Hostname is a host, host:port, or https:// URL without a path; http://
	// is accepted only for loopback hosts (localhost, 127.0.0.0/8, ::1).
	Hostname string
	// Port overrides the port; 0 takes it from Hostname, else 443 (80 for
	// http://).
	Port int
	// APIPath is the path of the API application, default "KeyfactorAPI";
	// surrounding slashes are trimmed ("Keyfactor/API" on newer servers).
	APIPath string

	// Basic (Active Directory): sent as "DOMAIN\user:password". Username
	// may itself be "DOMAIN\user" or "user@domain".
	Username, Password, Domain string

	// OAuth2 client credentials; Audience is sent as the "audience"
	// token endpoint parameter.
	ClientID, ClientSecret, TokenURL string
	Scopes                           []string
	Audience                         string

	// AccessToken is a ready bearer token.
	AccessToken string

	// CACert is a file path or PEM text of a CA trusted in addition to the
	// system roots, for Command and for the token URL.
	CACert string
	// SkipVerify turns off TLS verification (a warning is logged).
	SkipVerify bool

	// Timeout bounds each request, body included; default 60s.
	Timeout time.Duration
	// MaxConnsPerHost sizes the keep-alive pool; default 16.
	MaxConnsPerHost int
	// GetRetries is how often a GET is repeated after a failure that is
	// not Permanent; default 2, negative for none. Renew and Deploy are not
	// repeated, except once with a new token after Command refused an
	// OAuth token with 401.
	GetRetries int
	// Limiter, if set, is waited on before every request, retries included.
	Limiter *rate.Limiter
	// Logger receives debug records of each request (method, endpoint,
	// status, duration) and the SkipVerify warning; never secrets or bodies.
	Logger *slog.Logger
	// UserAgent defaults to DefaultUserAgent.
	UserAgent string
	// CollectionID, if not 0, is sent as collectionId on certificate reads
	// and on Renew, for accounts whose certificate permissions are granted
	// on that certificate collection only (the docs of GET /Certificates,
	// GET /Certificates/{id} and POST /Enrollment/Renew).
	CollectionID int
}

// String describes the configuration without its secrets.
func (c Config) String() string {
	set := func(s string) string {
		if s == "" {
			return "unset"
		}
		return "set"
	}
	return fmt.Sprintf("keyfactor.Config{Hostname:%q Port:%d APIPath:%q Username:%q Password:%s Domain:%q ClientID:%q ClientSecret:%s TokenURL:%q Scopes:%q Audience:%q AccessToken:%s CACert:%s SkipVerify:%t Timeout:%s MaxConnsPerHost:%d GetRetries:%d CollectionID:%d}",
		c.Hostname, c.Port, c.APIPath, c.Username, set(c.Password), c.Domain, c.ClientID, set(c.ClientSecret), c.TokenURL,
		c.Scopes, c.Audience, set(c.AccessToken), set(c.CACert), c.SkipVerify, c.Timeout, c.MaxConnsPerHost, c.GetRetries, c.CollectionID)
}

// GoString is String, so that %#v does not print secrets either.
func (c Config) GoString() string { return c.String() }

// LogValue keeps secrets out of structured logs.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Client talks to one Command server. It is safe for concurrent use.
type Client struct {
	base      string // "https://host:443/KeyfactorAPI"
	hc        *http.Client
	auth      authenticator
	secrets   []string
	timeout   time.Duration
	retries   int
	limiter   *rate.Limiter
	log       *slog.Logger
	userAgent string
	// collection is Config.CollectionID, 0 for none.
	collection int

	// now and sleep are swapped by tests to drive time.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// New validates cfg and builds a Client. It does not contact the server;
// call StatusEndpoints to check the connection and credentials. Errors name
// the environment variable to fix and what is expected.
func New(cfg Config) (*Client, error) {
	base, err := baseURL(cfg.Hostname, cfg.Port, cfg.APIPath)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("KEYFACTOR_CLIENT_TIMEOUT: must not be negative, got %s", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.CollectionID < 0 {
		return nil, fmt.Errorf("collection id must not be negative, got %d", cfg.CollectionID)
	}
	if cfg.MaxConnsPerHost < 0 {
		return nil, fmt.Errorf("max connections per host must not be negative, got %d", cfg.MaxConnsPerHost)
	}
	if cfg.MaxConnsPerHost == 0 {
		cfg.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	switch {
	case cfg.GetRetries == 0:
		cfg.GetRetries = DefaultGetRetries
	case cfg.GetRetries < 0:
		cfg.GetRetries = 0
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tc, err := tlsConfig(&cfg)
	if err != nil {
		return nil, err
	}
	tr := newTransport(tc, cfg.MaxConnsPerHost, cfg.Timeout)
	tokenClient := &http.Client{Transport: tr, Timeout: cfg.Timeout}
	auth, err := newAuthenticator(&cfg, tokenClient)
	if err != nil {
		return nil, err
	}
	if cfg.SkipVerify {
		log.Warn("TLS certificate verification is off (KEYFACTOR_SKIP_VERIFY): the connection to Command can be intercepted", "base_url", base)
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	c := &Client{
		base: base,
		hc: &http.Client{
			Transport: tr,
			// A redirect would turn a POST into a GET and usually points
			// at a login page: report it instead of following it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		auth:       auth,
		secrets:    secretsOf(cfg),
		timeout:    cfg.Timeout,
		retries:    cfg.GetRetries,
		limiter:    cfg.Limiter,
		log:        log,
		userAgent:  ua,
		collection: cfg.CollectionID,
		now:        time.Now,
		sleep:      Sleep,
	}
	return c, nil
}

// BaseURL returns the URL every endpoint is relative to, e.g.
// "https://host:443/KeyfactorAPI".
func (c *Client) BaseURL() string { return c.base }

// Identity names who the client acts as, for logs: "DOMAIN\user",
// "oauth client <id>" or "bearer token".
func (c *Client) Identity() string { return c.auth.identity() }

// String describes the client without secrets.
func (c *Client) String() string {
	return "keyfactor client " + c.base + " as " + c.Identity()
}

func secretsOf(cfg Config) []string {
	var s []string
	for _, v := range []string{cfg.Password, cfg.ClientSecret, cfg.AccessToken} {
		if v != "" {
			s = append(s, v)
		}
	}
	return s
}

// newTransport builds the keep-alive pool shared by API and token requests.
func newTransport(tc *tls.Config, maxConns int, timeout time.Duration) *http.Transport {
	dialTimeout := min(timeout, 30*time.Second)
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   dialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: dialTimeout,
		// HTTP/1.1 on a pool of keep-alive connections, even to a server
		// that offers HTTP/2: each request is one write and one read on
		// its own connection, where HTTP/2 multiplexes every request over
		// one connection through extra goroutines, frames and flushes. At
		// runner's concurrency that cost more CPU on both ends (a fifth of
		// the simulator's per request, BENCHMARKS.md) for nothing gained.
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxConnsPerHost:     maxConns,
		MaxIdleConnsPerHost: maxConns,
		MaxIdleConns:        maxConns,
		// Shorter than IIS's default connection timeout (120s), so the
		// client rarely writes a request into a connection the server is
		// closing: such a request could not be told apart from a lost one.
		IdleConnTimeout:       60 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// baseURL builds "scheme://host:port/apiPath" from the Hostname, Port and
// APIPath settings.
func baseURL(hostname string, port int, apiPath string) (string, error) {
	const expected = "expected a host name, host:port or https:// URL, e.g. keyfactor.example.com"
	h := strings.TrimSpace(hostname)
	if h == "" {
		return "", errors.New("KEYFACTOR_HOSTNAME is not set: " + expected)
	}
	scheme, host, hostPort := "https", "", ""
	if strings.Contains(h, "://") {
		u, err := url.Parse(h)
		if err != nil {
			return "", fmt.Errorf("KEYFACTOR_HOSTNAME %q: %s", h, expected)
		}
		if u.User != nil {
			// Do not echo the value: it holds credentials.
			return "", errors.New("KEYFACTOR_HOSTNAME must not contain credentials: " + expected + "; set KEYFACTOR_USERNAME and KEYFACTOR_PASSWORD instead")
		}
		scheme = strings.ToLower(u.Scheme)
		if scheme != "https" && scheme != "http" {
			return "", fmt.Errorf("KEYFACTOR_HOSTNAME %q: unsupported scheme %q: %s", h, u.Scheme, expected)
		}
		if u.Path != "" && u.Path != "/" {
			return "", fmt.Errorf("KEYFACTOR_HOSTNAME %q has a path: %s; put the path (e.g. KeyfactorAPI) in KEYFACTOR_API_PATH", h, expected)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Errorf("KEYFACTOR_HOSTNAME %q has a query or fragment: %s", h, expected)
		}
		host, hostPort = u.Hostname(), u.Port()
	} else {
		if strings.ContainsAny(h, "/?#@") {
			return "", fmt.Errorf("KEYFACTOR_HOSTNAME %q: %s; put the path in KEYFACTOR_API_PATH", h, expected)
		}
		switch hh, pp, err := net.SplitHostPort(h); {
		case err == nil:
			host, hostPort = hh, pp
		case net.ParseIP(strings.Trim(h, "[]")) != nil:
			host = strings.Trim(h, "[]") // a bare IPv6 address
		case !strings.Contains(h, ":"):
			host = h
		default:
			return "", fmt.Errorf("KEYFACTOR_HOSTNAME %q: %s", h, expected)
		}
	}
	if host == "" || strings.ContainsAny(host, " \t/\\@") {
		return "", fmt.Errorf("KEYFACTOR_HOSTNAME %q: %s", h, expected)
	}
	if scheme == "http" && !isLoopback(host) {
		return "", fmt.Errorf("KEYFACTOR_HOSTNAME %q: plain http is only allowed for loopback hosts (localhost, 127.0.0.0/8, ::1): use https://", h)
	}
	if hostPort != "" {
		n, err := strconv.Atoi(hostPort)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("KEYFACTOR_HOSTNAME %q: port must be 1-65535", h)
		}
		if port != 0 && port != n {
			return "", fmt.Errorf("KEYFACTOR_PORT %d disagrees with the port %d in KEYFACTOR_HOSTNAME %q: set one", port, n, h)
		}
		port = n
	}
	switch {
	case port < 0 || port > 65535:
		return "", fmt.Errorf("KEYFACTOR_PORT %d: expected 1-65535", port)
	case port == 0 && scheme == "http":
		port = 80
	case port == 0:
		port = 443
	}
	p := strings.Trim(strings.TrimSpace(apiPath), "/")
	if p == "" {
		p = DefaultAPIPath
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." || seg != url.PathEscape(seg) {
			return "", fmt.Errorf("KEYFACTOR_API_PATH %q: expected a path such as KeyfactorAPI or Keyfactor/API", apiPath)
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(host), strconv.Itoa(port)) + "/" + p, nil
}

// isLoopback reports whether host is localhost or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// request is one API call: a route template for errors and logs, the
// concrete path, and the body and destination of the JSON.
type request struct {
	method   string
	endpoint string // route template, e.g. "/Certificates/{id}"
	path     string // concrete path below the base URL
	query    url.Values
	body     any // marshalled to JSON if not nil
	out      any // pointer the 2xx body is decoded into
	secrets  []string
	// header, if not nil, receives the headers of a 2xx answer.
	header *http.Header
}

// do sends r, repeating a GET after failures that are not Permanent. A
// 401 to a refreshable credential (an OAuth token) drops that token and
// sends the request once more with a new one, even a POST: a 401 means
// Command did not process the request.
func (c *Client) do(ctx context.Context, r request) error {
	var payload []byte
	if r.body != nil {
		var err error
		if payload, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("%s %s: encode request: %w", r.method, r.endpoint, err)
		}
	}
	attempts := 1
	if r.method == http.MethodGet {
		// A GET changes nothing, so even a maybe-processed failure may be
		// repeated.
		attempts += c.retries
	}
	refreshed := false
	for attempt := 1; ; attempt++ {
		used, err := c.once(ctx, r, payload, attempt)
		if !refreshed && statusOf(err) == http.StatusUnauthorized {
			if rf, ok := c.auth.(refresher); ok && rf.drop(used) {
				refreshed = true
				c.log.Debug("keyfactor token refused, fetching a new one", "method", r.method, "endpoint", r.endpoint)
				attempt--
				continue
			}
		}
		if err == nil || attempt >= attempts || Classify(err) == Permanent || ctx.Err() != nil {
			return err
		}
		wait := RetryAfterOf(err)
		if wait > maxRetryAfter {
			return err
		}
		if wait == 0 {
			wait = Backoff(attempt)
		}
		c.log.Debug("keyfactor retry", "method", r.method, "endpoint", r.endpoint, "attempt", attempt, "wait", wait, "class", Classify(err))
		if werr := c.sleep(ctx, wait); werr != nil {
			return fmt.Errorf("%w (gave up waiting to retry: %w)", err, werr)
		}
	}
}

// statusOf returns the HTTP status of an APIError from Command itself (not
// from the token endpoint), 0 otherwise.
func statusOf(err error) int {
	var te *TransportError
	if errors.As(err, &te) {
		return 0
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// Backoff is the wait before retry n (1-based) when the server named none
// (no Retry-After): exponential with jitter, so that many workers do not
// retry in step. The runner uses it for Renew and Deploy too.
func Backoff(n int) time.Duration {
	d := backoffBase << min(n-1, 10)
	d = min(d, backoffMax)
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d, or until ctx ends, whichever comes first. The client
// waits with it between GET retries; callers that retry Renew and Deploy
// wait with it too, so every wait in runner honours cancellation.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// once sends r one time and decodes the answer. It returns the credential
// the request carried (see authenticator.apply).
func (c *Client) once(ctx context.Context, r request, payload []byte, attempt int) (string, error) {
	terr := func(sent bool, err error) error {
		return &TransportError{Method: r.method, Endpoint: r.endpoint, Sent: sent, Err: err}
	}
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return "", terr(false, fmt.Errorf("wait for rate limit: %w", err))
		}
	}
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var sent atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		// Counted as sent even if the write failed part way: whether the
		// server saw enough to act on cannot be known.
		WroteRequest: func(httptrace.WroteRequestInfo) { sent.Store(true) },
	})
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, r.method, u, body)
	if err != nil {
		return "", fmt.Errorf("%s %s: build request: %w", r.method, r.endpoint, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("x-keyfactor-requested-with", "APIClient")
	req.Header.Set("x-keyfactor-api-version", "1")
	req.Header.Set("User-Agent", c.userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	used, err := c.auth.apply(actx, req)
	if err != nil {
		return "", terr(false, err)
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		err = c.explain(ctx, actx, err)
		c.log.Debug("keyfactor request failed", "method", r.method, "endpoint", r.endpoint, "attempt", attempt,
			"duration", time.Since(start), "sent", sent.Load(), "error", err)
		return used, terr(sent.Load(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	c.log.Debug("keyfactor request", "method", r.method, "endpoint", r.endpoint, "attempt", attempt,
		"status", resp.StatusCode, "duration", time.Since(start))
	if err != nil {
		return used, terr(true, fmt.Errorf("read HTTP %d response: %w", resp.StatusCode, c.explain(ctx, actx, err)))
	}
	if len(data) > maxBody {
		return used, &APIError{Method: r.method, Endpoint: r.endpoint, Status: resp.StatusCode,
			Message: fmt.Sprintf("response body larger than %d MiB", maxBody>>20)}
	}
	secrets := c.secrets
	if len(r.secrets) > 0 {
		secrets = append(append([]string(nil), c.secrets...), r.secrets...)
	}
	err = decodeResponse(r.method, r.endpoint, resp.StatusCode, resp.Header, data, r.out, c.now(), secrets)
	if err == nil && r.header != nil {
		*r.header = resp.Header
	}
	return used, err
}

// explain replaces the generic error of an expired per-request timeout with
// one that says so, and strips the *url.Error wrapper: its URL is already
// named by the endpoint.
func (c *Client) explain(ctx, actx context.Context, err error) error {
	if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no complete answer within %s: %w", c.timeout, context.DeadlineExceeded)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// decodeResponse turns one HTTP answer into nil (2xx, decoded into out) or
// an *APIError. It never panics on any input (see FuzzDecodeResponse).
func decodeResponse(method, endpoint string, status int, header http.Header, body []byte, out any, now time.Time, secrets []string) error {
	if status < 200 || status > 299 {
		return newAPIError(method, endpoint, status, header, body, now, secrets)
	}
	if out == nil {
		return nil
	}
	bad := func(msg string) error {
		return &APIError{Method: method, Endpoint: endpoint, Status: status,
			Message: msg, Snippet: snippet(body, secrets)}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return bad("empty response body, expected JSON")
	}
	if _, list := out.(bodyDecoder); bytes.Equal(trimmed, []byte("null")) && !list && reflect.TypeOf(out).Elem().Kind() != reflect.Slice {
		// A null object would decode into a zero value that looks real
		// (a certificate with Id 0).
		return bad("response body is null, expected a JSON object")
	}
	var err error
	if bd, ok := out.(bodyDecoder); ok {
		err = bd.decodeBody(trimmed)
	} else if u, ok := out.(json.Unmarshaler); ok && validJSON(trimmed) {
		// What json.Unmarshal would call, without its second scan of the
		// body; invalid JSON still gets encoding/json's error below.
		err = u.UnmarshalJSON(trimmed)
	} else {
		err = json.Unmarshal(trimmed, out)
	}
	if err != nil {
		return bad("undecodable JSON body: " + oneLine(err.Error(), 200))
	}
	return nil
}
