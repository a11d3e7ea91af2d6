package keyfactor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// authenticator sets the Authorization header of one request.
type authenticator interface {
	// apply authorises req and returns the credential it used, so that a
	// 401 can be pinned on exactly that credential (see refresher).
	apply(ctx context.Context, req *http.Request) (string, error)
	// identity names who the client acts as, without secrets (for logs).
	identity() string
}

// refresher is an authenticator whose credential can be fetched anew:
// drop forgets the credential a refused request used, unless another
// request has already replaced it, and reports whether asking again can
// bring a different one.
type refresher interface {
	drop(used string) bool
}

// basicAuth is Active Directory Basic authentication: "DOMAIN\user:password".
type basicAuth struct {
	user     string // "DOMAIN\user", or "user" without a domain
	password string
}

func (a *basicAuth) apply(_ context.Context, req *http.Request) (string, error) {
	req.SetBasicAuth(a.user, a.password)
	return "", nil
}

func (a *basicAuth) identity() string { return a.user }

// bearerAuth sends a ready-made access token.
type bearerAuth struct{ token string }

func (a *bearerAuth) apply(_ context.Context, req *http.Request) (string, error) {
	req.Header.Set("Authorization", "Bearer "+a.token)
	return "", nil
}

func (a *bearerAuth) identity() string { return "bearer token" }

// oauthAuth fetches tokens with the client credentials grant and keeps the
// current one until it expires or Command refuses it.
type oauthAuth struct {
	clientID string
	secret   string // only to mask it if the token endpoint echoes it
	tokenURL string // for error messages; holds no secret
	config   *clientcredentials.Config
	client   *http.Client // reaches the token URL

	mu  sync.Mutex // held while a token is fetched, so one fetch serves all
	tok *oauth2.Token
}

func (a *oauthAuth) apply(ctx context.Context, req *http.Request) (string, error) {
	tok, err := a.token(ctx)
	if err != nil {
		return "", fmt.Errorf("get oauth token: %w", a.tokenError(err))
	}
	tok.SetAuthHeader(req)
	return tok.AccessToken, nil
}

// token returns the current token, fetching one if there is none or it
// is about to expire.
func (a *oauthAuth) token(ctx context.Context) (*oauth2.Token, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tok.Valid() {
		return a.tok, nil
	}
	tok, err := a.config.Token(context.WithValue(ctx, oauth2.HTTPClient, a.client))
	if err != nil {
		return nil, err
	}
	a.tok = tok
	return tok, nil
}

// drop forgets the token used if it is still the current one. Command
// refuses a token before its stated expiry when it was revoked, when the
// server's clock runs ahead, or after a restart of the identity provider;
// a new one may be accepted.
func (a *oauthAuth) drop(used string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tok != nil && a.tok.AccessToken == used {
		a.tok = nil
	}
	return used != ""
}

func (a *oauthAuth) identity() string { return "oauth client " + a.clientID }

// tokenError turns a token endpoint refusal into an APIError, built from the
// parsed fields only: oauth2.RetrieveError's own text quotes the raw body.
func (a *oauthAuth) tokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err
	}
	e := &APIError{Method: http.MethodPost, Endpoint: a.tokenURL, Code: oneLine(redact(re.ErrorCode, []string{a.secret}), 64),
		Message: oneLine(redact(re.ErrorDescription, []string{a.secret}), maxMessage)}
	if re.Response != nil {
		e.Status = re.Response.StatusCode
		e.RetryAfter = parseRetryAfter(re.Response.Header.Get("Retry-After"), time.Now())
	}
	if e.Code == "" && e.Message == "" {
		e.Snippet = snippet(re.Body, []string{a.secret})
	}
	return e
}

