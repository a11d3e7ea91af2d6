package report

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
)

// outcomeColumns follow the plan's columns in the CSV report.
var outcomeColumns = []string{
	"status", "stage", "detail", "new_certificate_id", "request_id", "error",
	"renewed_at", "deployed_at", "verified_at",
}

// identityColumns stand in for the plan's columns when a report was built
// without them (Run.Columns empty): enough to find the row and rerun it.
var identityColumns = []string{"certificate_id", "thumbprint", "store_id", "alias"}

// WriteCSV writes one line per row: the plan's columns (Run.Columns, with the
// row's PlanValues) followed by status, stage, detail, new_certificate_id,
// request_id, error, renewed_at, deployed_at and verified_at. Filtering it on
// status gives a plan that can be run again. A literal password written in
// the plan is left out; env: and file: references are kept.
func WriteCSV(w io.Writer, r *Report) error {
	columns := planColumns(r)
	cw := csv.NewWriter(w)
	if err := cw.Write(append(append([]string{}, columns...), outcomeColumns...)); err != nil {
		return err
	}
	for i := range r.Rows {
		row := &r.Rows[i]
		rec := append(redactPasswords(columns, planCells(columns, row)),
			string(row.Status),
			string(row.Stage),
			row.Detail,
			csvID(row.NewCertificateID),
			csvID(row.RequestID),
			row.Error,
			formatTime(row.RenewedAt),
			formatTime(row.DeployedAt),
			formatTime(row.VerifiedAt),
		)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
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
				cells[i] = csvID(row.CertificateID)
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

// redactPasswords blanks a password cell that holds the password itself:
// reports never carry secrets.
func redactPasswords(columns, cells []string) []string {
	for i, c := range columns {
		if isPasswordColumn(c) && !isSecretReference(cells[i]) {
			cells[i] = ""
		}
	}
	return cells
}

func isPasswordColumn(c string) bool {
	return strings.EqualFold(strings.TrimSpace(c), "password")
}

// isSecretReference reports whether a password cell is a reference
// (env:NAME or file:PATH) rather than the password itself. It follows the
// plan's reading of the cell, and when in doubt says no: a mistyped
// reference may well be the password.
func isSecretReference(cell string) bool {
	kind, ref, ok := strings.Cut(strings.TrimSpace(cell), ":")
	if !ok {
		return cell == ""
	}
	switch strings.ToLower(kind) {
	case "env":
		return isEnvName(ref)
	case "file":
		return strings.TrimSpace(ref) != ""
	}
	return false
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func csvID(id int) string {
	if id == 0 {
		return ""
	}
	return strconv.Itoa(id)
}
