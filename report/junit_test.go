package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	junit "github.com/joshdk/go-junit"
)

// TestJUnitReadByParser reads the report with go-junit, a JUnit parser
// written for CI tools, and finds every row where a dashboard would.
func TestJUnitReadByParser(t *testing.T) {
	suites, err := junit.Ingest(render(t, WriteJUnit, fixture()))
	if err != nil {
		t.Fatal(err)
	}
	if len(suites) != 1 {
		t.Fatalf("%d suites, want 1", len(suites))
	}
	s := suites[0]
	if s.Name != "runner plans/nightly.csv" || s.Package != "runner" {
		t.Errorf("suite %q package %q", s.Name, s.Package)
	}
	if got := fmt.Sprintf("%+v", s.Totals); got != "{Tests:7 Passed:1 Skipped:2 Failed:4 Error:0 Duration:1m1.25s}" {
		t.Errorf("totals = %s", got)
	}
	if s.Properties["exit_code"] != "1" || s.Properties["command_host"] != "kf.example.com" || s.Properties["runner_version"] != "v1.4.0" {
		t.Errorf("properties = %v", s.Properties)
	}
	if want := "line 2: certificate 1234 was also found in store " + storeB + " as old-web\nline 7: \t=1+2 <b>bold</b>\n"; s.SystemOut != want {
		t.Errorf("system-out = %q, want %q", s.SystemOut, want)
	}
	byName := map[string]junit.Test{}
	for _, tc := range s.Tests {
		byName[tc.Name] = tc
	}
	tests := []struct {
		name      string
		classname string
		status    junit.Status
		message   string
		errType   string
		body      string
		duration  time.Duration
	}{
		{"line 2: store " + storeA + " alias web", "1234", junit.StatusPassed, "", "", "", time.Minute},
		{"line 3: store " + storeB + " alias mail", "1235", junit.StatusFailed,
			"window expired 12s before deploy | renewed, not deployed\nrerun to deploy 5679", "deploy",
			"window expired 12s before deploy | renewed, not deployed\nrerun to deploy 5679\nPOST /Enrollment/PFX/Deploy: HTTP 400: 0xA0110008: The format \"STORE\" is invalid, try again", 0},
		{"line 4: store " + storeA, thumb, junit.StatusSkipped, "not due until 2027-01-10", "", "", 0},
		{"line 6: store " + storeB, "4000", junit.StatusFailed, fixture().Rows[5].Detail, "deploy", fixture().Rows[5].Detail, 1250 * time.Millisecond},
		{"line 7: store " + storeA + " alias " + formulaAlias, "5000", junit.StatusFailed, markupDetail, "renew",
			markupDetail + "\n-2+3 @SUM(A1:A9) +cmd|' /C calc'!A0\nwarning: \t=1+2 <b>bold</b>", 0},
		{"line 9: store " + storeB + " alias api", "2000", junit.StatusFailed, "store not found", "preflight", "store not found", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc, ok := byName[tt.name]
			if !ok {
				t.Fatalf("no testcase %q", tt.name)
			}
			if tc.Classname != tt.classname || tc.Status != tt.status || tc.Message != tt.message || tc.Duration != tt.duration {
				t.Errorf("got classname %q status %s message %q duration %v, want %q %s %q %v",
					tc.Classname, tc.Status, tc.Message, tc.Duration, tt.classname, tt.status, tt.message, tt.duration)
			}
			if tt.errType == "" {
				if tc.Error != nil {
					t.Errorf("error = %v, want none", tc.Error)
				}
				return
			}
			e, ok := tc.Error.(junit.Error)
			if !ok || e.Type != tt.errType || e.Body != tt.body {
				t.Errorf("failure = %#v, want type %q body %q", tc.Error, tt.errType, tt.body)
			}
		})
	}
}

// xmlNode is any element, for checking the report's structure by hand.
type xmlNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []xmlNode  `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (n xmlNode) attr(name string) (string, bool) {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

var (
	junitTimestamp = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$`)
	junitDecimal   = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
)

