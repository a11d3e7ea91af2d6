package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// NotifyWhen says which runs Notify posts about.
type NotifyWhen int

// When to notify.
const (
	// NotifyOnFailure posts when a row failed or the run did not happen.
	NotifyOnFailure NotifyWhen = iota
	// NotifyAlways posts after every run.
	NotifyAlways
)

// NotifyOptions tune Notify; the zero value posts on failure, tries three
// times and gives up after five seconds in all.
type NotifyOptions struct {
	When NotifyWhen
	// Timeout bounds all attempts together, so a receiver that hangs never
	// holds up the end of a run for longer; 0 means 5s.
	Timeout time.Duration
	// Backoff is the wait before the second attempt, doubled before each
	// later one; 0 means 250ms.
	Backoff time.Duration
}

// notifyAttempts is how many times Notify posts before giving up.
const notifyAttempts = 3

// NotifySchema names the version of the webhook's JSON body.
const NotifySchema = "runner.notify/v1"

// maxNotifyRows bounds the failed rows a notification lists: it is a chat
// message, and the report files hold the rest.
const maxNotifyRows = 20

type notifyPayload struct {
	Text        string      `json:"text"`
	Schema      string      `json:"schema"`
	Outcome     string      `json:"outcome"` // succeeded, failed, not_run
	PlanFile    string      `json:"plan_file"`
	CommandHost string      `json:"command_host"`
	Start       *string     `json:"start"`
	End         *string     `json:"end"`
	ExitCode    int         `json:"exit_code"`
	DryRun      bool        `json:"dry_run"`
	Interrupted bool        `json:"interrupted"`
	NotRun      *string     `json:"not_run"`
	Counts      jsonCounts  `json:"counts"`
	Total       int         `json:"total"`
	Renewed     int         `json:"renewed"`
	Deployed    int         `json:"deployed"`
	Failed      []notifyRow `json:"failed"`
	FailedMore  int         `json:"failed_not_listed"`
	Shard       *jsonShard  `json:"shard"`
	Runner      jsonRunner  `json:"runner"`
}

type notifyRow struct {
	Line          int    `json:"line"`
	CertificateID *int   `json:"certificate_id"`
	Thumbprint    string `json:"thumbprint"`
	StoreID       string `json:"store_id"`
	Alias         string `json:"alias"`
	Stage         string `json:"stage"`
	Detail        string `json:"detail"`
	Error         string `json:"error"`
}

// CheckWebhookURL reports whether rawURL can be posted to (http or https
// with a host), so that a command line can refuse a bad --notify-webhook
// before the run. Its error does not repeat the URL: webhook URLs carry
// their secret in the path.
func CheckWebhookURL(rawURL string) error {
	_, err := webhookURL(rawURL)
	return err
}

func webhookURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("notify webhook: not an http:// or https:// URL with a host")
	}
	return u, nil
}

// Notify posts a JSON summary of r to the webhook at rawURL when opts.When
// asks for it: its "text" field is the message Slack and Teams show (with &,
// < and > as entities, Slack's escaping), and the other fields hold the
// counts, the run's facts and the first failed rows for a machine. Nothing
// but report data goes out: no plan cells, no credentials. A transport
// error, 408, 425, 429 or 5xx is retried (three attempts in all), and
// opts.Timeout bounds the whole. Errors name the webhook by scheme and host
// only.
func Notify(ctx context.Context, rawURL string, r *Report, opts NotifyOptions) error {
	u, err := webhookURL(rawURL)
	if err != nil {
		return err
	}
	if opts.When == NotifyOnFailure && r.Run.NotRun == "" && r.Counts()[Failed] == 0 {
		return nil
	}
	body, err := json.Marshal(newNotifyPayload(r))
	if err != nil {
		return fmt.Errorf("notify webhook %s: %w", safeURL(u), err)
	}
	timeout := positiveOr(opts.Timeout, 5*time.Second)
	wait := positiveOr(opts.Backoff, 250*time.Millisecond)

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		retry, err := postOnce(ctx, u, body)
		if err == nil {
			return nil
		}
		if !retry || attempt == notifyAttempts || ctx.Err() != nil {
			return fmt.Errorf("notify webhook %s: %w (attempt %d of %d)", safeURL(u), err, attempt, notifyAttempts)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("notify webhook %s: %w (gave up after %d attempt(s) within %s)", safeURL(u), err, attempt, timeout)
		case <-t.C:
		}
		wait *= 2
	}
}

