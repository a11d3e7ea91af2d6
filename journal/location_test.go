package journal

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestStateDir(t *testing.T) {
	cwd, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		euid    int
		homeErr bool
		want    string
	}{
		{"RUNNER_STATE_DIR first", map[string]string{"RUNNER_STATE_DIR": "/srv/runner", "XDG_STATE_HOME": "/home/u/.st"}, 1000, false, "/srv/runner"},
		{"RUNNER_STATE_DIR even as root", map[string]string{"RUNNER_STATE_DIR": "/srv/runner"}, 0, false, "/srv/runner"},
		{"relative RUNNER_STATE_DIR made absolute", map[string]string{"RUNNER_STATE_DIR": "state"}, 1000, false, filepath.Join(cwd, "state")},
		{"root", map[string]string{"XDG_STATE_HOME": "/root/.st"}, 0, false, "/var/lib/runner"},
		{"XDG_STATE_HOME", map[string]string{"XDG_STATE_HOME": "/home/u/.st"}, 1000, false, "/home/u/.st/runner"},
		{"relative XDG_STATE_HOME ignored", map[string]string{"XDG_STATE_HOME": "st"}, 1000, false, "/home/u/.local/state/runner"},
		{"home", nil, 1000, false, "/home/u/.local/state/runner"},
		{"no home", nil, 1000, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := func() (string, error) {
				if tt.homeErr {
					return "", errors.New("$HOME is not defined")
				}
				return "/home/u", nil
			}
			got, err := stateDir(func(k string) string { return tt.env[k] }, tt.euid, home)
			if tt.homeErr {
				if err == nil || !strings.Contains(err.Error(), "RUNNER_STATE_DIR") {
					t.Errorf("error = %v, want one saying to set RUNNER_STATE_DIR", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("stateDir = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("RUNNER_STATE_DIR", "/srv/runner")
	tests := []struct {
		command, want string
	}{
		{"https://command.example.com/KeyfactorAPI", "command.example.com_443_keyfactorapi.db"},
		{"https://Command.Example.com:443/KeyfactorAPI/", "command.example.com_443_keyfactorapi.db"},
		{"https://admin:pw@command.example.com/KeyfactorAPI?x=1", "command.example.com_443_keyfactorapi.db"},
		{"http://127.0.0.1:8080/KeyfactorAPI", "127.0.0.1_8080_keyfactorapi.db"},
		{"https://[::1]:9443/Keyfactor API/v1", "--1_9443_keyfactor-20api_v1.db"},
		{"https://host_name/a_b", "host-name_443_a-b.db"},
		{"https://command.example.com", "command.example.com_443.db"},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			got, err := DefaultPath(tt.command)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join("/srv/runner", tt.want); got != want {
				t.Errorf("DefaultPath = %q, want %q", got, want)
			}
		})
	}
	if _, err := DefaultPath("not a url"); err == nil {
		t.Error("DefaultPath of a bad Command URL succeeded")
	}
}
