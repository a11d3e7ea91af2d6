package plan

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gocarina/gocsv"
)

// rawRow receives a record from gocsv, cells untouched; validate turns it
// into a Row. The tags are the canonical column names, which lineReader
// substitutes for the header as written.
type rawRow struct {
	CertificateID        string `csv:"certificate_id"`
	Thumbprint           string `csv:"thumbprint"`
	StoreID              string `csv:"store_id"`
	Alias                string `csv:"alias"`
	Overwrite            string `csv:"overwrite"`
	Properties           string `csv:"properties"`
	Password             string `csv:"password"`
	JobTime              string `csv:"job_time"`
	Template             string `csv:"template"`
	CertificateAuthority string `csv:"certificate_authority"`
	RenewBefore          string `csv:"renew_before"`
}

// errBadHeader stops gocsv when the header cannot be mapped; the details are
// in lineReader.errs.
var errBadHeader = errors.New("bad plan header")

// lineReader is the gocsv.CSVReader handed to gocsv. It reads the whole file
// with encoding/csv, remembering each record's physical line (which gocsv
// does not know), canonicalizes the header, and keeps rows that cannot be
// mapped to columns (syntax errors, wrong field count) away from gocsv while
// recording them as errors, so that one bad line does not hide the others.
type lineReader struct {
	r    *csv.Reader
	file string

	columns    []string   // canonical header
	headerLine int        // physical line of the header
	lines      []int      // physical line of each record passed on
	records    [][]string // records passed on, as written
	errs       ErrorList

	out  [][]string // what ReadAll returned, for Read
	next int
}

func newLineReader(r io.Reader, file string) *lineReader {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1 // counts are checked here, to report every bad line
	return &lineReader{r: cr, file: file}
}

// ReadAll returns the canonical header followed by the well-formed records.
func (lr *lineReader) ReadAll() ([][]string, error) {
	if lr.out != nil {
		return lr.out, nil
	}
	if err := lr.readHeader(); err != nil {
		return nil, err
	}
	for {
		rec, err := lr.r.Read()
		if err == io.EOF {
			break
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			lr.errs = append(lr.errs, &RowError{
				File:     lr.file,
				Line:     perr.StartLine,
				Problem:  fmt.Sprintf("malformed CSV on line %d, column %d: %v", perr.Line, perr.Column, perr.Err),
				Expected: `cells with commas, quotes or line breaks inside double quotes, and "" for a quote within them`,
			})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", lr.file, err)
		}
		line, _ := lr.r.FieldPos(0)
		if emptyLine(rec) {
			continue
		}
		if len(rec) != len(lr.columns) {
			lr.errs = append(lr.errs, &RowError{
				File:     lr.file,
				Line:     line,
				Problem:  fmt.Sprintf("%d fields", len(rec)),
				Expected: fmt.Sprintf("%d, one for each column of the header on line %d", len(lr.columns), lr.headerLine),
			})
			continue
		}
		lr.lines = append(lr.lines, line)
		lr.records = append(lr.records, rec)
	}
	lr.out = append([][]string{lr.columns}, lr.records...)
	return lr.out, nil
}

// Read is part of gocsv.CSVReader; gocsv's slice decoding only calls
// ReadAll, but Read serves the same records one at a time.
func (lr *lineReader) Read() ([]string, error) {
	out, err := lr.ReadAll()
	if err != nil {
		return nil, err
	}
	if lr.next >= len(out) {
		return nil, io.EOF
	}
	lr.next++
	return out[lr.next-1], nil
}

