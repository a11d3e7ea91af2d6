package plan

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
)

// leaks reports whether s shows the test password in any spelling fmt or
// an encoder could produce.
func leaks(s string) bool {
	for _, form := range []string{"hunter2", "68756e74657232", "68 75 6e 74 65 72 32", "aHVudGVyMg", "104 117 110"} {
		if strings.Contains(s, form) {
			return true
		}
	}
	return false
}

func TestLiteralPasswordIsNeverShown(t *testing.T) {
	text := "certificate_id,store_id,password\n1," + guidA + ",hunter2\n1," + guidB + ",hunter2\n"
	p, err := parseString(t, text, Options{AllowPlainPasswords: true})
	if err != nil {
		t.Fatal(err)
	}
	row, job := p.Rows[0], p.Jobs[0]
	if pw, err := job.Password.Resolve(); err != nil || pw != "hunter2" {
		t.Fatalf("the job's password resolves to something else (%v)", err)
	}
	for _, r := range p.Rows {
		if got := r.Values[2]; got != "" {
			t.Errorf("line %d: Values holds the literal password cell", r.Line)
		}
	}
	if p.Rows[0].Password != p.Rows[1].Password {
		t.Errorf("two rows with the same literal password do not compare equal")
	}

	// Values of plan types, and of other packages' types that hold them by
	// value behind unexported fields: fmt cannot call methods there, and
	// under a verb that does not fit it prints the raw fields.
	type hidden struct {
		row  Row
		job  Job
		refs []SecretRef
		plan *Plan
	}
	values := map[string]any{
		"SecretRef": row.Password, "*SecretRef": &row.Password,
		"Row": *row, "*Row": row, "Job": *job, "*Job": job, "Plan": *p, "*Plan": p,
		"[]*Row": p.Rows, "[]*Job": p.Jobs,
		"unexported fields":  hidden{*row, *job, []SecretRef{row.Password}, p},
		"*unexported fields": &hidden{*row, *job, []SecretRef{row.Password}, p},
		"map":                map[string]any{"job": *job},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "% x", "%d", "%T", "%p", "%10v", "%-20s", "%t", "%U", "%c", "%o", "%b", "%e"}
	for name, v := range values {
		for _, verb := range verbs {
			if got := fmt.Sprintf(verb, v); leaks(got) {
				t.Errorf("%s of %s prints the password: %s", verb, name, got)
			}
		}
		if got := fmt.Sprint(v) + fmt.Sprintln(v); leaks(got) {
			t.Errorf("Sprint of %s prints the password: %s", name, got)
		}
		b, err := json.Marshal(v)
		if err != nil {
			if name != "unexported fields" && name != "*unexported fields" {
				t.Errorf("json of %s: %v", name, err)
			}
		} else if leaks(string(b)) {
			t.Errorf("json of %s shows the password: %s", name, b)
		}
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(row.Password); err == nil && leaks(buf.String()) {
		t.Errorf("gob shows the password")
	}
	if b, err := xml.Marshal(xmlRow{P: row.Password}); err != nil || leaks(string(b)) {
		t.Errorf("xml: %s, %v", b, err)
	}
}

type xmlRow struct{ P SecretRef }

func TestSecretRefEncodings(t *testing.T) {
	lit := SecretRef{Kind: SecretLiteral, literal: newLiteral("hunter2")}
	env := SecretRef{Kind: SecretEnv, Ref: "PEM_PASS"}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"literal String", lit.String(), "(literal password)"},
		{"literal %#v", fmt.Sprintf("%#v", lit), `plan.SecretRef{Kind:"literal", Ref:""}`},
		{"literal %q", fmt.Sprintf("%q", lit), `"(literal password)"`},
		{"literal json", mustJSON(t, lit), `"(literal password)"`},
		{"literal json map key", mustJSON(t, map[SecretRef]int{lit: 1}), `{"(literal password)":1}`},
		{"env all verbs", fmt.Sprintf("%v|%s|%q|%x|%#v", env, env, env, env, env), `env:PEM_PASS|env:PEM_PASS|"env:PEM_PASS"|env:PEM_PASS|plan.SecretRef{Kind:"env", Ref:"PEM_PASS"}`},
		{"env json", mustJSON(t, env), `"env:PEM_PASS"`},
		{"zero json", mustJSON(t, SecretRef{}), `""`},
		{"unknown kind", fmt.Sprintf("%v %#v", SecretRef{Kind: "vault", Ref: "hunter2"}, SecretRef{Kind: "vault", Ref: "hunter2"}), `(vault) plan.SecretRef{Kind:"vault", Ref:""}`},
		{"the literal's own methods", fmt.Sprintf("%v %s %#v %x", lit.literal, lit.literal, lit.literal, lit.literal), "(redacted) (redacted) (redacted) (redacted)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %s, want %s", tt.name, tt.got, tt.want)
		}
	}
	if text, err := lit.MarshalText(); err != nil || string(text) != "(literal password)" {
		t.Errorf("MarshalText = %s, %v", text, err)
	}
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
