package plan

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Positions of the known columns in Columns, for indexing a record.
const (
	iCertificateID = iota
	iThumbprint
	iStoreID
	iAlias
	iOverwrite
	iProperties
	iPassword
	iJobTime
	iTemplate
	iCertificateAuthority
	iRenewBefore
	nColumns
)

// Load reads and validates the plan at path. Relative file: password
// references are taken relative to the plan's directory, so a plan and its
// secrets can move together and cron's working directory does not matter.
// Errors are as Parse's, or a file error naming path.
func Load(path string, opts Options) (*Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	defer f.Close()
	p, err := parse(f, path, opts, defaultLimits, sizeHint(f))
	if p != nil {
		dir := filepath.Dir(path)
		for _, r := range p.Rows {
			r.Password = relativeTo(dir, r.Password)
		}
		for _, j := range p.Jobs {
			j.Password = relativeTo(dir, j.Password)
		}
	}
	return p, err
}

// Counts says how large a plan is.
type Counts struct {
	Rows         int // rows read, blank lines and comments left out
	Certificates int // jobs
	Stores       int // distinct stores
}

// Validate checks the plan at path as Load does, with the same problems in
// the same order, but keeps no rows: its memory grows with the number of
// certificates, not with the rows and their cells, so `runner validate`
// stays small at any plan size. Errors are as Load's.
func Validate(path string, opts Options) (Counts, error) {
	f, err := os.Open(path)
	if err != nil {
		return Counts{}, fmt.Errorf("read plan: %w", err)
	}
	defer f.Close()
	return validate(f, path, opts, defaultLimits, sizeHint(f))
}

// validate is Validate of a reader, with limits and the number of rows to
// expect.
func validate(r io.Reader, name string, opts Options, lim limits, rowsHint int) (Counts, error) {
	rd := newReader(r, name, opts, lim)
	rd.rowsHint = rowsHint
	rd.stores = map[[16]byte]struct{}{}
	rd.cr.ReuseRecord = true // nothing keeps a record
	if err := rd.read(); err != nil {
		return Counts{}, err
	}
	c := Counts{Rows: rd.count, Stores: len(rd.stores)}
	if rd.group != nil {
		c.Certificates = len(rd.group.jobs)
	}
	if len(rd.errs) > 0 {
		rd.errs.sort()
		return c, &rd.errs
	}
	return c, nil
}

// sizeHint guesses from a plan file's size how many rows it has (a plan
// line is some 60 to 150 bytes), so that tables are sized once instead of
// grown; 0 when unknown.
func sizeHint(f *os.File) int {
	info, err := f.Stat()
	if err != nil {
		return 0
	}
	return int(min(info.Size()/128, MaxRows))
}

func relativeTo(dir string, s SecretRef) SecretRef {
	if s.Kind == SecretFile && !filepath.IsAbs(s.Ref) {
		s.Ref = filepath.Join(dir, s.Ref)
	}
	return s
}

// Parse reads and validates a plan; name is used in errors and Plan.Path.
// It reads r as a stream, holding only the rows it keeps.
//
// Every problem is collected. When there is any, the error is an *ErrorList
// sorted by line, and the Plan returned with it holds only the rows without
// a problem of their own and no Jobs, so that a report can list what was
// read while nothing can be run from it. Any other error is one reading r,
// with no Plan. A plan with a header and no rows is valid and empty.
func Parse(r io.Reader, name string, opts Options) (*Plan, error) {
	return parse(r, name, opts, defaultLimits, 0)
}

// limits are the bounds a reader enforces: the exported constants, smaller
// in tests.
type limits struct {
	rows      int
	planBytes int64
	record    int64
}

var defaultLimits = limits{rows: MaxRows, planBytes: MaxPlanBytes, record: maxRecordBytes}

// parse is Parse with limits and the number of rows to expect (0 when
// unknown).
func parse(r io.Reader, name string, opts Options, lim limits, rowsHint int) (*Plan, error) {
	rd := newReader(r, name, opts, lim)
	rd.rowsHint = rowsHint
	rd.keep = true
	if err := rd.read(); err != nil {
		return nil, err
	}
	p := &Plan{Path: name, Columns: rd.columns, Rows: rd.rows}
	if p.Rows == nil {
		p.Rows = []*Row{}
	}
	if len(rd.errs) > 0 {
		rd.errs.sort()
		return p, &rd.errs
	}
	if rd.group != nil {
		p.Jobs = rd.group.finish()
	}
	if p.Jobs == nil {
		p.Jobs = []*Job{}
	}
	return p, nil
}