// readHeader reads the first record and maps its names to known columns.
func (lr *lineReader) readHeader() error {
	var rec []string
	for {
		var err error
		rec, err = lr.r.Read()
		if err == io.EOF {
			lr.errs = append(lr.errs, &RowError{
				File:     lr.file,
				Problem:  "no header row",
				Expected: "a first line naming the columns, e.g. certificate_id,store_id,alias",
			})
			return errBadHeader
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			lr.errs = append(lr.errs, &RowError{
				File:     lr.file,
				Line:     perr.StartLine,
				Problem:  fmt.Sprintf("malformed CSV header on line %d, column %d: %v", perr.Line, perr.Column, perr.Err),
				Expected: "a first line naming the columns, e.g. certificate_id,store_id,alias",
			})
			return errBadHeader
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", lr.file, err)
		}
		if !emptyLine(rec) {
			break
		}
	}
	lr.headerLine, _ = lr.r.FieldPos(0)
	known := make(map[string]bool, len(Columns))
	for _, c := range Columns {
		known[c] = true
	}
	seen := make(map[string]int) // canonical name -> 1-based position
	lr.columns = make([]string, len(rec))
	for i, name := range rec {
		c := strings.ToLower(strings.TrimSpace(name))
		lr.columns[i] = c
		switch {
		case c == "":
			lr.headerErr(fmt.Sprintf("column %d has no name", i+1), "", "a name for every column: "+strings.Join(Columns, ", "))
		case !known[c]:
			lr.headerErr("unknown column", strings.TrimSpace(name), "one of "+strings.Join(Columns, ", "))
		case seen[c] != 0:
			lr.headerErr(fmt.Sprintf("duplicate column (columns %d and %d)", seen[c], i+1), c, "each column at most once")
		default:
			seen[c] = i + 1
		}
	}
	if seen[colStoreID] == 0 && len(lr.errs) == 0 {
		lr.headerErr("missing column", colStoreID, "a store_id column, and a certificate_id or thumbprint column")
	}
	if seen[colCertificateID] == 0 && seen[colThumbprint] == 0 && len(lr.errs) == 0 {
		lr.headerErr("missing column certificate_id or thumbprint", "", "a certificate_id or thumbprint column to name each certificate")
	}
	if len(lr.errs) > 0 {
		return errBadHeader
	}
	return nil
}

func (lr *lineReader) headerErr(problem, value, expected string) {
	lr.errs = append(lr.errs, &RowError{File: lr.file, Line: lr.headerLine, Problem: problem, Value: value, Expected: expected})
}

// Load reads and validates the plan at path. Relative file: password
// references are taken relative to the plan's directory, so a plan and its
// secrets can move together and cron's working directory does not matter.
// Errors are an *ErrorList of every problem, or a file error naming path.
func Load(path string, opts Options) (*Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	defer f.Close()
	p, err := Parse(f, path, opts)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	for _, r := range p.Rows {
		r.Password = relativeTo(dir, r.Password)
	}
	for _, j := range p.Jobs {
		j.Password = relativeTo(dir, j.Password)
	}
	return p, nil
}

func relativeTo(dir string, s SecretRef) SecretRef {
	if s.Kind == SecretFile && !filepath.IsAbs(s.Ref) {
		s.Ref = filepath.Join(dir, s.Ref)
	}
	return s
}

