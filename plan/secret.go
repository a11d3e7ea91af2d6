package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Kinds of SecretRef.
const (
	SecretEnv     = "env"
	SecretFile    = "file"
	SecretLiteral = "literal"
)

// SecretRef says where a password comes from. The plan holds references,
// not passwords, so that plans can be committed and reports can repeat the
// cell. A literal password (only with Options.AllowPlainPasswords) is the one
// exception, and this package is its only owner: the value is kept behind an
// unexported pointer to a string type, which fmt prints as an address under
// every verb and at every depth (even when it prints raw fields, as it does
// for a struct of another package that holds a Row or Job in an unexported
// field), which encoding/json, encoding/gob and encoding/xml skip, and which
// only Resolve reads. Row.Values never hold it, and Writer never writes it.
//
// SecretRefs of one plan compare equal with == when they are the same
// reference, literals included (Parse keeps one copy of each literal).
type SecretRef struct {
	// Kind is "env", "file", "literal", or "" when there is no password.
	Kind string
	// Ref is the environment variable name or the file path; "" for a
	// literal.
	Ref string

	literal *literal
}

// literal holds a literal password. It must stay a pointer to a non-struct
// type: fmt dereferences a pointer to a struct when it prints raw fields.
// Its methods redact too, for tools that reach unexported fields by other
// means than fmt (debuggers' pretty printers, go-spew).
type literal string

func (*literal) String() string                { return redacted }
func (*literal) GoString() string              { return redacted }
func (*literal) Format(f fmt.State, verb rune) { io.WriteString(f, redacted) }
func (*literal) MarshalText() ([]byte, error)  { return []byte(redacted), nil }

func newLiteral(s string) *literal { l := literal(s); return &l }

const redacted = "(redacted)"

// IsZero reports whether no password was given.
func (s SecretRef) IsZero() bool { return s.Kind == "" }

// String returns "env:NAME", "file:PATH", "(literal password)" or "".
func (s SecretRef) String() string {
	switch s.Kind {
	case "":
		return ""
	case SecretEnv, SecretFile:
		return s.Kind + ":" + s.Ref
	case SecretLiteral:
		return "(literal password)"
	default:
		// Not made by this package; say only the kind.
		return "(" + s.Kind + ")"
	}
}

// GoString is used by %#v; it shows the reference but never a literal.
func (s SecretRef) GoString() string {
	ref := s.Ref
	if s.Kind != SecretEnv && s.Kind != SecretFile {
		ref = ""
	}
	return fmt.Sprintf("plan.SecretRef{Kind:%q, Ref:%q}", s.Kind, ref)
}

// Format makes every fmt verb (%v, %+v, %s, %q, %x, ...) print String, and
// %#v print GoString.
func (s SecretRef) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		io.WriteString(f, s.GoString())
	case verb == 'q':
		io.WriteString(f, strconv.Quote(s.String()))
	default:
		io.WriteString(f, s.String())
	}
}

// MarshalText returns String, so encodings that use it (JSON map keys, TOML,
// YAML) show the reference and never a literal.
func (s SecretRef) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON returns String as a JSON string.
func (s SecretRef) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// ReadSecretFile reads a secret kept in a file (an entry password, or
// runner's own --password-file): the file's bytes without the one line end
// an editor or `echo` leaves (LF or CRLF); any other byte may be part of
// the secret. An empty secret is refused. Errors name the path, never the
// contents.
func ReadSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err // a *PathError: the path and the cause
	}
	v := string(b)
	if t, ok := strings.CutSuffix(v, "\n"); ok {
		v = strings.TrimSuffix(t, "\r")
	}
	if v == "" {
		return "", fmt.Errorf("file %s is empty", path)
	}
	return v, nil
}

// Resolve returns the password: the value of the environment variable (which
// must be set and non-empty), the file's secret as ReadSecretFile reads it
// (one line end taken off, an empty one refused), or the literal. Errors name the variable or the path, never the
// value. A zero SecretRef resolves to "".
func (s SecretRef) Resolve() (string, error) {
	switch s.Kind {
	case "":
		return "", nil
	case SecretEnv:
		v, ok := os.LookupEnv(s.Ref)
		if !ok {
			return "", fmt.Errorf("password: environment variable %s is not set", s.Ref)
		}
		if v == "" {
			return "", fmt.Errorf("password: environment variable %s is empty", s.Ref)
		}
		return v, nil
	case SecretFile:
		v, err := ReadSecretFile(s.Ref)
		if err != nil {
			return "", fmt.Errorf("password: %w", err)
		}
		return v, nil
	case SecretLiteral:
		if s.literal == nil {
			return "", fmt.Errorf("password: literal reference without a value (expected one read from a plan)")
		}
		return string(*s.literal), nil
	default:
		return "", fmt.Errorf("password: unknown reference kind %q (expected env or file)", s.Kind)
	}
}

// parseSecretRef reads a password cell: env:NAME, file:PATH, or (when
// allowed) a literal. Its errors never contain the cell, since a mistyped
// reference may well be the password itself.
// A literal keeps its surrounding spaces; references are trimmed.
func parseSecretRef(cell string, allowLiteral bool) (SecretRef, error) {
	trimmed := strings.TrimSpace(cell)
	if trimmed == "" {
		return SecretRef{}, nil
	}
	kind, ref, found := strings.Cut(trimmed, ":")
	if found {
		switch strings.ToLower(kind) {
		case SecretEnv:
			if !validEnvName(ref) {
				return SecretRef{}, &valueError{
					problem:  "env: reference without a valid variable name",
					expected: "env:NAME where NAME is letters, digits and _, not starting with a digit",
				}
			}
			return SecretRef{Kind: SecretEnv, Ref: ref}, nil
		case SecretFile:
			if strings.TrimSpace(ref) == "" {
				return SecretRef{}, &valueError{
					problem:  "file: reference without a path",
					expected: "file:PATH naming a file that holds the password",
				}
			}
			return SecretRef{Kind: SecretFile, Ref: ref}, nil
		}
	}
	if !allowLiteral {
		return SecretRef{}, &valueError{
			problem:  "a literal password is not allowed",
			expected: "env:NAME or file:PATH, or pass --allow-plain-passwords",
		}
	}
	return SecretRef{Kind: SecretLiteral, literal: newLiteral(cell)}, nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
