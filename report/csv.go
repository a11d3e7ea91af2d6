package report

import (
	"encoding/csv"
	"io"
	"strings"
	"time"

	"github.com/gocarina/gocsv"

	"runner/plan"
)

// csvOutcome is the part of a CSV report line after the plan's columns. Its
// tags are the column names, so the header and the cells cannot drift apart;
// gocsv turns the fields into cells. The plan's columns vary from plan to
// plan, so they are put in front by csvLine.
type csvOutcome struct {
	Status           string   `csv:"status"`
	Stage            string   `csv:"stage"`
	Detail           string   `csv:"detail"`
	NewCertificateID csvID    `csv:"new_certificate_id"`
	RequestID        csvID    `csv:"request_id"`
	Error            string   `csv:"error"`
	RenewedAt        csvTime  `csv:"renewed_at"`
	DeployedAt       csvTime  `csv:"deployed_at"`
	VerifiedAt       csvTime  `csv:"verified_at"`
	DueAt            csvTime  `csv:"due_at"`
	Expires          csvTime  `csv:"expires"`
	Warnings         csvLines `csv:"warnings"`
}

type csvID int

func (id csvID) MarshalCSV() (string, error) { return idText(int(id)), nil }

type csvTime time.Time

func (t csvTime) MarshalCSV() (string, error) { return formatTime(time.Time(t)), nil }

// csvLines is a list in one cell, one item per line.
type csvLines []string

func (l csvLines) MarshalCSV() (string, error) { return strings.Join(l, "\n"), nil }

// identityColumns stand in for the plan's columns when a report was built
// without them (Run.Columns empty): enough to find the row and rerun it.
var identityColumns = []string{"certificate_id", "thumbprint", "store_id", "alias"}

// WriteCSV writes one line per row: the plan's columns (Run.Columns, with the
// row's PlanValues) followed by status, stage, detail, new_certificate_id,
// request_id, error, renewed_at, deployed_at, verified_at, due_at, expires
// and warnings (one per line of the cell). Filtering it on status gives a
// plan that can be run again.
//
// Every cell is safe to open in a spreadsheet and reads back as written:
// plan.EscapeCell (the one owner of that rule) escapes it, and the plan
// package's reader takes the escape off.
func WriteCSV(w io.Writer, r *Report) error {
	columns := planColumns(r)
	line := &csvLine{w: csv.NewWriter(w), prefix: columns}
	// An empty slice makes gocsv write the header alone.
	if err := gocsv.MarshalCSV([]csvOutcome{}, line); err != nil {
		return err
	}
	one := make([]csvOutcome, 1)
	for i := range r.Rows {
		row := &r.Rows[i]
		line.prefix = planCells(columns, row)
		one[0] = csvOutcome{
			Status:           string(row.Status),
			Stage:            string(row.Stage),
			Detail:           row.Detail,
			NewCertificateID: csvID(row.NewCertificateID),
			RequestID:        csvID(row.RequestID),
			Error:            row.Error,
			RenewedAt:        csvTime(row.RenewedAt),
			DeployedAt:       csvTime(row.DeployedAt),
			VerifiedAt:       csvTime(row.VerifiedAt),
			DueAt:            csvTime(row.DueAt),
			Expires:          csvTime(row.Expires),
			Warnings:         csvLines(row.Warnings),
		}
		if err := gocsv.MarshalCSVWithoutHeaders(one, line); err != nil {
			return err
		}
	}
	return nil
}

// csvLine is the gocsv.CSVWriter that WriteCSV hands to gocsv: it puts the
// plan's cells in front of the outcome cells gocsv gives it, and makes every
// cell safe for a spreadsheet.
type csvLine struct {
	w      *csv.Writer
	prefix []string
	cells  []string
}

func (l *csvLine) Write(outcome []string) error {
	l.cells = l.cells[:0]
	for _, c := range l.prefix {
		l.cells = append(l.cells, csvCell(c))
	}
	for _, c := range outcome {
		l.cells = append(l.cells, csvCell(c))
	}
	return l.w.Write(l.cells)
}

func (l *csvLine) Flush()       { l.w.Flush() }
func (l *csvLine) Error() error { return l.w.Error() }

// csvCell is a cell as the CSV report writes it. encoding/csv's reader turns
// CRLF inside a quoted cell into LF, so the report writes LF to begin with:
// what is written is what is read back.
func csvCell(s string) string {
	return plan.EscapeCell(strings.ReplaceAll(text(s), "\r\n", "\n"))
}

// planColumns are the columns that repeat the plan in the CSV report and the
// failed plan.
func planColumns(r *Report) []string {
	if len(r.Run.Columns) == 0 {
		return identityColumns
	}
	return r.Run.Columns
}

// planCells returns the row's plan cells for columns, always exactly
// len(columns) of them so the outcome columns line up. Without PlanValues the
// cells come from the row's identity fields. A plan line with more cells than
// the header (a plan error, reported as such in the row) loses the extra
// cells here.
func planCells(columns []string, row *Row) []string {
	cells := make([]string, len(columns))
	if row.PlanValues == nil {
		for i, c := range columns {
			switch c {
			case "certificate_id":
				cells[i] = idText(row.CertificateID)
			case "thumbprint":
				cells[i] = row.Thumbprint
			case "store_id":
				cells[i] = row.StoreID
			case "alias":
				cells[i] = row.Alias
			}
		}
		return cells
	}
	copy(cells, row.PlanValues)
	return cells
}
