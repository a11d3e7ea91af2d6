package report

import (
	"bytes"
	"encoding/json"
	"io"
	"time"
)

// Schema names the version of the JSON report; it changes only when a field
// changes meaning or goes away. v2 added the run's exit code, runner's
// version and commit, the Command host, the window, the shard, not_run, and
// each row's warnings, due_at and expires.
const Schema = "runner.report/v2"

// The JSON shapes are kept apart from Row and Run so that the file format is
// fixed here, in one place, and the Go types stay free of wire tags.
type jsonRun struct {
	Command         string     `json:"command"`
	PlanFile        string     `json:"plan_file"`
	Start           *string    `json:"start"`
	End             *string    `json:"end"`
	DurationSeconds *float64   `json:"duration_seconds"`
	DryRun          bool       `json:"dry_run"`
	Interrupted     bool       `json:"interrupted"`
	NotRun          *string    `json:"not_run"`
	ExitCode        int        `json:"exit_code"`
	Runner          jsonRunner `json:"runner"`
	CommandHost     string     `json:"command_host"`
	WindowSeconds   *float64   `json:"window_seconds"`
	Shard           *jsonShard `json:"shard"`
	Counts          jsonCounts `json:"counts"`
	Total           int        `json:"total"`
}

type jsonRunner struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
}

type jsonShard struct {
	Index    int `json:"index"`
	Count    int `json:"count"`
	Rows     int `json:"rows"`
	PlanRows int `json:"plan_rows"`
}

type jsonCounts struct {
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
}

type jsonRow struct {
	Line             int      `json:"line"`
	CertificateID    *int     `json:"certificate_id"`
	Thumbprint       string   `json:"thumbprint"`
	StoreID          string   `json:"store_id"`
	Alias            string   `json:"alias"`
	Status           string   `json:"status"`
	Stage            string   `json:"stage"`
	Detail           string   `json:"detail"`
	Warnings         []string `json:"warnings"`
	NewCertificateID *int     `json:"new_certificate_id"`
	RequestID        *int     `json:"request_id"`
	Error            string   `json:"error"`
	RenewedAt        *string  `json:"renewed_at"`
	DeployedAt       *string  `json:"deployed_at"`
	VerifiedAt       *string  `json:"verified_at"`
	DueAt            *string  `json:"due_at"`
	Expires          *string  `json:"expires"`
}

// WriteJSON writes r as a runner.report/v2 JSON object: "schema", "run"
// (with counts by status and the total) and "rows". Times are RFC 3339 in
// UTC; zero times, zero ids and an empty not_run are null; warnings are
// always a list. The rows are encoded and written one at a time, so a report
// of any size costs the memory of one row.
func WriteJSON(w io.Writer, r *Report) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Details quote server messages; keep <, > and & readable.
	enc.SetEscapeHTML(false)

	buf.WriteString("{\n  \"schema\": \"" + Schema + "\",\n  \"run\": ")
	enc.SetIndent("  ", "  ")
	if err := enc.Encode(newJSONRun(r)); err != nil {
		return err
	}
	trimNewline(&buf)
	if len(r.Rows) == 0 {
		buf.WriteString(",\n  \"rows\": []\n}\n")
		_, err := w.Write(buf.Bytes())
		return err
	}
	buf.WriteString(",\n  \"rows\": [\n")

	enc.SetIndent("    ", "  ")
	for i := range r.Rows {
		buf.WriteString("    ")
		if err := enc.Encode(newJSONRow(&r.Rows[i])); err != nil {
			return err
		}
		trimNewline(&buf)
		if i < len(r.Rows)-1 {
			buf.WriteString(",\n")
		} else {
			buf.WriteString("\n  ]\n}\n")
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		buf.Reset()
	}
	return nil
}

func trimNewline(buf *bytes.Buffer) {
	if b := buf.Bytes(); len(b) > 0 && b[len(b)-1] == '\n' {
		buf.Truncate(len(b) - 1)
	}
}

func newJSONRun(r *Report) jsonRun {
	c := r.Counts()
	run := &r.Run
	out := jsonRun{
		Command:         text(run.Command),
		PlanFile:        text(run.PlanFile),
		Start:           jsonTime(run.Start),
		End:             jsonTime(run.End),
		DurationSeconds: jsonDuration(run),
		DryRun:          run.DryRun,
		Interrupted:     run.Interrupted,
		ExitCode:        run.ExitCode,
		Runner:          jsonRunner{Version: text(run.Version), Commit: text(run.Commit)},
		CommandHost:     text(run.CommandHost),
		NotRun:          jsonText(run.NotRun),
		Shard:           newJSONShard(run.Shard),
		Counts:          newJSONCounts(c),
		Total:           len(r.Rows),
	}
	if run.Window > 0 {
		s := run.Window.Seconds()
		out.WindowSeconds = &s
	}
	return out
}

// newJSONCounts, newJSONShard and jsonText are shared with the webhook's
// payload, which repeats these fields of the run.
func newJSONCounts(c map[Status]int) jsonCounts {
	return jsonCounts{Succeeded: c[Succeeded], Failed: c[Failed], Skipped: c[Skipped]}
}

func newJSONShard(s *Shard) *jsonShard {
	if s == nil {
		return nil
	}
	return &jsonShard{Index: s.Index, Count: s.Count, Rows: s.Rows, PlanRows: s.PlanRows}
}

// jsonText is null for "".
func jsonText(s string) *string {
	if s == "" {
		return nil
	}
	t := text(s)
	return &t
}

func newJSONRow(row *Row) jsonRow {
	warnings := make([]string, len(row.Warnings))
	for i, w := range row.Warnings {
		warnings[i] = text(w)
	}
	return jsonRow{
		Line:             row.Line,
		CertificateID:    jsonID(row.CertificateID),
		Thumbprint:       text(row.Thumbprint),
		StoreID:          text(row.StoreID),
		Alias:            text(row.Alias),
		Status:           text(string(row.Status)),
		Stage:            text(string(row.Stage)),
		Detail:           text(row.Detail),
		Warnings:         warnings,
		NewCertificateID: jsonID(row.NewCertificateID),
		RequestID:        jsonID(row.RequestID),
		Error:            text(row.Error),
		RenewedAt:        jsonTime(row.RenewedAt),
		DeployedAt:       jsonTime(row.DeployedAt),
		VerifiedAt:       jsonTime(row.VerifiedAt),
		DueAt:            jsonTime(row.DueAt),
		Expires:          jsonTime(row.Expires),
	}
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
func jsonDuration(run *Run) *float64 {
	d, ok := runDuration(run)
	if !ok {
		return nil
	}
	// Milliseconds are plenty and keep the number short.
	s := d.Round(time.Millisecond).Seconds()
	return &s
}
