package report

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsMode lets node_exporter, which runs as its own user, read the
// textfile; it holds counts, times and certificate ids, no secrets. (The
// Prometheus client's own WriteToTextfile uses 0644 too.)
const metricsMode fs.FileMode = 0o644

// lastSuccessMetric is read back from the previous file, so it is named once.
const lastSuccessMetric = "runner_last_success_timestamp_seconds"

// WriteMetrics writes r to path in the Prometheus text format, for
// node_exporter's textfile collector (name the file *.prom in its
// --collector.textfile.directory). The file is replaced atomically, so the
// collector never reads half of it. Every metric has the label plan
// (Run.PlanFile), so that several plans can share one directory:
//
//	runner_last_run_timestamp_seconds       end of this run
//	runner_last_success_timestamp_seconds   end of the last run with no failed row
//	runner_rows{status}                     rows by status (all three always present)
//	runner_rows_by_stage{status,stage}      rows by status and the stage they ended at
//	runner_renewals                         certificates renewed by this run
//	runner_deploys                          store deploys made by this run
//	runner_warnings                         warnings on this run's rows
//	runner_run_duration_seconds             length of this run
//	runner_exit_code                        exit code of this run
//	runner_certificate_expiry_timestamp_seconds{certificate}
//	                                        NotAfter of the certificate now in the
//	                                        stores (the earliest of its rows)
//	runner_info{version,commit,command_host} 1
//
// A run succeeded when it ran (not a dry run, not interrupted) and no row
// failed. When this run did not succeed, the last success is carried over
// from the file already at path, if it holds one; a file that cannot be read
// carries nothing over. Its error names path.
func WriteMetrics(path string, r *Report) error {
	previous := previousSuccess(path, r.Run.PlanFile)
	families, err := metricsRegistry(r, previous).Gather()
	if err != nil {
		return fmt.Errorf("write metrics %s: %w", path, err)
	}
	err = writeAtomic(path, metricsMode, func(w io.Writer) error {
		for _, mf := range families {
			if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write metrics %s: %w", path, err)
	}
	return nil
}

func metricsRegistry(r *Report, previousSuccess float64) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"plan": text(r.Run.PlanFile)}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
		reg.MustRegister(g)
		return g
	}
	vec := func(name, help string, by ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, by)
		reg.MustRegister(g)
		return g
	}
	run := &r.Run
	end := run.End
	if end.IsZero() {
		end = run.Start
	}
	if !end.IsZero() {
		gauge("runner_last_run_timestamp_seconds", "When the last run ended, in seconds since the epoch.").Set(unixSeconds(end))
	}
	c := r.Counts()
	success := previousSuccess
	if run.NotRun == "" && !run.DryRun && !run.Interrupted && c[Failed] == 0 && !end.IsZero() {
		success = unixSeconds(end)
	}
	if success > 0 {
		gauge(lastSuccessMetric, "When the last run without a failed row ended, in seconds since the epoch.").Set(success)
	}

	byStatus := vec("runner_rows", "Plan rows of the last run, by status.", "status")
	for _, s := range statuses {
		byStatus.WithLabelValues(string(s)).Set(float64(c[s]))
	}
	byStage := vec("runner_rows_by_stage", "Plan rows of the last run, by status and the stage they ended at.", "status", "stage")
	expiry := map[string]time.Time{}
	warnings := 0
	for i := range r.Rows {
		row := &r.Rows[i]
		byStage.WithLabelValues(text(string(row.Status)), text(string(row.Stage))).Inc()
		warnings += len(row.Warnings)
		if row.Expires.IsZero() {
			continue
		}
		name := text(certificateName(row))
		if t, ok := expiry[name]; !ok || row.Expires.Before(t) {
			expiry[name] = row.Expires
		}
	}
	renewed, deployed := activity(r)
	gauge("runner_renewals", "Certificates renewed by the last run.").Set(float64(renewed))
	gauge("runner_deploys", "Store deploys made by the last run.").Set(float64(deployed))
	gauge("runner_warnings", "Warnings on the rows of the last run.").Set(float64(warnings))
	if d, ok := runDuration(run); ok {
		gauge("runner_run_duration_seconds", "Length of the last run.").Set(d.Seconds())
	}
	gauge("runner_exit_code", "Exit code of the last run.").Set(float64(run.ExitCode))
	expires := vec("runner_certificate_expiry_timestamp_seconds",
		"NotAfter of the certificate now in the plan's stores, in seconds since the epoch (the earliest of its rows).", "certificate")
	names := make([]string, 0, len(expiry))
	for name := range expiry {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		expires.WithLabelValues(name).Set(unixSeconds(expiry[name]))
	}
	vec("runner_info", "The runner that wrote this file, and the Command it talked to.", "version", "commit", "command_host").
		WithLabelValues(text(run.Version), text(run.Commit), text(run.CommandHost)).Set(1)
	return reg
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// previousSuccess is runner_last_success_timestamp_seconds for plan in the
// metrics file at path, or 0 when there is none. A missing or unreadable
// file is no success: the file is about to be replaced anyway.
func previousSuccess(path, plan string) float64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(f)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0
	}
	mf := families[lastSuccessMetric]
	if mf == nil {
		return 0
	}
	for _, m := range mf.GetMetric() {
		if labelValue(m, "plan") == text(plan) && m.GetGauge() != nil {
			if v := m.GetGauge().GetValue(); v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) {
				return v
			}
		}
	}
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