// Parse reads and validates a plan; name is used in errors and Plan.Path.
// Every problem is collected: the error is an *ErrorList sorted by line, or
// an error reading r. A plan with a header and no rows is valid and empty.
func Parse(r io.Reader, name string, opts Options) (*Plan, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	lr := newLineReader(strings.NewReader(string(stripBOM(data))), name)
	var raws []rawRow
	if err := gocsv.UnmarshalCSV(lr, &raws); err != nil {
		if errors.Is(err, errBadHeader) {
			lr.errs.sort()
			return nil, &lr.errs
		}
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	if len(raws) != len(lr.lines) {
		// gocsv returns one struct per record; anything else is a bug here.
		return nil, fmt.Errorf("parse %s: decoded %d rows from %d records", name, len(raws), len(lr.lines))
	}

	p := &Plan{Path: name, Columns: lr.columns}
	errs := lr.errs
	g := newGrouper(name)
	passwordAt := slices.Index(lr.columns, colPassword)
	for i := range raws {
		row, rowErrs := validate(&raws[i], lr.lines[i], lr.records[i], name, opts)
		if row.Password.Kind == SecretLiteral {
			// Values end up in reports and failed plans, which must never
			// hold a password: the literal is left out of them.
			row.Values = slices.Clone(row.Values)
			row.Values[passwordAt] = ""
		}
		p.Rows = append(p.Rows, row)
		if len(rowErrs) > 0 {
			// A row that is already wrong is not grouped, so one mistake
			// does not also show up as a disagreement.
			errs = append(errs, rowErrs...)
			continue
		}
		errs = append(errs, g.add(row)...)
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, &errs
	}
	p.Jobs = g.jobs
	if p.Rows == nil {
		p.Rows = []*Row{}
		p.Jobs = []*Job{}
	}
	return p, nil
}

// validate checks every cell of one row and returns the row and all its
// problems.
func validate(raw *rawRow, line int, values []string, file string, opts Options) (*Row, ErrorList) {
	row := &Row{Line: line, Values: values}
	var errs ErrorList
	check := func(column string, err error) {
		if err == nil {
			return
		}
		var ve *valueError
		if !errors.As(err, &ve) {
			ve = &valueError{problem: err.Error()}
		}
		errs = append(errs, &RowError{File: file, Line: line, Column: column, Problem: ve.problem, Value: ve.value, Expected: ve.expected})
	}
	cell := strings.TrimSpace

	var err error
	id, tp := cell(raw.CertificateID), cell(raw.Thumbprint)
	if id != "" {
		row.CertificateID, err = parseCertificateID(id)
		check(colCertificateID, err)
	}
	if tp != "" {
		row.Thumbprint, err = parseThumbprint(tp)
		check(colThumbprint, err)
	}
	if id == "" && tp == "" {
		check(colCertificateID, &valueError{problem: "missing, and so is thumbprint", expected: "a certificate_id or a thumbprint naming the certificate"})
	}
	if s := cell(raw.StoreID); s != "" {
		row.StoreID, err = parseGUID(s)
		check(colStoreID, err)
	} else {
		check(colStoreID, &valueError{problem: "missing", expected: "the certificate store's GUID, e.g. " + exampleGUID})
	}
	row.Alias = cell(raw.Alias)
	if s := cell(raw.Overwrite); s != "" {
		row.Overwrite, err = parseBool(s)
		check(colOverwrite, err)
	}
	if s := cell(raw.Properties); s != "" {
		row.Properties, err = parseProperties(s)
		check(colProperties, err)
	}
	row.Password, err = parseSecretRef(raw.Password, opts.AllowPlainPasswords)
	check(colPassword, err)
	if s := cell(raw.JobTime); s != "" {
		row.JobTime, err = parseJobTime(s)
		check(colJobTime, err)
	}
	row.Template = cell(raw.Template)
	row.CertificateAuthority = cell(raw.CertificateAuthority)
	if s := cell(raw.RenewBefore); s != "" {
		row.RenewBefore, err = ParseRenewBefore(s)
		check(colRenewBefore, err)
	}
	return row, errs
}

// grouper gathers valid rows into jobs and checks that rows of one job agree.
type grouper struct {
	file    string
	jobs    []*Job
	byID    map[int]*Job
	byThumb map[string]*Job
	pairs   map[pairKey]int // line of each certificate and store pair
}

// pairKey is keyed by job, not by Job.Key, which changes from thumbprint to
// id when a later row gives the id.
type pairKey struct {
	job   *Job
	store string
}

func newGrouper(file string) *grouper {
	return &grouper{file: file, byID: map[int]*Job{}, byThumb: map[string]*Job{}, pairs: map[pairKey]int{}}
}

// add puts row into the job of its certificate. Rows naming a certificate
// by id and rows naming it by thumbprint join the same job when a row gives
// both, so a certificate is never renewed twice because it was spelled two
// ways.
func (g *grouper) add(row *Row) ErrorList {
	var byID, byThumb *Job
	if row.CertificateID != 0 {
		byID = g.byID[row.CertificateID]
	}
	if row.Thumbprint != "" {
		byThumb = g.byThumb[row.Thumbprint]
	}
	if byID != nil && byThumb != nil && byID != byThumb {
		return ErrorList{g.err(row, colThumbprint, fmt.Sprintf("%s names the certificate of line %d, not certificate_id %d of line %d",
			row.Thumbprint, byThumb.Rows[0].Line, row.CertificateID, byID.Rows[0].Line),
			"a certificate_id and thumbprint of the same certificate")}
	}
	job := byID
	if job == nil {
		job = byThumb
	}
	if job != nil {
		if row.CertificateID != 0 && job.CertificateID != 0 && job.CertificateID != row.CertificateID {
			return ErrorList{g.err(row, colCertificateID, fmt.Sprintf("%d disagrees with %d on line %d for thumbprint %s",
				row.CertificateID, job.CertificateID, g.lineOf(job, colCertificateID), row.Thumbprint),
				"one certificate_id per thumbprint")}
		}
		if row.Thumbprint != "" && job.Thumbprint != "" && job.Thumbprint != row.Thumbprint {
			return ErrorList{g.err(row, colThumbprint, fmt.Sprintf("%s disagrees with %s on line %d for certificate id:%d",
				row.Thumbprint, job.Thumbprint, g.lineOf(job, colThumbprint), row.CertificateID),
				"one thumbprint per certificate_id")}
		}
		if errs := g.agree(job, row); len(errs) > 0 {
			return errs
		}
	} else {
		job = &Job{
			Password:             row.Password,
			JobTime:              row.JobTime,
			Template:             row.Template,
			CertificateAuthority: row.CertificateAuthority,
			RenewBefore:          row.RenewBefore,
		}
		g.jobs = append(g.jobs, job)
	}
	if row.CertificateID != 0 && job.CertificateID == 0 {
		job.CertificateID = row.CertificateID
		g.byID[row.CertificateID] = job
	}
	if row.Thumbprint != "" && job.Thumbprint == "" {
		job.Thumbprint = row.Thumbprint
		g.byThumb[row.Thumbprint] = job
	}
	if job.CertificateID != 0 {
		job.Key = "id:" + strconv.Itoa(job.CertificateID)
	} else {
		job.Key = "thumbprint:" + job.Thumbprint
	}

	pair := pairKey{job, row.StoreID}
	if line, ok := g.pairs[pair]; ok {
		return ErrorList{g.err(row, colStoreID, fmt.Sprintf("duplicate of line %d: certificate %s already goes to store %s",
			line, job.Key, row.StoreID), "each certificate and store pair on one row only")}
	}
	g.pairs[pair] = row.Line
	job.Rows = append(job.Rows, row)
	return nil
}

// lineOf returns the first line of job that set column (id or thumbprint).
func (g *grouper) lineOf(job *Job, column string) int {
	for _, r := range job.Rows {
		if column == colCertificateID && r.CertificateID != 0 || column == colThumbprint && r.Thumbprint != "" {
			return r.Line
		}
	}
	return 0
}

// agree checks the per-certificate settings of row against its job's first
// row and reports each column that differs.
func (g *grouper) agree(job *Job, row *Row) ErrorList {
	first := job.Rows[0]
	var errs ErrorList
	differ := func(column, mine, theirs string) {
		errs = append(errs, g.err(row, column, fmt.Sprintf("%s disagrees with %s on line %d", mine, theirs, first.Line),
			fmt.Sprintf("the same %s on every row of certificate %s", column, job.Key)))
	}
	if row.Password != job.Password {
		if row.Password.Kind == SecretLiteral && job.Password.Kind == SecretLiteral {
			errs = append(errs, g.err(row, colPassword, fmt.Sprintf("literal password differs from the literal password on line %d", first.Line),
				fmt.Sprintf("the same password on every row of certificate %s", job.Key)))
		} else {
			differ(colPassword, shown(row.Password.String()), shown(job.Password.String()))
		}
	}
	if !row.JobTime.Equal(job.JobTime) {
		differ(colJobTime, shown(formatTime(row.JobTime)), shown(formatTime(job.JobTime)))
	}
	if row.Template != job.Template {
		differ(colTemplate, shown(row.Template), shown(job.Template))
	}
	if row.CertificateAuthority != job.CertificateAuthority {
		differ(colCertificateAuthority, shown(row.CertificateAuthority), shown(job.CertificateAuthority))
	}
	if row.RenewBefore != job.RenewBefore {
		differ(colRenewBefore, shown(row.RenewBefore.String()), shown(job.RenewBefore.String()))
	}
	return errs
}

func (g *grouper) err(row *Row, column, problem, expected string) *RowError {
	return &RowError{File: g.file, Line: row.Line, Column: column, Problem: problem, Expected: expected}
}

// shown quotes a cell for a disagreement message; an empty one reads better
// as a word than as "".
func shown(s string) string {
	if s == "" {
		return "(empty)"
	}
	return strconv.Quote(s)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}
