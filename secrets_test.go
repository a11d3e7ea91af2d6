package main

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"runner/kfsim"
)

// Secrets never appear anywhere (issue 8 §5): one run after another with
// distinctive secrets, at debug level, through success and failure paths,
// and every byte runner wrote is searched for them.
func TestSecretsAppearNowhere(t *testing.T) {
	const (
		entryFromEnv  = "entry-Env-7Qx2-distinctive"
		entryFromFile = "entry-File-9Wm4-distinctive"
		entryLiteral  = "entry-Literal-3Kp8-distinctive"
		clientSecret  = "oauth-Secret-5Hn1-distinctive"
		wrongPassword = "wrong-Pw-6Tr3-distinctive"
	)
	secrets := []string{simPassword, entryFromEnv, entryFromFile, entryLiteral, clientSecret, wrongPassword,
		base64.StdEncoding.EncodeToString([]byte(simDomain + `\` + simUsername + ":" + simPassword))}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "entry.txt"), []byte(entryFromFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RUNNER_TEST_ENTRY", entryFromEnv)
	planPath := filepath.Join(dir, "plan.csv")
	planText := "certificate_id,store_id,password\n" +
		"1001,11111111-1111-4111-8111-111111111111,env:RUNNER_TEST_ENTRY\n" +
		"1002,22222222-2222-4222-8222-222222222222,file:entry.txt\n" +
		"1003,33333333-3333-4333-8333-333333333333," + entryLiteral + "\n" +
		"1004,44444444-4444-4444-8444-444444444444,env:RUNNER_TEST_NEVER_SET\n"
	if err := os.WriteFile(planPath, []byte(planText), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newSimEnv(t, planPath, func(_ *kfsim.Options, f *kfsim.Fixture) {
		f.Clients = []kfsim.OAuthClient{{ClientID: "bot", ClientSecret: clientSecret, Permissions: fullPermissions()}}
		for i := range f.Stores {
			f.Stores[i].RequiresEntryPassword = true
		}
	})
	t.Setenv("RUNNER_LOG_LEVEL", "debug")
	t.Setenv("RUNNER_LOG_FORMAT", "json")
	outs := func(name string) []string {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		return []string{"--report", filepath.Join(d, "r.json"), "--report", filepath.Join(d, "r.csv"), "--report", filepath.Join(d, "r.md"),
			"--report", filepath.Join(d, "r.html"), "--report", filepath.Join(d, "r.xml"), "--failed-plan", filepath.Join(d, "failed.csv"),
			"--metrics-file", filepath.Join(d, "m.prom")}
	}
	var printed []string
	run := func(name string, env map[string]string, args ...string) {
		t.Helper()
		for k, v := range env {
			t.Setenv(k, v)
		}
		r := runMain(t, context.Background(), append(append(outs(name), "--allow-plain-passwords"), append(args, planPath)...)...)
		if r.code == exitUsage {
			t.Fatalf("%s: exit 2: %s", name, r.stderr)
		}
		printed = append(printed, name+" stdout:\n"+r.stdout, name+" stderr:\n"+r.stderr)
	}
	// Success (and one row failing: an unset variable), Basic auth.
	run("basic", nil)
	// Deploys failing at Command, --force so everything is renewed again.
	e.sim.SetFaults(mustParseFault(t, "deploy:500"))
	run("deploy-failing", nil, "--force", "--window", "3s", "--window-margin", "1s")
	e.sim.SetFaults()
	// OAuth client credentials.
	run("oauth", map[string]string{"KEYFACTOR_USERNAME": "", "KEYFACTOR_PASSWORD": "", "KEYFACTOR_DOMAIN": "",
		"KEYFACTOR_AUTH_CLIENT_ID": "bot", "KEYFACTOR_AUTH_CLIENT_SECRET": clientSecret, "KEYFACTOR_AUTH_TOKEN_URL": e.url + "/_kfsim/oauth/token"}, "--force")
	// Refused credentials.
	run("refused", map[string]string{"KEYFACTOR_AUTH_CLIENT_ID": "", "KEYFACTOR_AUTH_CLIENT_SECRET": "", "KEYFACTOR_AUTH_TOKEN_URL": "",
		"KEYFACTOR_USERNAME": simUsername, "KEYFACTOR_DOMAIN": simDomain, "KEYFACTOR_PASSWORD": wrongPassword})
	// A setting refused after the secrets were read: the not-run report
	// (with the plan's rows, literal password column and all) and the
	// error say why without a secret.
	r := runMain(t, context.Background(), append(outs("not-run"), "--allow-plain-passwords", "--wait-lock", "-1s", planPath)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--wait-lock") {
		t.Errorf("not-run: exit %d, want 2 for --wait-lock:\n%s", r.code, r.stderr)
	}
	if rep := readReport(t, filepath.Join(dir, "not-run", "r.json")); rep.Run.NotRun == nil || len(rep.Rows) != 4 {
		t.Errorf("not-run: no not-run report of the 4 rows: %+v", rep)
	}
	printed = append(printed, "not-run stdout:\n"+r.stdout, "not-run stderr:\n"+r.stderr)

	for _, text := range printed {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("a secret (%.6s…) was printed:\n%.300s", s, text)
			}
		}
	}
	// Every file runner wrote: reports, failed plans and metrics beside the
	// plan, the journal in the state directory.
	states, _ := filepath.Glob(filepath.Join(e.stateDir, "*"))
	if len(states) == 0 {
		t.Fatal("no journal to search")
	}
	for _, root := range []string{dir, e.stateDir} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || path == planPath || filepath.Base(path) == "entry.txt" {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, s := range secrets {
				if strings.Contains(string(b), s) {
					t.Errorf("%s holds a secret (%.6s…)", path, s)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The runs did go through the paths: renewals happened, deploys were
	// refused, the refused credentials were refused.
	if len(e.sim.Ledger().Renewals) == 0 {
		t.Fatal("nothing was renewed: the secrets were never used")
	}
	all := strings.Join(printed, "\n")
	for _, want := range []string{"Command refused the credentials", "deploy failed; retrying inside the window", "RUNNER_TEST_NEVER_SET is not set", `"msg":"keyfactor request"`} {
		if !strings.Contains(all, want) {
			t.Errorf("no run went through %q", want)
		}
	}
}
