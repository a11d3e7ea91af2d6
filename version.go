package main

import (
	"fmt"
	"runtime/debug"

	"runner/report"
)

// buildInfo is what the Go toolchain recorded in the binary: the module
// version (a tag, or "(devel)"), the VCS commit and whether the tree was
// modified, and the Go version.
func buildInfo() (ver, commit, goVersion string) {
	ver, commit, goVersion = "(devel)", "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	goVersion = bi.GoVersion
	if bi.Main.Version != "" {
		ver = bi.Main.Version
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
			if len(commit) > 12 {
				commit = commit[:12]
			}
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		commit += "+modified"
	}
	return
}

func version() string { v, _, _ := buildInfo(); return v }

// versionString is what `runner version` prints.
func versionString() string {
	v, commit, goVersion := buildInfo()
	return fmt.Sprintf("runner %s (commit %s, %s)", v, commit, goVersion)
}

// stampVersion records the version in a report.
func stampVersion(rep *report.Report) {
	rep.Run.Version, rep.Run.Commit, _ = buildInfo()
}
