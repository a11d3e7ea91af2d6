package report

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var night = time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)

// quietNight is 25 rows of which none is due.
func quietNight() *Report {
	r := &Report{Run: Run{Start: night, End: night.Add(3 * time.Second)}}
	for i := range 25 {
		due := night.AddDate(0, 2, 0).Add(time.Duration(i) * 24 * time.Hour)
		if i == 7 {
			due = time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC)
		}
		r.Rows = append(r.Rows, Row{
			Line: i + 2, CertificateID: 4094 + i, StoreID: storeA,
			Status: Skipped, Stage: StageCheck, Detail: "not due until " + due.Format("2006-01-02"), DueAt: due,
		})
	}
	return r
}

func renewedNight() *Report {
	r := quietNight()
	r.Rows[0].Status, r.Rows[0].Stage, r.Rows[0].Detail = Succeeded, StageDeploy, "job created"
	r.Rows[0].RenewedAt, r.Rows[0].DeployedAt, r.Rows[0].NewCertificateID = night.Add(time.Second), night.Add(time.Second), 9001
	return r
}

func failedNight() *Report {
	r := renewedNight()
	r.Rows[3].Status, r.Rows[3].Stage = Failed, StageRenew
	r.Rows[3].Detail = "not renewed: Command did not process Renew after 3 attempt(s)"
	r.Rows[3].Error = "POST /Enrollment/Renew: HTTP 503: Service Unavailable"
	return r
}

func preflightNight() *Report {
	r := quietNight()
	for i := range r.Rows {
		r.Rows[i].Status, r.Rows[i].Stage, r.Rows[i].DueAt = Failed, StagePreflight, time.Time{}
		r.Rows[i].Detail = "preflight failed: GET /Security/My/Permissions: HTTP 503: Command is busy"
	}
	return r
}

