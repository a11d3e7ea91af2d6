package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"runner/plan"
)

// failedPlanFixture is the fixture with its plan in root/plans, so that the
// failed plan written to root/out re-bases file: paths the same way on every
// machine.
func failedPlanFixture(root string) *Report {
	r := fixture()
	r.Run.PlanFile = filepath.Join(root, "plans", "nightly.csv")
	return r
}

func TestFailedPlan(t *testing.T) {
	root := t.TempDir()
	outDir := filepath.Join(root, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(outDir, "failed.csv")
	if err := WriteFailedPlan(path, failedPlanFixture(root)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "failed-plan.csv.golden", got)
	assertMode(t, path, 0o600)
	assertOnlyFiles(t, outDir, "failed.csv")

	t.Run("only failed rows, cells as written but re-based and escaped", func(t *testing.T) {
		recs := readCSV(t, got)
		var lines []string
		for _, rec := range recs[1:] {
			lines = append(lines, rec[0]+" "+rec[3]+" "+rec[6])
		}
		want := []string{
			"2000 api ",
			"1235 mail file:../plans/secrets/mail.pass",
			"4000  ",
			"5000 " + formulaAlias + " FILE:/etc/runner/api.pass",
		}
		if fmt.Sprint(lines) != fmt.Sprint(want) {
			t.Errorf("rows = %q, want %q", lines, want)
		}
		if bytes.Contains(got, []byte("\n=")) || bytes.Contains(got, []byte(",=")) {
			t.Errorf("a cell starts a formula:\n%s", got)
		}
	})

	// It is a plan: the plan package reads it, and the file: password
	// resolves to the file the original plan named.
	t.Run("read back by the plan package", func(t *testing.T) {
		p, err := plan.Load(path, plan.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(p.Columns) != fmt.Sprint(columns) {
			t.Errorf("columns = %q, want %q", p.Columns, columns)
		}
		if len(p.Rows) != 4 {
			t.Fatalf("%d rows, want 4", len(p.Rows))
		}
		if want := filepath.Join(root, "plans", "secrets", "mail.pass"); p.Rows[1].Password.Ref != want {
			t.Errorf("password = %v, want file:%s", p.Rows[1].Password, want)
		}
		if got := p.Rows[3].Alias; got != formulaAlias {
			t.Errorf("alias = %q, want %q", got, formulaAlias)
		}
	})
}

func TestFailedPlanWithoutFailures(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "failed.csv")
	r := fixture()
	r.Rows = r.Rows[:1]
	if err := WriteFailedPlan(path, r); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(columns, ",") + "\n"; string(got) != want {
		t.Errorf("got %q, want the header alone %q", got, want)
	}
	assertOnlyFiles(t, dir, "failed.csv")
}
