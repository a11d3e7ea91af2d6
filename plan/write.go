package plan

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
)

// Writer writes a plan as a stream: `#` comment lines anywhere, the header,
// and rows as they come, without holding them. What it writes, Parse reads
// back to the same values:
//   - a cell starting with =, +, -, @, a tab or a carriage return gets the
//     spreadsheet text escape ' (see the package documentation), so the
//     plan is safe to open in a spreadsheet;
//   - a first cell starting with # is quoted, so it is not read as a comment;
//   - a password cell that is not an env: or file: reference is written
//     empty: no plan written by this package holds a literal password.
//
// Output is buffered; Close flushes it. After an error writing the output,
// every call returns that error; a row refused for its cells (WriteRow,
// WriteNamed) is not written, and the Writer goes on.
type Writer struct {
	bw       *bufio.Writer
	cw       *csv.Writer
	columns  []string // canonical
	password int      // position of the password column, -1 if none
	header   bool     // written (or, when appending, already there)
	newline  string
	rows     int
	err      error
}

// NewWriter returns a Writer of a new plan with the given columns, which
// must be known column names (see Columns), each at most once. Nothing is
// written until the first call; the header comes before the first row, or
// at Close in a plan without rows, so comments written first stand above it.
func NewWriter(w io.Writer, columns []string) (*Writer, error) {
	canon := make([]string, len(columns))
	for i, c := range columns {
		canon[i] = canonicalColumn(c)
		if columnIndex(canon[i]) < 0 {
			return nil, fmt.Errorf("write plan: unknown column %q (expected one of %s)", c, strings.Join(Columns, ", "))
		}
		if slices.Index(canon[:i], canon[i]) >= 0 {
			return nil, fmt.Errorf("write plan: column %s given twice (expected each column at most once)", canon[i])
		}
	}
	if len(canon) == 0 {
		return nil, errors.New("write plan: no columns (expected at least store_id and certificate_id or thumbprint)")
	}
	return newWriter(w, canon, "\n"), nil
}

func newWriter(w io.Writer, columns []string, newline string) *Writer {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw) // writes into bw, which is large enough to be reused
	cw.UseCRLF = newline == "\r\n"
	return &Writer{bw: bw, cw: cw, columns: columns, password: slices.Index(columns, Columns[iPassword]), newline: newline}
}

// Comment writes text as comment lines, "# " and a line of text each ("#"
// for an empty line). A comment before the first row stands above the
// header.
func (w *Writer) Comment(text string) error {
	if w.err != nil {
		return w.err
	}
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if line == "" {
			w.bw.WriteString("#" + w.newline)
		} else {
			w.bw.WriteString("# " + line + w.newline)
		}
	}
	return w.fail(nil)
}

// WriteHeader writes the header now, so that comments written next stand
// between it and the first row. It does nothing if the header is written.
func (w *Writer) WriteHeader() error {
	if w.err != nil || w.header {
		return w.err
	}
	w.header = true
	return w.fail(w.cw.Write(w.columns))
}

// WriteRow writes one row, its cells in Columns order.
func (w *Writer) WriteRow(cells []string) error {
	if err := w.WriteHeader(); err != nil {
		return err
	}
	w.rows++
	if len(cells) != len(w.columns) {
		return fmt.Errorf("write plan row %d: %d cells for %d columns", w.rows, len(cells), len(w.columns))
	}
	out := make([]string, len(cells))
	for i, c := range cells {
		if i == w.password && !isReference(c) {
			c = ""
		}
		out[i] = EscapeCell(c)
	}
	if strings.HasPrefix(out[0], "#") {
		// encoding/csv would write this bare, and the reader would then
		// skip the line as a comment: quote it by hand, and let csv write
		// the rest after an empty first field.
		w.cw.Flush()
		w.bw.WriteString(`"` + strings.ReplaceAll(out[0], `"`, `""`) + `"`)
		if len(out) == 1 {
			w.bw.WriteString(w.newline)
			return w.fail(nil)
		}
		out[0] = ""
	}
	return w.fail(w.cw.Write(out))
}

// WriteNamed writes one row given by column name (canonical names, as in
// Columns). A name the plan has no column for is an error when its cell is
// not blank: an appended row must not lose a value silently.
func (w *Writer) WriteNamed(cells map[string]string) error {
	row := make([]string, len(w.columns))
	used := 0
	for _, name := range Columns {
		v, ok := cells[name]
		if !ok {
			continue
		}
		used++
		i := slices.Index(w.columns, name)
		if i < 0 {
			if strings.TrimSpace(v) != "" {
				return fmt.Errorf("write plan row %d: a %s value, but the plan has no %s column "+
					"(expected a plan with that column: add it to the header and an empty cell to each row, or leave it out of new rows)",
					w.rows+1, name, name)
			}
			continue
		}
		row[i] = v
	}
	if used != len(cells) {
		for name := range cells {
			if columnIndex(name) < 0 {
				return fmt.Errorf("write plan row %d: unknown column %q (expected one of %s)", w.rows+1, name, strings.Join(Columns, ", "))
			}
		}
	}
	return w.WriteRow(row)
}

