package report

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parseMetrics reads a textfile back with the Prometheus text parser, as
// node_exporter's textfile collector does.
func parseMetrics(t testing.TB, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("the Prometheus text parser refuses %s: %v", path, err)
	}
	return families
}

// samples renders a family's samples as "label=value,… value", sorted.
func samples(mf *dto.MetricFamily) []string {
	var out []string
	for _, m := range mf.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			if l.GetName() != "plan" {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
		}
		out = append(out, strings.Join(labels, ",")+" "+strconv.FormatFloat(m.GetGauge().GetValue(), 'f', -1, 64))
	}
	sort.Strings(out)
	return out
}

func unixOf(t time.Time) string { return strconv.FormatFloat(unixSeconds(t), 'f', -1, 64) }

func TestMetricsReadByPrometheusParser(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runner.prom")
	if err := WriteMetrics(path, fixture()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "metrics.prom.golden", got)
	assertMode(t, path, 0o644)

	families := parseMetrics(t, path)
	f := fixture()
	expiry := func(i int) string { return unixOf(f.Rows[i].Expires) }
	tests := []struct {
		metric string
		want   string
	}{
		{"runner_last_run_timestamp_seconds", "[ " + unixOf(f.Run.End) + "]"},
		// The fixture has failed rows: no success to record, none before it.
		{"runner_last_success_timestamp_seconds", "<absent>"},
		{"runner_rows", "[status=failed 4 status=skipped 2 status=succeeded 1]"},
		{"runner_rows_by_stage", "[stage=check,status=skipped 1 stage=deploy,status=failed 2 stage=preflight,status=failed 1 stage=renew,status=failed 1 stage=renew,status=skipped 1 stage=verify,status=succeeded 1]"},
		{"runner_renewals", "[ 3]"},
		{"runner_deploys", "[ 2]"},
		{"runner_warnings", "[ 2]"},
		{"runner_run_duration_seconds", "[ 72.4]"},
		{"runner_exit_code", "[ 1]"},
		{"runner_certificate_expiry_timestamp_seconds", "[certificate=1234 " + expiry(0) + " certificate=1235 " + expiry(2) + " certificate=2000 " + expiry(1) + " certificate=" + thumb + " " + expiry(3) + "]"},
		{"runner_info", "[command_host=kf.example.com,commit=3f2a9c1,version=v1.4.0 1]"},
	}
	for _, tt := range tests {
		t.Run(tt.metric, func(t *testing.T) {
			mf := families[tt.metric]
			got := "<absent>"
			if mf != nil {
				if mf.GetType() != dto.MetricType_GAUGE {
					t.Errorf("type %v, want gauge", mf.GetType())
				}
				got = strings.Join([]string{"[", strings.Join(samples(mf), " "), "]"}, "")
			}
			if got != tt.want {
				t.Errorf("%s = %s, want %s", tt.metric, got, tt.want)
			}
		})
	}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			if labelValue(m, "plan") != "plans/nightly.csv" {
				t.Errorf("%s: plan label = %q", name, labelValue(m, "plan"))
			}
		}
	}
}

func lastSuccess(t testing.TB, path string) float64 {
	t.Helper()
	mf := parseMetrics(t, path)[lastSuccessMetric]
	if mf == nil {
		return 0
	}
	return mf.GetMetric()[0].GetGauge().GetValue()
}

// TestMetricsKeepLastSuccess runs nights into one file: a success, a
// failure, a dry run, an interrupted run, a success. The failure, the dry
// run and the interrupted run keep the first night's success, read back
// from the file.
func TestMetricsKeepLastSuccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runner.prom")
	night := func(day int, failed, dry bool) *Report {
		start := time.Date(2026, 11, day, 2, 0, 0, 0, time.UTC)
		r := &Report{Run: Run{PlanFile: "plans/nightly.csv", Start: start, End: start.Add(time.Minute), DryRun: dry}}
		row := Row{Line: 2, CertificateID: 1, Status: Succeeded, RenewedAt: start, DeployedAt: start}
		if failed {
			row.Status = Failed
		}
		r.Rows = []Row{row}
		return r
	}
	interrupted := night(26, false, false)
	interrupted.Run.Interrupted = true
	first := float64(time.Date(2026, 11, 24, 2, 1, 0, 0, time.UTC).Unix())
	steps := []struct {
		name string
		r    *Report
		want float64
	}{
		{"success", night(24, false, false), first},
		{"failure keeps it", night(25, true, false), first},
		{"dry run keeps it", night(26, false, true), first},
		{"interrupted run keeps it", interrupted, first},
		{"the next success replaces it", night(27, false, false), first + 3*86400},
	}
	for _, s := range steps {
		if err := WriteMetrics(path, s.r); err != nil {
			t.Fatal(err)
		}
		if got := lastSuccess(t, path); got != s.want {
			t.Errorf("%s: last success = %v, want %v", s.name, got, s.want)
		}
	}
	t.Run("another plan's success is not carried over", func(t *testing.T) {
		r := night(28, true, false)
		r.Run.PlanFile = "plans/other.csv"
		if err := WriteMetrics(path, r); err != nil {
			t.Fatal(err)
		}
		if got := lastSuccess(t, path); got != 0 {
			t.Errorf("last success = %v, want none", got)
		}
	})
	t.Run("an unreadable old file carries nothing over", func(t *testing.T) {
		if err := os.WriteFile(path, []byte("not { metrics\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := WriteMetrics(path, night(29, true, false)); err != nil {
			t.Fatal(err)
		}
		if got := lastSuccess(t, path); got != 0 {
			t.Errorf("last success = %v, want none", got)
		}
	})
}

func TestMetricsOfARunThatDidNotHappen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runner.prom")
	start := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	r := &Report{Run: Run{PlanFile: "p.csv", Start: start, End: start, NotRun: "another run holds the lock", ExitCode: 4}}
	if err := WriteMetrics(path, r); err != nil {
		t.Fatal(err)
	}
	families := parseMetrics(t, path)
	if families[lastSuccessMetric] != nil {
		t.Error("a run that did not happen is a success")
	}
	if got := families["runner_exit_code"].GetMetric()[0].GetGauge().GetValue(); got != 4 {
		t.Errorf("exit code = %v", got)
	}
	if got := samples(families["runner_rows"]); strings.Join(got, " ") != "status=failed 0 status=skipped 0 status=succeeded 0" {
		t.Errorf("rows = %v, want every status at 0", got)
	}
}