func TestKindOf(t *testing.T) {
	notRun := &Report{Run: Run{NotRun: "plan.csv: 3 errors"}}
	interrupted := quietNight()
	interrupted.Run.Interrupted = true
	dry := quietNight()
	dry.Run.DryRun = true
	// Deployed by an earlier night, settled by this one.
	settled := quietNight()
	settled.Rows[0].Status, settled.Rows[0].Stage = Succeeded, StageDeploy
	settled.Rows[0].DeployedAt = night.Add(-24 * time.Hour)
	tests := []struct {
		name     string
		r        *Report
		terminal bool
		quiet    bool
		want     SummaryKind
	}{
		{"nothing happened, cron", quietNight(), false, false, SummaryNothing},
		{"nothing happened, terminal", quietNight(), true, false, SummaryLine},
		{"nothing happened, quiet terminal", quietNight(), true, true, SummaryNothing},
		{"renewed, cron", renewedNight(), false, false, SummaryFull},
		{"renewed, quiet", renewedNight(), true, true, SummaryNothing},
		{"succeeded a row deployed earlier, cron", settled, false, false, SummaryFull},
		{"failed, cron", failedNight(), false, false, SummaryFull},
		{"failed, quiet", failedNight(), false, true, SummaryFailures},
		{"did not run, quiet", notRun, false, true, SummaryNotRun},
		{"preflight failed every row, cron", preflightNight(), false, false, SummaryNotRun},
		{"interrupted, cron", interrupted, false, false, SummaryFull},
		{"dry run, cron", dry, false, false, SummaryFull},
		{"empty plan, terminal", &Report{}, true, false, SummaryLine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SummaryKindOf(tt.r, SummaryOptions{Terminal: tt.terminal, Quiet: tt.quiet}); got != tt.want {
				t.Errorf("SummaryKindOf = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestSummaryExact(t *testing.T) {
	tests := []struct {
		name string
		r    *Report
		opts SummaryOptions
		want string
	}{
		{
			name: "cron, nothing due: silence",
			r:    quietNight(),
			want: "",
		},
		{
			name: "terminal, nothing due: one line with the next due",
			r:    quietNight(),
			opts: SummaryOptions{Terminal: true},
			want: "25 rows, nothing due; next due 2027-01-10 (certificate 4101)\n",
		},
		{
			name: "renewed",
			r:    renewedNight(),
			opts: SummaryOptions{Width: 80},
			want: "" +
				"25 rows: 1 succeeded, 0 failed, 24 skipped (3s)\n" +
				"renewed 1 certificate, deployed to 1 store\n" +
				"\n" +
				"LINE  CERTIFICATE  STORE      STATUS   STAGE  DETAIL\n" +
				skippedLines(renewedNight().Rows[1:]),
		},
		{
			name: "quiet failures: only the failed rows, the whole detail wrapped",
			r:    failedNight(),
			opts: SummaryOptions{Quiet: true, Width: 72},
			want: "" +
				"25 rows: 1 succeeded, 1 failed, 23 skipped (3s)\n" +
				"\n" +
				"LINE  CERTIFICATE  STORE      STATUS  STAGE  DETAIL\n" +
				"5     4097         4b5e1c2a…  failed  renew  not renewed: Command did\n" +
				"                                             not process Renew after 3\n" +
				"                                             attempt(s): POST\n" +
				"                                             /Enrollment/Renew: HTTP\n" +
				"                                             503: Service Unavailable\n",
		},
		{
			name: "preflight failed: one block",
			r:    preflightNight(),
			want: "" +
				"preflight failed for all 25 rows: preflight failed: GET /Security/My/Permissions: HTTP 503: Command\n" +
				"  is busy\n" +
				"nothing was renewed; the report files list every row\n",
		},
		{
			name: "did not run",
			r:    &Report{Run: Run{NotRun: "another run holds the lock on /var/lib/runner/kf.example.com.db (pid 4242 on cron-1)"}, Rows: make([]Row, 3)},
			opts: SummaryOptions{Quiet: true},
			want: "" +
				"runner did not run: another run holds the lock on /var/lib/runner/kf.example.com.db (pid 4242 on\n" +
				"  cron-1)\n" +
				"nothing was renewed; the report files list the 3 plan rows\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(render(t, summaryWith(tt.opts), tt.r))
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func skippedLines(rows []Row) string {
	var b strings.Builder
	for _, row := range rows {
		fmt.Fprintf(&b, "%-6d%-13d%-11s%-9s%-7s%s\n", row.Line, row.CertificateID, "4b5e1c2a…", "skipped", "check", row.Detail)
	}
	return b.String()
}

func TestSummaryPreflightReasonsGrouped(t *testing.T) {
	rep := preflightNight()
	for i := range rep.Rows[:5] {
		rep.Rows[i].Detail = "store not found"
	}
	rep.Rows[9].Detail = "permission /certificate_stores/schedule/ missing for container 2"
	want := "" +
		"preflight failed for all 25 rows:\n" +
		"  5 rows: store not found\n" +
		"  19 rows: preflight failed: GET /Security/My/Permissions: HTTP 503: Command is busy\n" +
		"  1 row: permission /certificate_stores/schedule/ missing for container 2\n" +
		"nothing was renewed; the report files list every row\n"
	if got := string(render(t, summaryWith(SummaryOptions{}), rep)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestSummaryCapsTheTable(t *testing.T) {
	rep := &Report{}
	rep.Rows = append(rep.Rows, Row{Line: 500, CertificateID: 1, Status: Failed, Stage: StageRenew, Detail: "refused"})
	for i := range 60 {
		rep.Rows = append(rep.Rows, Row{Line: i + 2, CertificateID: 100 + i, Status: Skipped, Stage: StageCheck, Detail: "deferred by --max-renewals"})
	}
	got := string(render(t, summaryWith(SummaryOptions{}), rep))
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if !strings.HasPrefix(lines[3], "500 ") {
		t.Errorf("first table row = %q, want the failed line 500 first", lines[3])
	}
	if want := "… 11 more not shown (11 skipped); the report files list every row"; lines[len(lines)-1] != want {
		t.Errorf("last line = %q, want %q", lines[len(lines)-1], want)
	}
	if n := len(lines) - 3 - 1; n != maxSummaryRows {
		t.Errorf("%d table rows, want %d", n, maxSummaryRows)
	}
}

func TestSummaryNeverCutsDetails(t *testing.T) {
	detail := "not due until 2027-12-31: certificate 4101 (CN=www.example.com) is renewed 30d before it expires on 2028-01-30"
	for _, rep := range []*Report{
		// A dry run's table per certificate.
		{Run: Run{DryRun: true}, Rows: []Row{{Line: 2, CertificateID: 4101, Status: Skipped, Stage: StageCheck, Detail: detail}}},
		// A failed row in a run's table.
		{Rows: []Row{{Line: 2, CertificateID: 4101, Status: Failed, Stage: StageCheck, Detail: detail}}},
	} {
		got := string(render(t, summaryWith(SummaryOptions{Width: 80}), rep))
		for _, line := range strings.Split(got, "\n") {
			if len([]rune(line)) > 80 {
				t.Errorf("line of %d runes: %q", len([]rune(line)), line)
			}
		}
		if words := strings.Join(strings.Fields(got), " "); !strings.Contains(words, detail) {
			t.Errorf("detail cut or broken up:\n%s", got)
		}
	}
}

func TestSummaryStripsTerminalControls(t *testing.T) {
	rep := &Report{Rows: []Row{{Line: 2, CertificateID: 1, Status: Failed, Stage: StageRenew, Detail: "red\x1b[31m alert\x07 done"}}}
	got := string(render(t, summaryWith(SummaryOptions{}), rep))
	if strings.ContainsAny(got, "\x1b\x07") {
		t.Errorf("summary passes control characters: %q", got)
	}
	if !strings.Contains(got, "red [31m alert done") {
		t.Errorf("summary = %q", got)
	}
}

func TestWrap(t *testing.T) {
	tests := []struct {
		in    string
		width int
		want  []string
	}{
		{"", 10, []string{""}},
		{"a b c", 10, []string{"a b c"}},
		{"aaaa bbbb cccc", 9, []string{"aaaa bbbb", "cccc"}},
		{"abcdefghijkl", 5, []string{"abcde", "fghij", "kl"}},
		{"ab abcdefghijkl", 5, []string{"ab", "abcde", "fghij", "kl"}},
		{"é é é", 3, []string{"é é", "é"}},
	}
	for _, tt := range tests {
		if got := wrap(tt.in, tt.width); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
			t.Errorf("wrap(%q, %d) = %q, want %q", tt.in, tt.width, got, tt.want)
		}
	}
}

func TestSummaryCapsWarningsAndReasons(t *testing.T) {
	t.Run("warnings", func(t *testing.T) {
		rep := renewedNight()
		for i := range 60 {
			rep.Rows[0].Warnings = append(rep.Rows[0].Warnings, fmt.Sprintf("warning %d", i+1))
		}
		got := string(render(t, summaryWith(SummaryOptions{}), rep))
		_, warnings, ok := strings.Cut(got, "\nwarnings:\n")
		if !ok {
			t.Fatalf("no warnings:\n%s", got)
		}
		lines := strings.Split(strings.TrimSuffix(warnings, "\n"), "\n")
		if len(lines) != maxSummaryRows+1 || lines[0] != "  line 2: warning 1" || lines[maxSummaryRows-1] != "  line 2: warning 50" {
			t.Errorf("%d warning lines, first %q; want %d from warning 1 to 50, then the rest counted", len(lines), lines[0], maxSummaryRows)
		}
		if want := "  … 10 more; the report files list every warning"; lines[len(lines)-1] != want {
			t.Errorf("last line = %q, want %q", lines[len(lines)-1], want)
		}
	})
	t.Run("preflight reasons", func(t *testing.T) {
		rep := preflightNight()
		for i := range rep.Rows {
			rep.Rows[i].Detail = fmt.Sprintf("store %d not found", i%13)
		}
		got := string(render(t, summaryWith(SummaryOptions{}), rep))
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		want := []string{"preflight failed for all 25 rows:"}
		for i := range maxReasons {
			want = append(want, fmt.Sprintf("  2 rows: store %d not found", i))
		}
		want = append(want, "  … and 3 other reasons", "nothing was renewed; the report files list every row")
		if fmt.Sprintf("%q", lines) != fmt.Sprintf("%q", want) {
			t.Errorf("got\n%s\nwant\n%s", got, strings.Join(want, "\n"))
		}
	})
}
