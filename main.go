// Command runner renews certificates in bulk through the Keyfactor Command
// REST API and deploys each renewed certificate to its stores inside the
// staging window. See README.md.
//
// This file wires the command line (urfave/cli/v2) to the runner package
// and is the only place where an error becomes an exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"runner/journal"
	"runner/runner"
)

// Exit codes (DESIGN.md).
const (
	exitOK          = 0
	exitRowsFailed  = 1
	exitUsage       = 2
	exitPreflight   = 3
	exitLocked      = 4
	exitInterrupted = 130
)

func main() {
	// The first SIGINT/SIGTERM cancels ctx: no new work starts, in-flight
	// renew→deploy pairs finish and the report is written. After that the
	// default handling is back, so a second signal ends the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(Main(ctx, os.Args, os.Stdout, os.Stderr))
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, args)
	code := exitCode(err)
	if err != nil && !errors.Is(err, errRowsFailed) && !errors.Is(err, runner.ErrInterrupted) {
		printError(stderr, err)
	}
	return code
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "runner",
		Usage:     "renew certificates in Keyfactor Command and deploy them to their stores",
		UsageText: "runner [flags] PLAN.csv\nrunner plan|validate|sim [flags] …",
		Description: "Reads a CSV plan of (certificate, store) rows, renews each certificate that is due,\n" +
			"deploys it to its stores inside Command's staging window and writes a report.\n" +
			"Exit codes: 0 all good, 1 some rows failed, 2 usage/plan error, 3 preflight failed,\n" +
			"4 another run holds the lock, 130 interrupted.",
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Flags:           append(connectionFlags(), runFlags()...),
		Action:          func(c *cli.Context) error { return runAction(c, false) },
		// Errors are turned into exit codes by Main, not inside urfave/cli.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{msg: err.Error(), hint: "see runner --help"}
		},
		Commands: []*cli.Command{
			{
				Name:      "run",
				Usage:     "run the plan once (the default command)",
				ArgsUsage: "PLAN.csv",
				Flags:     append(connectionFlags(), runFlags()...),
				Action:    func(c *cli.Context) error { return runAction(c, false) },
			},
			{
				Name:      "plan",
				Usage:     "dry run: preflight and due check against Command; renews and deploys nothing",
				ArgsUsage: "PLAN.csv",
				Flags:     append(connectionFlags(), runFlags()...),
				Action:    func(c *cli.Context) error { return runAction(c, true) },
			},
			{
				Name:      "validate",
				Usage:     "check a plan offline and list every error in it",
				ArgsUsage: "PLAN.csv",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "allow-plain-passwords", EnvVars: []string{"RUNNER_ALLOW_PLAIN_PASSWORDS"}, Usage: "accept literal entry passwords in the plan"}},
				Action:    validateAction,
			},
			simCommand(),
		},
	}
}

// errRowsFailed means the run completed and the report lists failed rows.
var errRowsFailed = errors.New("some rows failed")

// usageError is a mistake on the command line or in the configuration:
// nothing was contacted.
type usageError struct{ msg, hint string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var pe *runner.PreflightError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errRowsFailed):
		return exitRowsFailed
	case errors.Is(err, runner.ErrInterrupted):
		return exitInterrupted
	case errors.Is(err, journal.ErrLocked):
		return exitLocked
	case errors.As(err, &pe):
		return exitPreflight
	default:
		// usageError, plan.ErrorList, an unreadable plan or state file:
		// nothing was contacted or renewed.
		return exitUsage
	}
}

// printError writes err the way an operator reads it at 3 a.m.: what
// happened, then what to do.
func printError(w io.Writer, err error) {
	msg := err.Error()
	for _, line := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		fmt.Fprintf(w, "runner: error: %s\n", line)
	}
	var ue usageError
	var pe *runner.PreflightError
	switch {
	case errors.As(err, &ue) && ue.hint != "":
		fmt.Fprintf(w, "runner: hint: %s\n", ue.hint)
	case errors.Is(err, journal.ErrLocked):
		fmt.Fprintln(w, "runner: hint: another runner is working on this plan; wait for it, or use --state to give this run a state file of its own")
	case errors.As(err, &pe):
		fmt.Fprintln(w, "runner: hint: nothing was renewed; check KEYFACTOR_HOSTNAME, the credentials and the user's permissions in Command")
	}
}
