package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestHTMLIsSelfContainedAndEscaped(t *testing.T) {
	page := string(render(t, WriteHTML, fixture()))
	t.Run("loads nothing", func(t *testing.T) {
		for _, bad := range []string{"src=", "href=", "@import", "url(", "<link", "<iframe", "<img"} {
			if strings.Contains(page, bad) {
				t.Errorf("page holds %q", bad)
			}
		}
	})
	t.Run("one script, the page's own", func(t *testing.T) {
		if n := strings.Count(page, "<script"); n != 1 {
			t.Errorf("%d script elements, want 1", n)
		}
		if !strings.Contains(page, "Command said: &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; [click](http://evil.example) *now*") {
			t.Error("the markup detail is not shown as escaped text")
		}
	})
	t.Run("a run that did not happen says why", func(t *testing.T) {
		page := string(render(t, WriteHTML, &Report{Run: Run{NotRun: "lock held by <b>cron-1</b>"}}))
		for _, want := range []string{"The run did not happen: lock held by &lt;b&gt;cron-1&lt;/b&gt;", `class="verdict notrun"`, `<span id="shown">0 of 0 rows</span>`} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %q", want)
			}
		}
	})
	t.Run("the policy allows exactly the inline script and style", func(t *testing.T) {
		csp := regexp.MustCompile(`<meta http-equiv="Content-Security-Policy" content="([^"]*)">`).FindStringSubmatch(page)
		if csp == nil {
			t.Fatal("no Content-Security-Policy")
		}
		policy := html.UnescapeString(csp[1])
		for tag, body := range map[string]string{
			"script": between(t, page, "<script>", "</script>"),
			"style":  between(t, page, "<style>", "</style>"),
		} {
			sum := sha256.Sum256([]byte(body))
			want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
			if !strings.Contains(policy, want) {
				t.Errorf("policy %q lacks %q", policy, want)
			}
		}
		if !strings.HasPrefix(policy, "default-src 'none';") {
			t.Errorf("policy %q does not start from default-src 'none'", policy)
		}
	})
}

func between(t testing.TB, s, open, close string) string {
	t.Helper()
	_, rest, ok := strings.Cut(s, open)
	body, _, ok2 := strings.Cut(rest, close)
	if !ok || !ok2 {
		t.Fatalf("no %s…%s", open, close)
	}
	return body
}

func TestHTMLChart(t *testing.T) {
	start := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	renewed := func(id int, gap time.Duration, deployed bool) Row {
		row := Row{Line: id, CertificateID: id, NewCertificateID: id + 1, RenewedAt: start, Status: Succeeded}
		if deployed {
			row.DeployedAt = start.Add(gap)
		}
		return row
	}
	t.Run("slowest first, against the window", func(t *testing.T) {
		r := &Report{Run: Run{Start: start, Window: 5 * time.Minute}, Rows: []Row{
			renewed(10, 31*time.Millisecond, true),
			renewed(20, 0, false),
			renewed(30, 4*time.Minute+30*time.Second, true),
			renewed(40, 6*time.Minute, true),
			{Line: 50, CertificateID: 50, Status: Skipped}, // not renewed: no bar
		}}
		ch := newHTMLChart(r)
		var got []string
		for _, b := range ch.Bars {
			got = append(got, fmt.Sprintf("%s %s %s", b.Label, b.Class, b.Value))
		}
		want := []string{"20 → 21 undeployed not deployed", "40 → 41 over 6m0s", "30 → 31 near 4m30s", "10 → 11 ok 31ms"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("bars = %q, want %q", got, want)
		}
		if ch.Window != "5m0s" || ch.WindowX == "" {
			t.Errorf("window = %q at %q", ch.Window, ch.WindowX)
		}
	})
	t.Run("rows of one certificate make one bar, deployed at the latest", func(t *testing.T) {
		a, b := renewed(10, time.Second, true), renewed(10, 3*time.Second, true)
		ch := newHTMLChart(&Report{Rows: []Row{a, b}})
		if len(ch.Bars) != 1 || ch.Bars[0].Value != "3s" {
			t.Errorf("bars = %+v, want one of 3s", ch.Bars)
		}
	})
	t.Run("capped, saying so", func(t *testing.T) {
		r := &Report{}
		for i := range 100 {
			r.Rows = append(r.Rows, renewed(i+1, time.Duration(i+1)*time.Second, true))
		}
		ch := newHTMLChart(r)
		if len(ch.Bars) != chartMaxBars || ch.Bars[0].Value != "1m40s" || ch.Note != "The 60 slowest of 100 renewed certificates." {
			t.Errorf("%d bars, first %q, note %q", len(ch.Bars), ch.Bars[0].Value, ch.Note)
		}
	})
	t.Run("none when nothing was renewed", func(t *testing.T) {
		if ch := newHTMLChart(&Report{Rows: []Row{{Line: 2, Status: Skipped}}}); ch != nil {
			t.Errorf("chart = %+v, want none", ch)
		}
		if page := string(render(t, WriteHTML, &Report{})); strings.Contains(page, "<svg") {
			t.Error("an empty report has a chart")
		}
	})
}

// chromium finds Debian's chromium, or skips the test saying how to get it.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH: apt-get install -y chromium to check the HTML report in a real browser")
	return ""
}

// dumpDOM loads pageURL in headless chromium and returns the DOM after the
// page's script ran. The filter reads the URL fragment, so no browser driver
// is needed to set it.
func dumpDOM(t testing.TB, browser, pageURL string) string {
	t.Helper()
	// A bound on a hung browser, not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--dump-dom", pageURL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", pageURL, err, stderr.Bytes())
	}
	return string(out)
}

var (
	trTag    = regexp.MustCompile(`<tr\b[^>]*\bdata-line="(\d+)"[^>]*>`)
	shownTag = regexp.MustCompile(`<span id="shown">([^<]*)</span>`)
)

// TestHTMLFilterInBrowser opens the report in headless chromium with a
// filter in the URL fragment and checks which rows the page's script left
// visible.
func TestHTMLFilterInBrowser(t *testing.T) {
	browser := chromium(t)
	path := filepath.Join(t.TempDir(), "report.html")
	if err := WriteFile(path, fixture()); err != nil {
		t.Fatal(err)
	}
	page := (&url.URL{Scheme: "file", Path: path}).String()
	tests := []struct {
		name     string
		fragment string
		visible  string
		shown    string
	}{
		{"no filter", "", "[2 9 3 4 5 6 7]", "7 of 7 rows"},
		{"failed", "status=failed", "[9 3 6 7]", "4 of 7 rows"},
		{"status and words", "status=skipped&q=2027%20CHECK", "[4]", "1 of 7 rows"},
		{"search in escaped text", "q=" + url.QueryEscape("<script>"), "[7]", "1 of 7 rows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dom := dumpDOM(t, browser, page+"#"+tt.fragment)
			var visible []string
			for _, m := range trTag.FindAllStringSubmatch(dom, -1) {
				if !strings.Contains(m[0], "hidden") {
					visible = append(visible, m[1])
				}
			}
			if got := fmt.Sprint(visible); got != tt.visible {
				t.Errorf("visible rows = %s, want %s", got, tt.visible)
			}
			if m := shownTag.FindStringSubmatch(dom); m == nil || m[1] != tt.shown {
				t.Errorf("counter = %v, want %q", m, tt.shown)
			}
		})
	}
}
