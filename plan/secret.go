package plan

import (
	"fmt"
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
// cell; a literal value is only held when Options.AllowPlainPasswords is set,
// and SecretRef never prints it: String, GoString and Format all redact it.
type SecretRef struct {
	// Kind is "env", "file", "literal", or "" when there is no password.
	Kind string
	// Ref is the environment variable name, the file path, or for a literal
	// the password itself.
	Ref string
}

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
		// An unknown kind might carry anything in Ref; say only the kind.
		return "(" + s.Kind + ")"
	}
}

// GoString is used by %#v; it shows the reference but never a literal value.
func (s SecretRef) GoString() string {
	ref := s.Ref
	if s.Kind != SecretEnv && s.Kind != SecretFile && s.Ref != "" {
		ref = "(redacted)"
	}
	return fmt.Sprintf("plan.SecretRef{Kind:%q, Ref:%q}", s.Kind, ref)
}

// Format makes every fmt verb (%v, %+v, %s, %q, %x, ...) print String, and
// %#v print GoString, so a literal password cannot leak through fmt.
func (s SecretRef) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, s.GoString())
	case verb == 'q':
		fmt.Fprint(f, strconv.Quote(s.String()))
	default:
		fmt.Fprint(f, s.String())
	}
}

// Resolve returns the password: the value of the environment variable (which
// must be set and non-empty), the file's contents without one trailing
// newline, or the literal. Errors name the variable or the path, never the
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
		b, err := os.ReadFile(s.Ref)
		if err != nil {
			// The *PathError names the path and the cause, never contents.
			return "", fmt.Errorf("password: %w", err)
		}
		v := string(b)
		if t, ok := strings.CutSuffix(v, "\n"); ok {
			v = strings.TrimSuffix(t, "\r")
		}
		if v == "" {
			return "", fmt.Errorf("password: file %s is empty", s.Ref)
		}
		return v, nil
	case SecretLiteral:
		return s.Ref, nil
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
	return SecretRef{Kind: SecretLiteral, Ref: cell}, nil
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