// positiveOr is d, or def when d is 0 or less.
func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// postOnce posts body and says whether a failure is worth another try.
func postOnce(ctx context.Context, u *url.URL, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return false, withoutURL(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return true, withoutURL(err)
	}
	defer resp.Body.Close()
	// Read a little of the body so the connection can be reused; what the
	// receiver says is not needed.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	err = fmt.Errorf("HTTP %s", resp.Status)
	switch {
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooEarly,
		resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return true, err
	}
	return false, err
}

// withoutURL drops the *url.Error wrapper, which repeats the whole URL and
// with it the webhook's secret.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// safeURL names a webhook without the path and query that hold its secret.
func safeURL(u *url.URL) string { return u.Scheme + "://" + u.Host + "/…" }

func newNotifyPayload(r *Report) notifyPayload {
	c := r.Counts()
	run := &r.Run
	renewed, deployed := activity(r)
	p := notifyPayload{
		Schema:      NotifySchema,
		PlanFile:    text(run.PlanFile),
		CommandHost: text(run.CommandHost),
		Start:       jsonTime(run.Start),
		End:         jsonTime(run.End),
		ExitCode:    run.ExitCode,
		DryRun:      run.DryRun,
		Interrupted: run.Interrupted,
		NotRun:      jsonText(run.NotRun),
		Counts:      newJSONCounts(c),
		Total:       len(r.Rows),
		Renewed:     renewed,
		Deployed:    deployed,
		Failed:      []notifyRow{},
		Shard:       newJSONShard(run.Shard),
		Runner:      jsonRunner{Version: text(run.Version), Commit: text(run.Commit)},
	}
	var failed []*Row
	for i := range r.Rows {
		row := &r.Rows[i]
		if row.Status != Failed {
			continue
		}
		if len(p.Failed) == maxNotifyRows {
			p.FailedMore++
			continue
		}
		failed = append(failed, row)
		p.Failed = append(p.Failed, notifyRow{
			Line:          row.Line,
			CertificateID: jsonID(row.CertificateID),
			Thumbprint:    text(row.Thumbprint),
			StoreID:       text(row.StoreID),
			Alias:         text(row.Alias),
			Stage:         text(string(row.Stage)),
			Detail:        text(row.Detail),
			Error:         text(row.Error),
		})
	}
	switch {
	case run.NotRun != "":
		p.Outcome = "not_run"
	case c[Failed] > 0:
		p.Outcome = "failed"
	default:
		p.Outcome = "succeeded"
	}
	p.Text = notifyText(&p, failed)
	return p
}

// notifyText is the chat message: a headline, then up to five of failed,
// the rows that p.Failed lists.
func notifyText(p *notifyPayload, failed []*Row) string {
	where := "runner"
	if p.PlanFile != "" {
		where += " " + p.PlanFile
	}
	if p.CommandHost != "" {
		where += " on " + p.CommandHost
	}
	var b strings.Builder
	switch p.Outcome {
	case "not_run":
		fmt.Fprintf(&b, "%s did not run: %s", where, oneLine(*p.NotRun))
	case "failed":
		fmt.Fprintf(&b, "%s: %d of %s failed (%d succeeded, %d skipped; %s renewed)",
			where, p.Counts.Failed, plural(p.Total, "row"), p.Counts.Succeeded, p.Counts.Skipped, plural(p.Renewed, "certificate"))
	default:
		fmt.Fprintf(&b, "%s: %s, none failed (%d succeeded, %d skipped; %s renewed)",
			where, plural(p.Total, "row"), p.Counts.Succeeded, p.Counts.Skipped, plural(p.Renewed, "certificate"))
	}
	if p.DryRun {
		b.WriteString(" [dry run]")
	}
	const listed = 5
	for i, row := range failed {
		if i == listed {
			fmt.Fprintf(&b, "\n… and %d more failed rows in the report", len(failed)-listed+p.FailedMore)
			break
		}
		fmt.Fprintf(&b, "\nline %d, certificate %s, store %s: %s: %s",
			row.Line, text(certificateName(row)), text(row.StoreID), text(string(row.Stage)), rowDetail(row))
	}
	return slackEscaper.Replace(b.String())
}

// slackEscaper escapes Slack's three control characters, and nothing else
// (api.slack.com/reference/surfaces/formatting, "Escaping text").
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
