// Package plan owns the CSV plan that tells the runner what to renew and
// where to deploy it: the known columns; reading a plan (encoding/csv,
// streamed, with physical line and byte positions) and validating every
// cell, so that every problem is reported at once with file:line:column and
// what was expected; the limits a plan must keep (MaxCellBytes,
// MaxPropertiesBytes, MaxRows, MaxPlanBytes); grouping rows into one Job per
// certificate; and writing plans (Write and Writer for failed and discovered
// plans, AppendTo for `discover --update`, RebaseCells for a plan written
// into another directory).
//
// Written plans are safe to open in a spreadsheet and read back to the same
// values, by the spreadsheet text escape (OWASP's CSV injection rule): a
// cell that starts with =, +, -, @, a tab or a carriage return is written
// with a ' in front, and the reader takes off a ' that is followed by one of
// those characters or by another ' (so a value that itself starts with such
// a ' is escaped too; escape.go has the table). The reader does this in
// plans written by hand as well.
//
// It is the one owner of the rule that a literal entry password is never
// written anywhere: SecretRef holds it where nothing prints or encodes it,
// Row.Values never hold it, and Writer never writes one. Other packages can
// trust Values as they are.
//
// It does not talk to Keyfactor Command, decide whether a certificate is due
// (it only computes when it would be, see RenewBefore.DueAt) or write
// reports.
package plan

import (
	"time"
)

// Columns lists the known plan columns, in the order the documentation gives
// them. Header names are matched against these without regard to case,
// surrounding spaces or a UTF-8 byte order mark.
var Columns = []string{
	"certificate_id", "thumbprint", "store_id", "alias", "overwrite", "properties",
	"password", "job_time", "template", "certificate_authority", "renew_before",
}

// Row is one validated plan row: one (certificate, store) target.
type Row struct {
	// Line is the 1-based physical line of the row in the file (the line it
	// starts on, when a quoted cell spans lines).
	Line int
	// CertificateID is the Command certificate id, 0 if the row names the
	// certificate by thumbprint only.
	CertificateID int
	// Thumbprint is upper-case hex with separators (':', ' ', '-') removed,
	// "" if absent.
	Thumbprint string
	// StoreID is the certificate store GUID, lower case, without braces.
	StoreID string
	// Alias is the entry alias in the store, "" if absent.
	Alias string
	// Overwrite asks the store to replace an entry with the same alias.
	Overwrite bool
	// Properties holds the store-type entry parameters (JSON numbers kept as
	// json.Number so they are sent back unchanged); nil if absent.
	Properties map[string]any
	// Password references the entry password; zero if absent.
	Password SecretRef
	// JobTime is when the management job should run, in UTC; zero if absent.
	JobTime time.Time
	// Template and CertificateAuthority are passed to Renew when one-click
	// renewal is not available; "" if absent.
	Template, CertificateAuthority string
	// RenewBefore overrides --renew-before for this row; zero if absent.
	RenewBefore RenewBefore
	// Values are the row's cells as written (untrimmed, the spreadsheet
	// escape taken off), in Plan.Columns order, so a report or a failed plan
	// can reproduce the row. A literal password cell is empty here: Values
	// are safe to write anywhere as they are.
	Values []string
}

// Job is one certificate of the plan: it is renewed once and deployed to the
// stores of all its rows with one Deploy call. The settings that must agree
// across its rows are copied here from its first row.
type Job struct {
	// Key identifies the certificate in the journal: "id:1234" when any row
	// gives the certificate id, else "thumbprint:<40 hex digits>".
	Key           string
	CertificateID int
	Thumbprint    string
	// Rows are the job's rows in file order.
	Rows                           []*Row
	Password                       SecretRef
	JobTime                        time.Time
	Template, CertificateAuthority string
	RenewBefore                    RenewBefore

	// For the grouper's messages and indexes, which must not need Rows
	// (Validate keeps none): the job's first line, the lines that first
	// gave its id and its thumbprint, and its position in the plan.
	firstLine, idLine, thumbLine, index int32
}

// Plan is a parsed, valid plan.
type Plan struct {
	// Path is the name the plan was read from, as given to Load or Parse.
	Path string
	// Columns are the canonical names of the file's columns, in file order.
	Columns []string
	// Rows are all rows in file order.
	Rows []*Row
	// Jobs group the rows by certificate, in order of first appearance.
	Jobs []*Job
}

// Options changes how strictly a plan is read.
type Options struct {
	// AllowPlainPasswords accepts a password cell that is neither env:NAME
	// nor file:PATH as the literal password (--allow-plain-passwords).
	AllowPlainPasswords bool
	// AllowPastJobTime accepts a job_time that is already past
	// (--allow-past-job-time); Command then runs the job at once.
	AllowPastJobTime bool
	// Now is the clock that decides whether a job_time is past; nil means
	// time.Now.
	Now func() time.Time
}

// Limits of a plan. Past them a plan is refused with an error that names
// the limit, so that a wrong file (an export with a 5 MB cell, a log file,
// a binary) costs neither memory nor time.
const (
	// MaxCellBytes is the largest cell, in bytes, other than properties.
	MaxCellBytes = 4 << 10
	// MaxPropertiesBytes is the largest properties cell, in bytes.
	MaxPropertiesBytes = 64 << 10
	// MaxRows is the most rows a plan may have; reading stops past it.
	MaxRows = 1_000_000
	// MaxPlanBytes is the largest plan file; reading stops past it.
	MaxPlanBytes = 512 << 20
)

// Internal bounds that keep a malformed file from holding memory before the
// limits above can be checked cell by cell.
const (
	// maxRecordBytes bounds one record (one row, possibly over several
	// lines): ten full cells and a full properties cell fit well inside.
	maxRecordBytes = 1 << 20
	// maxHeaderColumns bounds the header; only 11 names are known.
	maxHeaderColumns = 64
)
