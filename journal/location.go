package journal

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// StateDir returns the directory of the default state files:
// $RUNNER_STATE_DIR when set; else /var/lib/runner when run as root (a
// system service); else the user's state directory, $XDG_STATE_HOME/runner
// or ~/.local/state/runner (XDG Base Directory Specification). Open creates
// it (0700) when it does not exist.
func StateDir() (string, error) {
	return stateDir(os.Getenv, os.Geteuid(), os.UserHomeDir)
}

func stateDir(getenv func(string) string, euid int, home func() (string, error)) (string, error) {
	if d := getenv("RUNNER_STATE_DIR"); d != "" {
		// Absolute, so the refusal of a locked file names it wherever
		// the run was started.
		abs, err := filepath.Abs(d)
		if err != nil {
			return "", fmt.Errorf("state directory $RUNNER_STATE_DIR %q: %w", d, err)
		}
		return abs, nil
	}
	if euid == 0 {
		return "/var/lib/runner", nil
	}
	// The specification says a relative $XDG_STATE_HOME is invalid and
	// is to be ignored.
	if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "runner"), nil
	}
	h, err := home()
	if err != nil {
		return "", fmt.Errorf("find the state directory (set RUNNER_STATE_DIR): %w", err)
	}
	return filepath.Join(h, ".local", "state", "runner"), nil
}

// DefaultPath returns the default state file of a Command: in StateDir, a
// name made from the host, port and API path of command, e.g.
// "command.example.com_443_keyfactorapi.db" for
// https://command.example.com/KeyfactorAPI. The path is lower-cased, like
// the identity check Open makes: Command is served by IIS, which does not
// tell /KeyfactorAPI from /keyfactorapi, and the same Command must never
// get two files.
func DefaultPath(command string) (string, error) {
	cmd, err := parseCommand(command)
	if err != nil {
		return "", err
	}
	dir, err := StateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, cmd.fileName()), nil
}

// commandURL is a Command API base URL reduced to what identifies the
// Command: no user information (never a secret in the file), query or
// fragment; a port always; no trailing slash.
type commandURL struct {
	scheme, host, port, path string
}

func parseCommand(s string) (commandURL, error) {
	const want = "want the API's base URL, such as https://command.example.com/KeyfactorAPI"
	if strings.TrimSpace(s) == "" {
		return commandURL{}, fmt.Errorf("no Command URL: %s", want)
	}
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		// url.Error repeats the whole input, which may carry a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return commandURL{}, fmt.Errorf("bad Command URL: %v: %s", err, want)
	}
	c := commandURL{scheme: u.Scheme, host: strings.ToLower(u.Hostname()), port: u.Port(), path: strings.TrimRight(u.EscapedPath(), "/")}
	if c.port == "" {
		switch c.scheme {
		case "https":
			c.port = "443"
		case "http":
			c.port = "80"
		}
	}
	if (c.scheme != "https" && c.scheme != "http") || c.host == "" {
		return commandURL{}, fmt.Errorf("bad Command URL %s: %s", u.Redacted(), want)
	}
	return c, nil
}

// String is the form recorded in the file, e.g.
// "https://command.example.com:443/KeyfactorAPI".
func (c commandURL) String() string {
	return c.scheme + "://" + net.JoinHostPort(c.host, c.port) + c.path
}

// same reports whether recorded (a String of an earlier Open) names c.
func (c commandURL) same(recorded string) bool {
	return strings.EqualFold(c.String(), recorded)
}

// fileName is host_port_path-segments.db with every character outside
// [a-z0-9.-] replaced by "-", so "_" only ever separates the parts.
func (c commandURL) fileName() string {
	parts := []string{safeName(c.host), c.port}
	for _, seg := range strings.Split(strings.ToLower(c.path), "/") {
		if seg != "" {
			parts = append(parts, safeName(seg))
		}
	}
	return strings.Join(parts, "_") + ".db"
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}
