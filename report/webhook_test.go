package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver is a webhook endpoint that answers with the given statuses in
// turn (the last one repeated) and keeps every body it got.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	bodies   [][]byte
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.bodies = append(rc.bodies, body)
	status := rc.statuses[min(len(rc.bodies), len(rc.statuses))-1]
	rc.mu.Unlock()
	if r.Header.Get("Content-Type") != "application/json" {
		status = http.StatusUnsupportedMediaType
	}
	w.WriteHeader(status)
}

func (rc *receiver) posts() [][]byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.bodies
}

// secretPath is what a Slack or Teams webhook URL carries after the host:
// the credential itself.
const secretPath = "/services/T000/B000/XyZsecretTOKEN"

func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + secretPath
}

// fast keeps the retries of a test short; Notify's own defaults are for
// real receivers.
var fast = NotifyOptions{Backoff: time.Millisecond, Timeout: 10 * time.Second}

func TestNotifyPostsTheSummary(t *testing.T) {
	rc := &receiver{statuses: []int{200}}
	r := fixture()
	r.Rows[0].PlanValues[6] = "env:DISTINCTIVE_PLAN_CELL"
	if err := Notify(context.Background(), serve(t, rc), r, fast); err != nil {
		t.Fatal(err)
	}
	posts := rc.posts()
	if len(posts) != 1 {
		t.Fatalf("%d posts, want 1", len(posts))
	}
	var got struct {
		Text    string
		Schema  string
		Outcome string
		Counts  map[string]int
		Failed  []struct {
			Line   int
			Stage  string
			Detail string
		}
		ExitCode int `json:"exit_code"`
	}
	if err := json.Unmarshal(posts[0], &got); err != nil {
		t.Fatal(err)
	}
	wantText := "runner plans/nightly.csv on kf.example.com: 4 of 7 rows failed (1 succeeded, 2 skipped; 3 certificates renewed)\n" +
		"line 9, certificate 2000, store " + storeB + ": preflight: store not found\n" +
		"line 3, certificate 1235, store " + storeB + ": deploy: window expired 12s before deploy | renewed, not deployed rerun to deploy 5679: POST /Enrollment/PFX/Deploy: HTTP 400: 0xA0110008: The format \"STORE\" is invalid, try again\n" +
		"line 6, certificate 4000, store " + storeB + ": deploy: " + r.Rows[5].Detail + "\n" +
		"line 7, certificate 5000, store " + storeA + ": renew: Command said: &lt;script&gt;alert(\"x\")&lt;/script&gt; &amp; [click](http://evil.example) *now*: -2+3 @SUM(A1:A9) +cmd|' /C calc'!A0"
	if got.Text != wantText {
		t.Errorf("text =\n%s\nwant\n%s", got.Text, wantText)
	}
	if got.Schema != NotifySchema || got.Outcome != "failed" || got.ExitCode != 1 || got.Counts["failed"] != 4 || len(got.Failed) != 4 || got.Failed[1].Stage != "deploy" {
		t.Errorf("payload = %+v", got)
	}
	for _, leak := range []string{"DISTINCTIVE_PLAN_CELL", "env:PFX_PASS", "secrets/mail.pass"} {
		if strings.Contains(string(posts[0]), leak) {
			t.Errorf("payload holds %q, which is plan data, not report data", leak)
		}
	}
}

func TestNotifyWhen(t *testing.T) {
	ok := &Report{Rows: []Row{{Line: 2, Status: Succeeded}}}
	notRun := &Report{Run: Run{NotRun: "plan.csv: 2 errors"}}
	tests := []struct {
		name  string
		r     *Report
		when  NotifyWhen
		posts int
	}{
		{"success, on failure", ok, NotifyOnFailure, 0},
		{"success, always", ok, NotifyAlways, 1},
		{"failure, on failure", fixture(), NotifyOnFailure, 1},
		{"did not run, on failure", notRun, NotifyOnFailure, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &receiver{statuses: []int{204}}
			opts := fast
			opts.When = tt.when
			if err := Notify(context.Background(), serve(t, rc), tt.r, opts); err != nil {
				t.Fatal(err)
			}
			if n := len(rc.posts()); n != tt.posts {
				t.Errorf("%d posts, want %d", n, tt.posts)
			}
		})
	}
}

func TestNotifyRetries(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		posts    int
		err      string
	}{
		{"503 then 429 then ok", []int{503, 429, 200}, 3, ""},
		{"408 then 425 then ok", []int{408, 425, 200}, 3, ""},
		{"server errors to the end", []int{500}, 3, "HTTP 500 Internal Server Error (attempt 3 of 3)"},
		{"a refusal is not retried", []int{400}, 1, "HTTP 400 Bad Request (attempt 1 of 3)"},
		{"gone is not retried", []int{404}, 1, "HTTP 404 Not Found (attempt 1 of 3)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &receiver{statuses: tt.statuses}
			err := Notify(context.Background(), serve(t, rc), fixture(), fast)
			if n := len(rc.posts()); n != tt.posts {
				t.Errorf("%d posts, want %d", n, tt.posts)
			}
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("error = %v", err)
			case tt.err != "" && (err == nil || !strings.HasSuffix(err.Error(), tt.err)):
				t.Errorf("error = %v, want one ending %q", err, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the webhook's secret path", err)
			}
		})
	}
}