// reader is one pass of Parse over a plan.
type reader struct {
	file string
	opts Options
	lim  limits
	now  time.Time
	src  *boundedReader
	cr   *csv.Reader

	columns    []string      // canonical header, in file order
	index      [nColumns]int // position of each known column, -1 if absent
	kinds      []int         // known column of each position, -1 if unknown
	headerLine int
	rows       []*Row
	errs       ErrorList
	group      *grouper
	literals   map[string]*literal

	rowsHint int
	// keep says whether rows are kept (Parse) or only counted (Validate),
	// with the distinct stores.
	keep   bool
	count  int
	stores map[[16]byte]struct{}

	rowSlab []Row      // rows are allocated in blocks, for memory
	errSlab []RowError // so are errors, for a plan of 300,000 bad rows
}

// readBuffer is the read buffer; it also bounds how far past a record the
// reader may have read when boundedReader checks maxRecordBytes.
const readBuffer = 64 << 10

func newReader(r io.Reader, file string, opts Options, lim limits) *reader {
	src := &boundedReader{r: r, limit: lim.planBytes, max: lim.planBytes, record: lim.record}
	br := bufio.NewReaderSize(src, readBuffer)
	// A UTF-8 byte order mark, as spreadsheets write it, is not part of
	// the first column's name.
	if b, err := br.Peek(len(bom)); err == nil && string(b) == string(bom) {
		br.Discard(len(bom))
	}
	cr := csv.NewReader(br) // reuses br, which is large enough
	cr.Comment = '#'
	cr.FieldsPerRecord = -1 // counts are checked here, to report every bad line
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	rd := &reader{file: file, opts: opts, lim: lim, now: now(), src: src, cr: cr}
	for i := range rd.index {
		rd.index[i] = -1
	}
	return rd
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// errPlanTooLarge and errRecordTooLong end reading; the problem is recorded
// as a RowError.
var (
	errPlanTooLarge  = errors.New("plan too large")
	errRecordTooLong = errors.New("record too long")
)

// boundedReader stops reading at limit bytes, so that neither a huge file
// nor one endless record is read into memory: encoding/csv reads a whole
// record before it returns any of it.
type boundedReader struct {
	r      io.Reader
	n      int64 // bytes read
	limit  int64 // bytes that may be read, for this record and in all
	max    int64 // bytes that may be read in all
	record int64 // bytes one record may take
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n >= b.limit {
		// A plan of exactly max bytes is fine: only more is refused.
		var probe [1]byte
		n, err := b.r.Read(probe[:])
		if n == 0 {
			return 0, err // io.EOF at the limit, or nothing yet
		}
		if b.limit >= b.max {
			return 0, errPlanTooLarge
		}
		return 0, errRecordTooLong
	}
	if int64(len(p)) > b.limit-b.n {
		p = p[:b.limit-b.n]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

// nextRecord sets the bound for the record that starts at offset.
func (b *boundedReader) nextRecord(offset int64) {
	b.limit = min(offset+int64(len(bom))+b.record+readBuffer, b.max)
}

// read reads the header and every row, collecting rows and problems. Its
// error is one of reading the source, not of the plan.
func (rd *reader) read() error {
	header, err := rd.record()
	if err != nil || header == nil {
		return err
	}
	rd.readHeader(header)
	if rd.index[iStoreID] >= 0 && (rd.index[iCertificateID] >= 0 || rd.index[iThumbprint] >= 0) {
		rd.group = newGrouper(rd.keep, rd.rowsHint/2, rd.index[iCertificateID] >= 0, rd.index[iThumbprint] >= 0)
	}
	if rd.keep {
		rd.rows = make([]*Row, 0, rd.rowsHint)
	}
	for {
		rec, err := rd.record()
		if err != nil || rec == nil {
			return err
		}
		line, _ := rd.cr.FieldPos(0)
		if rd.count++; rd.count > rd.lim.rows {
			rd.addErr(line, 0, "", fmt.Sprintf("more than %d rows; reading stopped here", rd.lim.rows), "",
				fmt.Sprintf("at most %d rows in one plan: split it into several plans", rd.lim.rows))
			return nil
		}
		if len(rec) != len(rd.columns) {
			rd.addErr(line, 0, "", fmt.Sprintf("%d fields", len(rec)), "",
				fmt.Sprintf("%d, one for each column of the header on line %d", len(rd.columns), rd.headerLine))
			continue
		}
		rd.row(rec, line)
	}
}

// record returns the next record that is not blank, recording malformed
// ones as problems and skipping them, or nil at the end of the plan (also
// when a limit stopped reading).
func (rd *reader) record() ([]string, error) {
	for {
		rd.src.nextRecord(rd.cr.InputOffset())
		rec, err := rd.cr.Read()
		switch {
		case err == nil:
			if !blank(rec) {
				return rec, nil
			}
		case err == io.EOF:
			if rd.columns == nil {
				rd.addErr(0, 0, "", "no header row", "", "a first line naming the columns, e.g. certificate_id,store_id,alias")
			}
			return nil, nil
		case errors.Is(err, errPlanTooLarge):
			rd.addErr(0, 0, "", fmt.Sprintf("larger than %s; reading stopped", size(rd.lim.planBytes)), "",
				"a plan of at most "+size(rd.lim.planBytes))
			return nil, nil
		case errors.Is(err, errRecordTooLong):
			line := 0
			if len(rec) > 0 {
				line, _ = rd.cr.FieldPos(0)
			}
			rd.addErr(line, 0, "", fmt.Sprintf("a record longer than %s; reading stopped", size(rd.lim.record)), "",
				fmt.Sprintf("cells of at most %d bytes (properties %d), each quoted cell closed by a \"", MaxCellBytes, MaxPropertiesBytes))
			return nil, nil
		default:
			perr := parseError(err)
			if perr == nil {
				return nil, fmt.Errorf("read %s: %w", rd.file, err)
			}
			what := "malformed CSV"
			if rd.columns == nil {
				what = "malformed CSV header"
			}
			rd.addErr(perr.StartLine, 0, "", fmt.Sprintf("%s on line %d, column %d: %v", what, perr.Line, perr.Column, perr.Err), "",
				`cells with commas, quotes or line breaks inside double quotes, and "" for a quote within them`)
			if rd.columns == nil {
				// Without a header no row can be read.
				return nil, nil
			}
		}
	}
}

// parseError returns err's *csv.ParseError, or nil. It is a function of its
// own so that the pointer errors.As needs is only made for an error.
func parseError(err error) *csv.ParseError {
	var perr *csv.ParseError
	if errors.As(err, &perr) {
		return perr
	}
	return nil
}

// readHeader maps the header's names to known columns. Problems are
// recorded, and the rows are still read by the columns that are known, so
// that one wrong name does not hide every other problem.
func (rd *reader) readHeader(rec []string) {
	rd.headerLine, _ = rd.cr.FieldPos(0)
	if len(rec) > maxHeaderColumns {
		rd.addErr(rd.headerLine, 0, "", fmt.Sprintf("header of %d columns", len(rec)), "",
			fmt.Sprintf("at most %d columns: %s", maxHeaderColumns, strings.Join(Columns, ", ")))
		rec = rec[:maxHeaderColumns]
	}
	rd.columns = make([]string, len(rec))
	rd.kinds = make([]int, len(rec))
	for i, name := range rec {
		_, col := rd.cr.FieldPos(i)
		c := canonicalColumn(name)
		rd.columns[i] = c
		known := columnIndex(c)
		rd.kinds[i] = known
		switch {
		case c == "":
			rd.addErr(rd.headerLine, col, "", fmt.Sprintf("column %d has no name", i+1), "", "a name for every column: "+strings.Join(Columns, ", "))
		case known < 0:
			rd.addErr(rd.headerLine, col, "", "unknown column", strings.TrimSpace(name), "one of "+strings.Join(Columns, ", "))
		case rd.index[known] >= 0:
			rd.addErr(rd.headerLine, col, "", fmt.Sprintf("duplicate column (columns %d and %d)", rd.index[known]+1, i+1), c, "each column at most once")
		default:
			rd.index[known] = i
		}
	}
	if rd.index[iStoreID] < 0 {
		rd.addErr(rd.headerLine, 0, "", "missing column", Columns[iStoreID], "a store_id column, and a certificate_id or thumbprint column")
	}
	if rd.index[iCertificateID] < 0 && rd.index[iThumbprint] < 0 {
		rd.addErr(rd.headerLine, 0, "", "missing column certificate_id or thumbprint", "", "a certificate_id or thumbprint column to name each certificate")
	}
}

// canonicalColumn is a header name as it is matched against Columns:
// surrounding spaces taken off, lower case.
func canonicalColumn(name string) string { return strings.ToLower(strings.TrimSpace(name)) }

// columnIndex returns the position in Columns of a canonical name, -1 when
// it is not a known column.
func columnIndex(name string) int {
	for i, c := range Columns {
		if c == name {
			return i
		}
	}
	return -1
}

// addErr records a problem; errors are allocated in blocks, since a bad plan
// can have hundreds of thousands.
func (rd *reader) addErr(line, col int, column, problem, value, expected string) {
	if len(rd.errSlab) == 0 {
		rd.errSlab = make([]RowError, 256)
	}
	e := &rd.errSlab[0]
	rd.errSlab = rd.errSlab[1:]
	*e = RowError{File: rd.file, Line: line, Col: col, Column: column, Problem: problem, Value: shortValue(value), Expected: expected}
	rd.errs = append(rd.errs, e)
}

// newRow returns a zero Row from the current block. Until keepRow, the same
// Row is handed out again, so rows with problems cost nothing.
func (rd *reader) newRow() *Row {
	if len(rd.rowSlab) == 0 {
		rd.rowSlab = make([]Row, 512)
	}
	r := &rd.rowSlab[0]
	*r = Row{}
	return r
}

// keepRow keeps a row without problems, or when counting, counts its store
// (whose bytes are store).
func (rd *reader) keepRow(r *Row, store [16]byte) {
	if !rd.keep {
		// Stores repeat: a lookup costs less than an assignment.
		if _, ok := rd.stores[store]; !ok && r.StoreID != "" {
			rd.stores[store] = struct{}{}
		}
		return
	}
	rd.rowSlab = rd.rowSlab[1:]
	rd.rows = append(rd.rows, r)
}

// row validates one record of the header's length and keeps it if it has no
// problem. The record becomes the row's Values.
func (rd *reader) row(rec []string, line int) {
	row := rd.newRow()
	row.Line = line
	errsBefore := len(rd.errs)
	// cellErr records a problem with cell i.
	cellErr := func(i int, ve *valueError) {
		_, col := rd.cr.FieldPos(i)
		rd.addErr(line, col, rd.columns[i], ve.problem, ve.value, ve.expected)
	}
	// knownErr records a problem with the cell of known column k.
	knownErr := func(k int, ve *valueError) {
		if i := rd.index[k]; i >= 0 {
			cellErr(i, ve)
		} else {
			rd.addErr(line, 0, Columns[k], ve.problem, ve.value, ve.expected)
		}
	}
	// Every cell, known column or not, must be sound text of bounded size;
	// a cell that is not is not parsed further.
	var bad [nColumns]bool
	for i, c := range rec {
		c = UnescapeCell(c)
		rec[i] = c
		known := rd.kinds[i]
		limit, inJSON, show := MaxCellBytes, false, true
		switch known {
		case iProperties:
			limit, inJSON, show = MaxPropertiesBytes, true, false
		case iPassword:
			show = false
		}
		if ve := checkText(c, limit, inJSON, show); ve != nil {
			cellErr(i, ve)
			if known >= 0 && rd.index[known] == i {
				bad[known] = true
			}
		}
	}
	// cell returns the trimmed cell of a known column, "" when the column
	// is absent or its text is bad.
	cell := func(k int) string {
		if i := rd.index[k]; i >= 0 && !bad[k] {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	check := func(k int, err error) {
		if err == nil {
			return
		}
		var ve *valueError
		if !errors.As(err, &ve) {
			ve = &valueError{problem: err.Error()}
		}
		knownErr(k, ve)
	}
	// missing reports a required cell that is empty; a column absent from
	// the header is already a header problem, and a bad cell has its own.
	missing := func(k int) bool { return rd.index[k] >= 0 && !bad[k] && cell(k) == "" }

	var err error
	var store [16]byte
	id, tp := cell(iCertificateID), cell(iThumbprint)
	if id != "" {
		row.CertificateID, err = parseCertificateID(id)
		check(iCertificateID, err)
	}
	if tp != "" {
		row.Thumbprint, err = parseThumbprint(tp)
		check(iThumbprint, err)
	}
	if id == "" && tp == "" && !bad[iCertificateID] && !bad[iThumbprint] {
		k := iCertificateID
		if rd.index[k] < 0 {
			k = iThumbprint
		}
		if rd.index[k] >= 0 {
			check(k, &valueError{problem: "missing, and so is thumbprint", expected: "a certificate_id or a thumbprint naming the certificate"})
		}
	}
	if s := cell(iStoreID); s != "" {
		row.StoreID, store, err = parseGUID(s)
		check(iStoreID, err)
	} else if missing(iStoreID) {
		check(iStoreID, &valueError{problem: "missing", expected: "the certificate store's GUID, e.g. " + exampleGUID})
	}
	row.Alias = cell(iAlias)
	if s := cell(iOverwrite); s != "" {
		row.Overwrite, err = parseBool(s)
		check(iOverwrite, err)
	}
	if s := cell(iProperties); s != "" {
		// Counting needs only the verdict: a valid object is told without
		// building it, and anything else is parsed for its error.
		if rd.keep || !isJSONObject(s) {
			row.Properties, err = parseProperties(s)
			check(iProperties, err)
		}
	}
	if i := rd.index[iPassword]; i >= 0 && !bad[iPassword] {
		row.Password, err = parseSecretRef(rec[i], rd.opts.AllowPlainPasswords)
		check(iPassword, err)
		if row.Password.Kind == SecretLiteral {
			row.Password.literal = rd.intern(row.Password.literal)
			// Values go to reports and failed plans: the literal is held
			// by the SecretRef alone.
			rec[i] = ""
		}
	}
	if s := cell(iJobTime); s != "" {
		row.JobTime, err = parseJobTime(s)
		check(iJobTime, err)
		if err == nil && !rd.opts.AllowPastJobTime && row.JobTime.Before(rd.now) {
			check(iJobTime, &valueError{
				problem:  "in the past (now is " + rd.now.UTC().Format(time.RFC3339) + ")",
				value:    s,
				expected: "a later time, an empty cell to run the job at once, or --allow-past-job-time",
			})
		}
	}
	row.Template = cell(iTemplate)
	row.CertificateAuthority = cell(iCertificateAuthority)
	switch {
	case row.Template != "" && row.CertificateAuthority == "" && !bad[iCertificateAuthority]:
		check(iTemplate, &valueError{problem: "template without certificate_authority", value: row.Template,
			expected: "a certificate_authority too (host\\logical name), since Renew takes a template only with its CA; or neither, for one-click renewal"})
	case row.CertificateAuthority != "" && row.Template == "" && !bad[iTemplate]:
		check(iCertificateAuthority, &valueError{problem: "certificate_authority without template", value: row.CertificateAuthority,
			expected: "a template too, since Renew takes a CA only with a template; or neither, for one-click renewal"})
	}
	if s := cell(iRenewBefore); s != "" {
		row.RenewBefore, err = ParseRenewBefore(s)
		check(iRenewBefore, err)
	}
	row.Values = rec

	if len(rd.errs) > errsBefore {
		return
	}
	if rd.group != nil {
		rd.group.add(row, store, func(k int, problem, expected string) {
			knownErr(k, &valueError{problem: problem, expected: expected})
		})
		if len(rd.errs) > errsBefore {
			return
		}
	}
	rd.keepRow(row, store)
}

// intern returns one *literal per distinct password, so that equal
// SecretRefs compare equal with ==.
func (rd *reader) intern(l *literal) *literal {
	if rd.literals == nil {
		rd.literals = map[string]*literal{}
	}
	if have, ok := rd.literals[string(*l)]; ok {
		return have
	}
	rd.literals[string(*l)] = l
	return l
}

// size spells a limit in bytes the way people do: 512 MiB, 4 KiB, 100 bytes.
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// blank reports whether every cell is blank, as in the ",,,," lines that
// spreadsheets leave at the end of an export.
func blank(record []string) bool {
	for _, c := range record {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
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
