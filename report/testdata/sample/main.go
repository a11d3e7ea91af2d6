// Command sample writes a sample report of a made-up nightly run, in the
// format its file name's extension names, for reviewers and the README:
//
//	go run ./report/testdata/sample OUT.html
//
// .ci/screenshot-report renders the HTML one to a PNG.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"runner/report"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: sample OUT.{html,json,csv,md,xml,prom}")
		os.Exit(2)
	}
	out := os.Args[1]
	r := sample()
	var err error
	if len(out) > 5 && out[len(out)-5:] == ".prom" {
		err = report.WriteMetrics(out, r)
	} else {
		err = report.WriteFile(out, r)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// sample is a night of 24 rows over 16 certificates: most renewed and
// deployed within milliseconds, one deploy slow, one window missed, one job
// failed on its orchestrator, a store gone, and a few not yet due.
func sample() *report.Report {
	start := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	stores := []string{
		"4b5e1c2a-0d3f-4c8e-9a61-2f7d3b9e0a11",
		"9f0e7d6c-5b4a-4392-8170-6e5d4c3b2a10",
		"0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5",
	}
	r := &report.Report{Run: report.Run{
		Start: start, End: start.Add(94 * time.Second),
		PlanFile: "plans/nightly.csv", Command: "run",
		Columns:     []string{"certificate_id", "store_id", "alias", "password"},
		ExitCode:    1,
		Version:     "v1.4.0",
		Commit:      "3f2a9c1",
		CommandHost: "keyfactor.example.com",
		Window:      5 * time.Minute,
	}}
	line := 2
	add := func(id int, store int, alias string, f func(*report.Row)) {
		row := report.Row{
			Line: line, CertificateID: id, StoreID: stores[store], Alias: alias,
			PlanValues: []string{strconv.Itoa(id), stores[store], alias, ""},
		}
		line++
		f(&row)
		r.Rows = append(r.Rows, row)
	}
	at := func(d time.Duration) time.Time { return start.Add(d) }
	ok := func(id int, renewAt, gap time.Duration) func(*report.Row) {
		return func(row *report.Row) {
			row.Status, row.Stage, row.Detail = report.Succeeded, report.StageVerify, "seen in store"
			row.NewCertificateID, row.RequestID = id+90000, id+7000
			row.RenewedAt, row.DeployedAt, row.VerifiedAt = at(renewAt), at(renewAt+gap), at(renewAt+gap+31*time.Second)
			row.Expires = at(renewAt).AddDate(1, 0, 0)
			row.DueAt = row.Expires.AddDate(0, 0, -30)
		}
	}
	gaps := []time.Duration{28, 31, 33, 29, 41, 35, 30, 52, 38, 27}
	for i, g := range gaps {
		id := 4101 + i
		add(id, i%3, "web-"+strconv.Itoa(i+1), ok(id, time.Duration(i)*700*time.Millisecond, g*time.Millisecond))
		if i%4 == 0 {
			add(id, (i+1)%3, "web-"+strconv.Itoa(i+1), ok(id, time.Duration(i)*700*time.Millisecond, g*time.Millisecond))
		}
	}
	add(4120, 1, "api", ok(4120, 9*time.Second, 2400*time.Millisecond))
	r.Rows[len(r.Rows)-1].Warnings = []string{"certificate 4120 is also in store 0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5 (alias api-old), which the plan does not name"}
	add(4121, 0, "mail", func(row *report.Row) {
		row.Status, row.Stage = report.Failed, report.StageDeploy
		row.Detail = "window expired 12s before deploy; renewed as 94121, not deployed: rerun to deploy it"
		row.NewCertificateID, row.RequestID = 94121, 7121
		row.RenewedAt = at(11 * time.Second)
		row.Expires = time.Date(2026, 12, 19, 0, 0, 0, 0, time.UTC)
	})
	add(4122, 2, "pem", func(row *report.Row) {
		row.Status, row.Stage = report.Failed, report.StageVerify
		row.Detail = "job created, then failed on the orchestrator: access is denied to /etc/ssl/private/pem.key"
		row.NewCertificateID, row.RequestID = 94122, 7122
		row.RenewedAt, row.DeployedAt = at(14*time.Second), at(14*time.Second+36*time.Millisecond)
		row.Expires = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	})
	add(4123, 1, "legacy", func(row *report.Row) {
		row.Status, row.Stage, row.Detail = report.Failed, report.StagePreflight, "store not found"
		row.Expires = time.Date(2026, 12, 28, 0, 0, 0, 0, time.UTC)
	})
	for i, due := range []string{"2027-01-10", "2027-02-03", "2027-03-15", "2027-05-01"} {
		id := 4130 + i
		d, _ := time.Parse("2006-01-02", due)
		add(id, i%3, "intranet-"+strconv.Itoa(i+1), func(row *report.Row) {
			row.Status, row.Stage, row.Detail = report.Skipped, report.StageCheck, "not due until "+due
			row.DueAt, row.Expires = d, d.AddDate(0, 0, 30)
		})
	}
	return r
}
