package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// The JUnit XML shape follows the Apache Ant schema that Jenkins and GitLab
// read (windyroad/JUnit-Schema JUnit.xsd): testsuites > testsuite (name,
// timestamp without a zone, hostname, tests, failures, errors, time, and in
// an aggregate also package and id; then properties, the testcases,
// system-out and system-err) > testcase (name, classname, time) holding at
// most one of skipped, error or failure (type required, message optional).

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	XMLName   xml.Name      `xml:"testcase"`
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure"`
	Skipped   *junitSkipped `xml:"skipped"`
}

type junitFailure struct {
	Type    string `xml:"type,attr"`
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr,omitempty"`
}

// WriteJUnit writes r as JUnit XML for CI dashboards: one testsuite for the
// run and one testcase per row, named "line N: store S alias A" in the class
// of its certificate (the id, else the thumbprint). A failed row is a
// <failure> whose type is the stage and whose message is the detail (the
// body adds the error and the warnings); a skipped row is <skipped>. A
// testcase's time is its renew→deploy (or →verify) time. The run's facts are
// properties, and every warning is also listed in the suite's system-out.
// The hostname is the Command host the run talked to ("localhost" when
// unknown). Rows are encoded one at a time.
func WriteJUnit(w io.Writer, r *Report) error {
	c := r.Counts()
	run := &r.Run
	seconds := "0"
	if d, ok := runDuration(run); ok {
		seconds = junitSeconds(d)
	}
	counts := []xml.Attr{
		attr("tests", strconv.Itoa(len(r.Rows))),
		attr("failures", strconv.Itoa(c[Failed])),
		attr("errors", "0"),
		attr("skipped", strconv.Itoa(c[Skipped])),
		attr("time", seconds),
	}
	name := "runner"
	if run.PlanFile != "" {
		name += " " + text(run.PlanFile)
	}
	host := text(run.CommandHost)
	if host == "" {
		host = "localhost"
	}
	suites := xml.StartElement{Name: xml.Name{Local: "testsuites"}, Attr: append([]xml.Attr{attr("name", name)}, counts...)}
	suiteAttrs := []xml.Attr{attr("name", name), attr("package", "runner"), attr("id", "0")}
	if !run.Start.IsZero() {
		suiteAttrs = append(suiteAttrs, attr("timestamp", run.Start.UTC().Format("2006-01-02T15:04:05")))
	}
	suiteAttrs = append(suiteAttrs, attr("hostname", host))
	suite := xml.StartElement{Name: xml.Name{Local: "testsuite"}, Attr: append(suiteAttrs, counts...)}

	ew := &errWriter{w: w}
	ew.printf("%s", xml.Header)
	enc := xml.NewEncoder(ew)
	enc.Indent("", "  ")
	if err := enc.EncodeToken(suites); err != nil {
		return err
	}
	if err := enc.EncodeToken(suite); err != nil {
		return err
	}
	props := struct {
		XMLName  xml.Name        `xml:"properties"`
		Property []junitProperty `xml:"property"`
	}{Property: junitProperties(run)}
	if err := enc.Encode(props); err != nil {
		return err
	}
	var warnings strings.Builder
	for i := range r.Rows {
		row := &r.Rows[i]
		for _, wn := range row.Warnings {
			fmt.Fprintf(&warnings, "line %d: %s\n", row.Line, text(wn))
		}
		// Encode flushes: each row reaches the file before the next is built.
		if err := enc.Encode(newJUnitCase(row)); err != nil {
			return err
		}
	}
	if err := enc.Encode(struct {
		XMLName xml.Name `xml:"system-out"`
		Text    string   `xml:",chardata"`
	}{Text: warnings.String()}); err != nil {
		return err
	}
	if err := enc.Encode(struct {
		XMLName xml.Name `xml:"system-err"`
	}{}); err != nil {
		return err
	}
	if err := enc.EncodeToken(suite.End()); err != nil {
		return err
	}
	if err := enc.EncodeToken(suites.End()); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	ew.printf("\n")
	return ew.err
}

func attr(name, value string) xml.Attr { return xml.Attr{Name: xml.Name{Local: name}, Value: value} }

func junitProperties(run *Run) []junitProperty {
	props := []junitProperty{
		{"plan_file", text(run.PlanFile)},
		{"command_host", text(run.CommandHost)},
		{"mode", text(run.Command)},
		{"runner_version", text(run.Version)},
		{"runner_commit", text(run.Commit)},
		{"exit_code", strconv.Itoa(run.ExitCode)},
		{"dry_run", strconv.FormatBool(run.DryRun)},
		{"interrupted", strconv.FormatBool(run.Interrupted)},
	}
	if run.Window > 0 {
		props = append(props, junitProperty{"window", run.Window.String()})
	}
	if run.Shard != nil {
		props = append(props, junitProperty{"shard", shardText(run.Shard)})
	}
	if run.NotRun != "" {
		props = append(props, junitProperty{"not_run", text(run.NotRun)})
	}
	return props
}

func newJUnitCase(row *Row) junitCase {
	name := fmt.Sprintf("line %d: store %s", row.Line, text(row.StoreID))
	if row.Alias != "" {
		name += " alias " + text(row.Alias)
	}
	tc := junitCase{Name: name, ClassName: text(certificateName(row)), Time: "0"}
	end := row.VerifiedAt
	if end.IsZero() {
		end = row.DeployedAt
	}
	if !row.RenewedAt.IsZero() && !end.IsZero() && !end.Before(row.RenewedAt) {
		tc.Time = junitSeconds(end.Sub(row.RenewedAt))
	}
	switch row.Status {
	case Failed:
		body := []string{text(row.Detail)}
		if row.Error != "" {
			body = append(body, text(row.Error))
		}
		for _, wn := range row.Warnings {
			body = append(body, "warning: "+text(wn))
		}
		tc.Failure = &junitFailure{Type: text(string(row.Stage)), Message: text(row.Detail), Body: strings.Join(body, "\n")}
	case Skipped:
		tc.Skipped = &junitSkipped{Message: text(row.Detail)}
	}
	return tc
}

// junitSeconds is a duration as the schema's decimal seconds.
func junitSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Round(time.Millisecond).Seconds(), 'f', 3, 64)
}