// checkJUnitSchema checks doc against the rules of the Ant JUnit schema
// that Jenkins and GitLab read (windyroad/JUnit-Schema JUnit.xsd): the
// elements, their order, and the attributes it requires, with their types.
func checkJUnitSchema(t testing.TB, doc []byte) {
	t.Helper()
	var root xmlNode
	if err := xml.Unmarshal(doc, &root); err != nil {
		t.Fatal(err)
	}
	if root.XMLName.Local != "testsuites" {
		t.Fatalf("root is <%s>, want <testsuites>", root.XMLName.Local)
	}
	require := func(n xmlNode, name string, valid func(string) bool) string {
		t.Helper()
		v, ok := n.attr(name)
		if !ok || !valid(v) {
			t.Errorf("<%s> %s=%q (present %v) is not valid", n.XMLName.Local, name, v, ok)
		}
		return v
	}
	nonEmpty := func(s string) bool { return strings.TrimSpace(s) != "" }
	isInt := func(s string) bool { _, err := strconv.Atoi(s); return err == nil }
	isDecimal := junitDecimal.MatchString
	for i, suite := range root.Children {
		if suite.XMLName.Local != "testsuite" {
			t.Errorf("<testsuites> holds <%s>", suite.XMLName.Local)
			continue
		}
		require(suite, "name", nonEmpty)
		require(suite, "package", nonEmpty)
		if id := require(suite, "id", isInt); id != strconv.Itoa(i) {
			t.Errorf("testsuite id = %s, want %d", id, i)
		}
		require(suite, "timestamp", junitTimestamp.MatchString)
		require(suite, "hostname", nonEmpty)
		tests := require(suite, "tests", isInt)
		failures := require(suite, "failures", isInt)
		require(suite, "errors", isInt)
		skipped := require(suite, "skipped", isInt)
		require(suite, "time", isDecimal)

		var order []string
		var cases, failed, skips int
		for _, c := range suite.Children {
			if len(order) == 0 || order[len(order)-1] != c.XMLName.Local {
				order = append(order, c.XMLName.Local)
			}
			switch c.XMLName.Local {
			case "properties":
				for _, p := range c.Children {
					if p.XMLName.Local != "property" {
						t.Errorf("<properties> holds <%s>", p.XMLName.Local)
					}
					require(p, "name", nonEmpty)
					require(p, "value", func(string) bool { return true })
				}
			case "testcase":
				cases++
				require(c, "name", nonEmpty)
				require(c, "classname", nonEmpty)
				require(c, "time", isDecimal)
				if len(c.Children) > 1 {
					t.Errorf("testcase %v holds %d elements, want at most one", c.Attrs, len(c.Children))
				}
				for _, o := range c.Children {
					switch o.XMLName.Local {
					case "failure":
						failed++
						require(o, "type", nonEmpty)
					case "skipped":
						skips++
					default:
						t.Errorf("testcase holds <%s>", o.XMLName.Local)
					}
				}
			}
		}
		if got := strings.Join(order, " "); got != "properties testcase system-out system-err" && got != "properties system-out system-err" {
			t.Errorf("testsuite children in order %q, want properties, testcases, system-out, system-err", got)
		}
		if strconv.Itoa(cases) != tests || strconv.Itoa(failed) != failures || strconv.Itoa(skips) != skipped {
			t.Errorf("counts say %s tests, %s failures, %s skipped; elements say %d, %d, %d", tests, failures, skipped, cases, failed, skips)
		}
	}
}

func TestJUnitSchema(t *testing.T) {
	tests := []struct {
		name string
		r    *Report
	}{
		{"fixture", fixture()},
		{"no rows and unknown times", &Report{Run: Run{NotRun: "another run holds the lock", Start: time.Unix(0, 0)}}},
		{"many rows", manyRows(50)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkJUnitSchema(t, render(t, WriteJUnit, tt.r))
		})
	}
}

func TestJUnitControlCharactersStayWellFormed(t *testing.T) {
	r := &Report{Rows: []Row{{Line: 2, CertificateID: 1, Status: Failed, Stage: StageRenew, Detail: "bell\x07 nul\x00 esc\x1b[31m", Error: "]]> </failure>"}}}
	doc := render(t, WriteJUnit, r)
	if err := xml.Unmarshal(doc, new(xmlNode)); err != nil {
		t.Fatalf("not well-formed: %v\n%s", err, doc)
	}
	if bytes.Contains(doc, []byte("]]>")) || bytes.Contains(doc, []byte("</failure> ")) {
		t.Errorf("text leaked as markup:\n%s", doc)
	}
	if _, err := junit.Ingest(doc); err != nil {
		t.Errorf("go-junit: %v", err)
	}
}
