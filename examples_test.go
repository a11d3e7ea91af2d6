package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/robfig/cron/v3"

	"runner/plan"
)

// Every example is parsed here, so none can rot.
func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob("examples/*")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		switch {
		case strings.HasSuffix(f, ".csv"):
			p, err := plan.Load(f, plan.Options{})
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if len(p.Rows) == 0 {
				t.Errorf("%s: no rows", f)
			}
			checked++
		case filepath.Base(f) == "crontab":
			checkCrontab(t, f)
			checked++
		}
	}
	if checked < 2 {
		t.Fatalf("checked %d examples; expected the plan and the crontab", checked)
	}
}

func checkCrontab(t *testing.T, path string) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	entries := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 6 {
			t.Errorf("%s: %q: want five schedule fields and a command", path, line)
			continue
		}
		if _, err := cron.ParseStandard(strings.Join(fields[:5], " ")); err != nil {
			t.Errorf("%s: schedule: %v", path, err)
		}
		if !strings.Contains(line, "runner ") || !strings.Contains(line, ".csv") {
			t.Errorf("%s: %q does not run runner on a plan", path, line)
		}
		entries++
	}
	if entries == 0 {
		t.Errorf("%s: no entry", path)
	}
}