// TestNotifyRetriesATransportError: a receiver that drops the connection
// without an answer is tried again.
func TestNotifyRetriesATransportError(t *testing.T) {
	var mu sync.Mutex
	posts := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		posts++
		first := posts == 1
		mu.Unlock()
		if first {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.Close()
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	if err := Notify(context.Background(), serve(t, h), fixture(), fast); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if posts != 2 {
		t.Errorf("%d posts, want 2", posts)
	}
}

// TestNotifyGivesUpOnAHangingReceiver shows the total deadline: a receiver
// that never answers costs at most opts.Timeout, and the error says so
// without the URL's secret.
func TestNotifyGivesUpOnAHangingReceiver(t *testing.T) {
	release := make(chan struct{})
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	url := serve(t, hang)
	t.Cleanup(func() { close(release) })

	opts := NotifyOptions{Timeout: 300 * time.Millisecond}
	err := Notify(context.Background(), url, fixture(), opts)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want the deadline", err)
	}
	if strings.Contains(err.Error(), "secret") || !strings.HasPrefix(err.Error(), "notify webhook http://127.0.0.1:") {
		t.Errorf("error = %q, want it to name the receiver by host only", err)
	}
}

func TestNotifyCancelledContext(t *testing.T) {
	rc := &receiver{statuses: []int{200}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Notify(ctx, serve(t, rc), fixture(), fast); !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	if n := len(rc.posts()); n != 0 {
		t.Errorf("%d posts after cancel", n)
	}
}

func TestCheckWebhookURL(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://hooks.slack.com" + secretPath, true},
		{"http://127.0.0.1:8080/hook", true},
		{"ftp://example.com/x", false},
		{"hooks.slack.com" + secretPath, false},
		{"https://", false},
		{"://bad", false},
	}
	for _, tt := range tests {
		err := CheckWebhookURL(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("CheckWebhookURL(%q) = %v, want ok %v", tt.url, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error %q repeats the URL", err)
		}
	}
}

// TestNotifyListsTheFirstFailedRows shows the caps: the payload lists the
// first maxNotifyRows failed rows and counts the rest, and the text names
// the first five and how many more the report holds.
func TestNotifyListsTheFirstFailedRows(t *testing.T) {
	r := &Report{}
	for i := range 25 {
		r.Rows = append(r.Rows, Row{Line: i + 2, CertificateID: 100 + i, StoreID: storeA, Status: Failed, Stage: StageRenew, Detail: "refused"})
	}
	p := newNotifyPayload(r)
	if len(p.Failed) != maxNotifyRows || p.FailedMore != 5 || p.Failed[0].Line != 2 || p.Failed[maxNotifyRows-1].Line != maxNotifyRows+1 {
		t.Errorf("%d failed rows listed (first line %d), %d not listed; want %d from line 2, 5 not listed",
			len(p.Failed), p.Failed[0].Line, p.FailedMore, maxNotifyRows)
	}
	lines := strings.Split(p.Text, "\n")
	want := []string{
		"runner: 25 of 25 rows failed (0 succeeded, 0 skipped; 0 certificates renewed)",
		"line 2, certificate 100, store " + storeA + ": renew: refused",
		"line 3, certificate 101, store " + storeA + ": renew: refused",
		"line 4, certificate 102, store " + storeA + ": renew: refused",
		"line 5, certificate 103, store " + storeA + ": renew: refused",
		"line 6, certificate 104, store " + storeA + ": renew: refused",
		"… and 20 more failed rows in the report",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("text =\n%s\nwant\n%s", p.Text, strings.Join(want, "\n"))
	}
}

func TestNotifyRunThatDidNotHappen(t *testing.T) {
	r := &Report{Run: Run{
		PlanFile: "plans/nightly.csv",
		NotRun:   "another run holds the lock",
		ExitCode: 4,
		Shard:    &Shard{Index: 2, Count: 3, Rows: 840, PlanRows: 2500},
	}}
	body, err := json.Marshal(newNotifyPayload(r))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{
		"text":      "runner plans/nightly.csv did not run: another run holds the lock",
		"outcome":   "not_run",
		"not_run":   "another run holds the lock",
		"exit_code": "4",
		"shard":     "map[count:3 index:2 plan_rows:2500 rows:840]",
		"counts":    "map[failed:0 skipped:0 succeeded:0]",
		"failed":    "[]",
	} {
		if v := fmt.Sprint(got[field]); v != want {
			t.Errorf("%s = %s, want %s", field, v, want)
		}
	}
}
