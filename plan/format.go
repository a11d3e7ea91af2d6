package plan

import (
	"fmt"
	"io"
	"strings"
)

// Row and Job hold a SecretRef, whose Format redacts literal passwords. fmt
// skips Format methods while it prints a value under a verb that does not
// fit it (say %s of a *Row inside a Job), and would then show the literal;
// formatting Row and Job through method-less copies of themselves keeps
// every path through fmt on SecretRef.Format.

type rowFields Row
type jobFields Job

// Format prints the row as fmt would, with the password redacted.
func (r Row) Format(f fmt.State, verb rune) {
	formatAs(f, verb, rowFields(r), "plan.rowFields", "plan.Row")
}

// Format prints the job as fmt would, with the password redacted.
func (j Job) Format(f fmt.State, verb rune) {
	formatAs(f, verb, jobFields(j), "plan.jobFields", "plan.Job")
}

func formatAs(f fmt.State, verb rune, v any, shadow, name string) {
	s := fmt.Sprintf(fmt.FormatString(f, verb), v)
	if verb == 'v' && f.Flag('#') {
		s = name + strings.TrimPrefix(s, shadow)
	}
	io.WriteString(f, s)
}