// newAuthenticator checks that cfg names exactly one complete way to
// authenticate and builds it. tokenClient is used to reach the token URL.
// Errors name the environment variables an operator sets.
func newAuthenticator(cfg *Config, tokenClient *http.Client) (authenticator, error) {
	scopes := cleanScopes(cfg.Scopes)
	basic := cfg.Username != "" || cfg.Password != ""
	oauth := cfg.ClientID != "" || cfg.ClientSecret != "" || cfg.TokenURL != ""
	bearer := cfg.AccessToken != ""
	var modes []string
	if basic {
		modes = append(modes, "Basic (KEYFACTOR_USERNAME/KEYFACTOR_PASSWORD)")
	}
	if oauth {
		modes = append(modes, "OAuth2 (KEYFACTOR_AUTH_CLIENT_ID/KEYFACTOR_AUTH_CLIENT_SECRET/KEYFACTOR_AUTH_TOKEN_URL)")
	}
	if bearer {
		modes = append(modes, "bearer token (KEYFACTOR_AUTH_ACCESS_TOKEN)")
	}
	switch len(modes) {
	case 0:
		return nil, errors.New("no credentials: set KEYFACTOR_USERNAME and KEYFACTOR_PASSWORD (Basic), " +
			"KEYFACTOR_AUTH_CLIENT_ID, KEYFACTOR_AUTH_CLIENT_SECRET and KEYFACTOR_AUTH_TOKEN_URL (OAuth2), " +
			"or KEYFACTOR_AUTH_ACCESS_TOKEN (bearer token)")
	case 1:
	default:
		return nil, fmt.Errorf("more than one authentication method is set: %s; set exactly one", strings.Join(modes, ", "))
	}
	if !oauth && (len(scopes) > 0 || cfg.Audience != "") {
		return nil, errors.New("KEYFACTOR_AUTH_SCOPES and KEYFACTOR_AUTH_AUDIENCE are only used with OAuth2: set KEYFACTOR_AUTH_CLIENT_ID, KEYFACTOR_AUTH_CLIENT_SECRET and KEYFACTOR_AUTH_TOKEN_URL, or unset them")
	}
	switch {
	case basic:
		if cfg.Username == "" {
			return nil, errors.New("KEYFACTOR_PASSWORD is set but KEYFACTOR_USERNAME is not: Basic authentication needs both")
		}
		if cfg.Password == "" {
			return nil, errors.New("KEYFACTOR_USERNAME is set but KEYFACTOR_PASSWORD is not: Basic authentication needs both")
		}
		user, err := basicUser(cfg.Username, cfg.Domain)
		if err != nil {
			return nil, err
		}
		return &basicAuth{user: user, password: cfg.Password}, nil
	case bearer:
		if strings.ContainsAny(cfg.AccessToken, " \t\r\n") {
			return nil, errors.New("KEYFACTOR_AUTH_ACCESS_TOKEN contains whitespace: expected the bare access token, without \"Bearer \"")
		}
		return &bearerAuth{token: cfg.AccessToken}, nil
	}
	var missing []string
	if cfg.ClientID == "" {
		missing = append(missing, "KEYFACTOR_AUTH_CLIENT_ID")
	}
	if cfg.ClientSecret == "" {
		missing = append(missing, "KEYFACTOR_AUTH_CLIENT_SECRET")
	}
	if cfg.TokenURL == "" {
		missing = append(missing, "KEYFACTOR_AUTH_TOKEN_URL")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("OAuth2 client credentials are incomplete: %s not set", strings.Join(missing, ", "))
	}
	u, err := url.Parse(cfg.TokenURL)
	if err != nil || u.Host == "" || u.User != nil {
		return nil, errors.New("KEYFACTOR_AUTH_TOKEN_URL: expected an https:// URL without credentials, e.g. https://idp.example.com:8444/realms/Keyfactor/protocol/openid-connect/token")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("KEYFACTOR_AUTH_TOKEN_URL %q: plain http is only allowed for loopback hosts (localhost, 127.0.0.0/8, ::1): use https://", u.Redacted())
		}
	default:
		return nil, fmt.Errorf("KEYFACTOR_AUTH_TOKEN_URL %q: expected an https:// URL", u.Redacted())
	}
	cc := &clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		TokenURL:     cfg.TokenURL,
		Scopes:       scopes,
	}
	if cfg.Audience != "" {
		cc.EndpointParams = url.Values{"audience": {cfg.Audience}}
	}
	tokenURL := *u
	tokenURL.RawQuery, tokenURL.Fragment = "", ""
	return &oauthAuth{clientID: cfg.ClientID, secret: cfg.ClientSecret, tokenURL: tokenURL.String(), config: cc, client: tokenClient}, nil
}

// basicUser returns the user part of Basic credentials: "DOMAIN\user", or
// "user" without a domain. username may carry the domain itself as
// "DOMAIN\user" or "user@domain"; domain, if also set, must agree.
func basicUser(username, domain string) (string, error) {
	user, dom := username, ""
	if i := strings.IndexByte(username, '\\'); i >= 0 {
		dom, user = username[:i], username[i+1:]
	} else if i := strings.LastIndexByte(username, '@'); i >= 0 {
		user, dom = username[:i], username[i+1:]
	}
	if user == "" || (dom == "" && user != username) || strings.ContainsAny(user, "\\:") || strings.ContainsAny(dom, "\\:") {
		return "", fmt.Errorf("KEYFACTOR_USERNAME %q: expected user, DOMAIN\\user or user@domain", username)
	}
	domain = strings.TrimSpace(domain)
	switch {
	case dom == "":
		dom = domain
	case domain != "" && !strings.EqualFold(dom, domain):
		return "", fmt.Errorf("KEYFACTOR_USERNAME %q names domain %q but KEYFACTOR_DOMAIN is %q: set one or make them agree", username, dom, domain)
	}
	if strings.ContainsAny(dom, "\\:") {
		return "", fmt.Errorf("KEYFACTOR_DOMAIN %q: expected a domain name without \\ or :", domain)
	}
	if dom == "" {
		return user, nil
	}
	return dom + `\` + user, nil
}

// cleanScopes drops empty entries, so that splitting an empty
// KEYFACTOR_AUTH_SCOPES on commas does not ask for a scope named "".
func cleanScopes(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
