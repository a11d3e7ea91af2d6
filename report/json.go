package report

import (
	"encoding/json"
	"io"
	"time"
)

// Schema names the version of the JSON report; it changes only when a field
// changes meaning or goes away.
const Schema = "runner.report/v1"

// The JSON shapes are kept apart from Row and Run so that the file format is
// fixed here, in one place, and the Go types stay free of wire tags.
type jsonReport struct {
	Schema string    `json:"schema"`
	Run    jsonRun   `json:"run"`
	Rows   []jsonRow `json:"rows"`
}

type jsonRun struct {
	Command         string     `json:"command"`
	PlanFile        string     `json:"plan_file"`
	Start           *string    `json:"start"`
	End             *string    `json:"end"`
	DurationSeconds *float64   `json:"duration_seconds"`
	DryRun          bool       `json:"dry_run"`
	Interrupted     bool       `json:"interrupted"`
	Counts          jsonCounts `json:"counts"`
	Total           int        `json:"total"`
}

type jsonCounts struct {
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
}

type jsonRow struct {
	Line             int     `json:"line"`
	CertificateID    *int    `json:"certificate_id"`
	Thumbprint       string  `json:"thumbprint"`
	StoreID          string  `json:"store_id"`
	Alias            string  `json:"alias"`
	Status           Status  `json:"status"`
	Stage            Stage   `json:"stage"`
	Detail           string  `json:"detail"`
	NewCertificateID *int    `json:"new_certificate_id"`
	RequestID        *int    `json:"request_id"`
	Error            string  `json:"error"`
	RenewedAt        *string `json:"renewed_at"`
	DeployedAt       *string `json:"deployed_at"`
	VerifiedAt       *string `json:"verified_at"`
}

// WriteJSON writes r as a runner.report/v1 JSON object: "schema", "run"
// (with counts by status and the total) and "rows". Times are RFC 3339 in
// UTC; zero times and zero ids are null.
func WriteJSON(w io.Writer, r *Report) error {
	c := r.Counts()
	out := jsonReport{
		Schema: Schema,
		Run: jsonRun{
			Command:         r.Run.Command,
			PlanFile:        r.Run.PlanFile,
			Start:           jsonTime(r.Run.Start),
			End:             jsonTime(r.Run.End),
			DurationSeconds: jsonDuration(r.Run.Start, r.Run.End),
			DryRun:          r.Run.DryRun,
			Interrupted:     r.Run.Interrupted,
			Counts:          jsonCounts{Succeeded: c[Succeeded], Failed: c[Failed], Skipped: c[Skipped]},
			Total:           len(r.Rows),
		},
		Rows: make([]jsonRow, 0, len(r.Rows)),
	}
	for _, row := range r.Rows {
		out.Rows = append(out.Rows, jsonRow{
			Line:             row.Line,
			CertificateID:    jsonID(row.CertificateID),
			Thumbprint:       row.Thumbprint,
			StoreID:          row.StoreID,
			Alias:            row.Alias,
			Status:           row.Status,
			Stage:            row.Stage,
			Detail:           row.Detail,
			NewCertificateID: jsonID(row.NewCertificateID),
			RequestID:        jsonID(row.RequestID),
			Error:            row.Error,
			RenewedAt:        jsonTime(row.RenewedAt),
			DeployedAt:       jsonTime(row.DeployedAt),
			VerifiedAt:       jsonTime(row.VerifiedAt),
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// Details quote server messages; keep <, > and & readable.
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// formatTime is the one time format of every report: RFC 3339 in UTC, to the
// second, or "" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func jsonTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := formatTime(t)
	return &s
}

func jsonID(id int) *int {
	if id == 0 {
		return nil
	}
	return &id
}

// jsonDuration is null unless both ends of the run are known.
func jsonDuration(start, end time.Time) *float64 {
	if start.IsZero() || end.IsZero() || end.Before(start) {
		return nil
	}
	// Milliseconds are plenty and keep the number short.
	s := end.Sub(start).Round(time.Millisecond).Seconds()
	return &s
}