// Flush writes buffered output to the underlying writer.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	w.cw.Flush()
	return w.fail(w.bw.Flush())
}

// Close writes the header if nothing did, and flushes. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if err := w.WriteHeader(); err != nil {
		return err
	}
	return w.Flush()
}

// fail keeps the first error of the writer or of its csv.Writer; every
// later call returns it.
func (w *Writer) fail(err error) error {
	if w.err != nil {
		return w.err
	}
	if err == nil {
		err = w.cw.Error()
	}
	if err != nil {
		w.err = fmt.Errorf("write plan: %w", err)
	}
	return w.err
}

// Write writes a whole plan, a header of columns and then rows (each with
// one cell per column, in columns order), with the rules of Writer. The
// report package uses it for --failed-plan.
func Write(w io.Writer, columns []string, rows [][]string) error {
	pw, err := NewWriter(w, columns)
	if err != nil {
		return err
	}
	for _, row := range rows {
		if err := pw.WriteRow(row); err != nil {
			return err
		}
	}
	return pw.Close()
}

// AppendTo returns a Writer that adds rows at the end of the plan in
// existing (`runner discover --update`). It first writes existing to w
// unchanged, byte for byte: comments, blank lines, the header's spelling and
// column order, every row. New rows follow in the plan's own line endings;
// a last line without one gets one first.
//
// A column the plan lacks is not added, since every existing row would
// have to change with it (and a reviewer's diff with them): WriteNamed
// refuses a value for it instead. name is used in errors. existing must have
// a header of known columns and be well-formed CSV to its end (an open
// quote would swallow the new rows); its rows are not validated.
func AppendTo(w io.Writer, existing []byte, name string) (*Writer, error) {
	body := bytes.TrimPrefix(existing, bom)
	cr := csv.NewReader(bytes.NewReader(body))
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	var columns []string
	newline := "\n"
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("update plan %s: %w (expected well-formed CSV, so that rows can be added at its end)", name, err)
		}
		if columns != nil || blank(rec) {
			continue
		}
		line, _ := cr.FieldPos(0)
		columns = make([]string, len(rec))
		for i, c := range rec {
			columns[i] = canonicalColumn(c)
			if columnIndex(columns[i]) < 0 || slices.Index(columns[:i], columns[i]) >= 0 {
				return nil, fmt.Errorf("update plan %s:%d: column %q unknown or repeated (expected a valid header; runner validate %s shows the problem)",
					name, line, strings.TrimSpace(c), name)
			}
		}
		if bytes.HasSuffix(body[:cr.InputOffset()], []byte("\r\n")) {
			newline = "\r\n"
		}
	}
	if columns == nil {
		return nil, fmt.Errorf("update plan %s: no header row (expected a plan to add rows to; write a new one instead)", name)
	}
	pw := newWriter(w, columns, newline)
	pw.header = true
	pw.bw.Write(existing)
	if len(existing) > 0 && existing[len(existing)-1] != '\n' {
		pw.bw.WriteString(newline)
	}
	return pw, pw.fail(nil)
}

// isReference reports whether a password cell is empty or an env: or file:
// reference, as Parse reads it; anything else may be the password itself.
func isReference(cell string) bool {
	ref, err := parseSecretRef(cell, true)
	return err == nil && ref.Kind != SecretLiteral
}

// RebaseCells returns a copy of a row's cells (in columns order) for a plan
// written into toDir when the row was read from a plan in fromDir (the
// failed plan beside a report): a relative file: password reference is
// rewritten to name the same file from toDir; absolute paths, env:
// references and all other cells are kept. A password cell that is not a
// reference is returned empty, like everywhere else a plan is written.
func RebaseCells(columns, cells []string, fromDir, toDir string) ([]string, error) {
	out := slices.Clone(cells)
	at := slices.IndexFunc(columns, func(c string) bool { return canonicalColumn(c) == Columns[iPassword] })
	if at < 0 || at >= len(out) {
		return out, nil
	}
	ref, err := parseSecretRef(out[at], true)
	switch {
	case err != nil || ref.Kind == SecretLiteral:
		out[at] = ""
		return out, nil
	case ref.Kind != SecretFile || filepath.IsAbs(ref.Ref):
		return out, nil
	}
	from, err := filepath.Abs(fromDir)
	if err != nil {
		return nil, fmt.Errorf("rebase password file %s: %w", ref.Ref, err)
	}
	to, err := filepath.Abs(toDir)
	if err != nil {
		return nil, fmt.Errorf("rebase password file %s: %w", ref.Ref, err)
	}
	if from == to {
		return out, nil
	}
	target := filepath.Join(from, ref.Ref)
	rel, err := filepath.Rel(to, target)
	if err != nil {
		// No relative path between them (another volume): name it whole.
		rel = target
	}
	out[at] = SecretFile + ":" + rel
	return out, nil
}
