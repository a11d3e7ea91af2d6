// Package plan owns the CSV plan that tells the runner what to renew and
// where to deploy it: the known columns, parsing (with gocarina/gocsv over an
// encoding/csv reader that keeps physical line numbers), validation of every
// cell with errors that name the file, line and column, and grouping of rows
// into one Job per certificate.
//
// It does not talk to Keyfactor Command, decide whether a certificate is due
// (it only computes when it would be, see RenewBefore.DueAt) or write
// reports; Write exists so that a report can emit a plan of failed rows.
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

const (
	colCertificateID        = "certificate_id"
	colThumbprint           = "thumbprint"
	colStoreID              = "store_id"
	colAlias                = "alias"
	colOverwrite            = "overwrite"
	colProperties           = "properties"
	colPassword             = "password"
	colJobTime              = "job_time"
	colTemplate             = "template"
	colCertificateAuthority = "certificate_authority"
	colRenewBefore          = "renew_before"
)

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
	// Values are the row's cells as written, in Plan.Columns order, so a
	// report or a failed plan can reproduce the row; the one exception is a
	// literal password, which is left empty here so that it never reaches a
	// report.
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
}
