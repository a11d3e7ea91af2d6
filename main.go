// Command runner renews certificates in bulk through the Keyfactor Command
// REST API and deploys each renewed certificate to its stores inside the
// staging window. See README.md.
//
// This package wires the command line (urfave/cli/v2) to the runner,
// report, journal and kfsim packages, and main is the only place where an
// error becomes an exit code.
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
	_ "time/tzdata" // --tz works in images without a zone database

	"github.com/urfave/cli/v2"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/runner"
)

// Exit codes (README, "Exit codes").
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
	if err != nil && !saidAlready(err) {
		printError(stderr, err)
	}
	return exitCode(err)
}

// saidAlready reports whether err needs no block from printError: failed
// rows are in the summary (finish printed an output it could not write),
// an interrupt is the operator's own and a run under way notes it in the
// summary, and a printed error was printed by its action.
func saidAlready(err error) bool {
	var done printed
	return errors.Is(err, errRowsFailed) || errors.Is(err, runner.ErrInterrupted) || errors.As(err, &done)
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "runner",
		Usage:     "renew certificates in Keyfactor Command and deploy them to their stores",
		UsageText: "runner [flags] PLAN.csv\nrunner COMMAND [flags] [args]",
		Description: "Reads a CSV plan of (certificate, store) rows, renews each certificate that is due,\n" +
			"deploys it to its stores inside Command's staging window and writes a report.\n" +
			"Exit codes: 0 all good, 1 some rows failed, 2 usage/plan error, 3 preflight failed,\n" +
			"4 another run holds the lock, 130 interrupted.",
		Version:              versionString(),
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		// A --fault or --report value may contain commas: never split them.
		DisableSliceFlagSeparator: true,
		Flags:                     append(connectionFlags(), runFlags()...),
		Action:                    rootAction,
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
				Flags:     append(connectionFlags(), planFlags()...),
				Action:    func(c *cli.Context) error { return runAction(c, true) },
			},
			{
				Name:      "validate",
				Usage:     "check a plan offline and list every error in it",
				ArgsUsage: "PLAN.csv",
				Flags:     validateFlags(),
				Action:    validateAction,
			},
			scheduleCommand(),
			discoverCommand(),
			simCommand(),
			benchCommand(),
			{
				Name:   "version",
				Usage:  "print the version, commit and Go version",
				Action: func(c *cli.Context) error { _, err := fmt.Fprintln(c.App.Writer, versionString()); return err },
			},
		},
	}
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, versionString()) }
	return app
}

// rootAction is `runner [flags] PLAN.csv`. A lone word that names no file
// is taken for a mistyped command.
func rootAction(c *cli.Context) error {
	if c.NArg() == 1 {
		arg := c.Args().First()
		if _, err := os.Stat(arg); err != nil && !strings.ContainsAny(arg, "./\\") {
			msg := fmt.Sprintf("unknown command %q (and no file of that name)", arg)
			hint := "commands: " + strings.Join(commandNames(c.App), ", ") + "; or give a plan: runner [flags] PLAN.csv"
			if s := cli.SuggestCommand(c.App.Commands, arg); s != "" {
				hint = s + " " + hint // "Did you mean "schedule"?"
			}
			return usageError{msg: msg, hint: hint}
		}
	}
	return runAction(c, false)
}

func commandNames(app *cli.App) []string {
	var out []string
	for _, cmd := range app.Commands {
		out = append(out, cmd.Name)
	}
	return out
}

// errRowsFailed means the run completed and the report lists failed rows.
var errRowsFailed = errors.New("some rows failed")

// printed wraps an error an action already printed in full; its exit code
// is that of the error inside.
type printed struct{ err error }

func (p printed) Error() string { return p.err.Error() }
func (p printed) Unwrap() error { return p.err }

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
// happened, then what to do, the hint chosen by the cause.
func printError(w io.Writer, err error) {
	for _, line := range strings.Split(strings.TrimRight(errorText(err), "\n"), "\n") {
		fmt.Fprintf(w, "runner: error: %s\n", line)
	}
	if hint := hintFor(err); hint != "" {
		fmt.Fprintf(w, "runner: hint: %s\n", hint)
	}
}

// errorText is err as the operator reads it, in stderr and in a not-run
// report: a plan's error list is cut at plan.SummaryLimit errors.
func errorText(err error) string {
	var errs *plan.ErrorList
	if errors.As(err, &errs) {
		return errs.Summary(plan.SummaryLimit)
	}
	return err.Error()
}

// hintFor chooses what to tell the operator from the kind of error.
func hintFor(err error) string {
	var ue usageError
	var le *journal.LockedError
	var pe *runner.PreflightError
	var errs *plan.ErrorList
	switch {
	case errors.As(err, &ue):
		return ue.hint
	case errors.As(err, &errs):
		return "nothing was renewed; fix the plan (runner validate PLAN.csv lists every error) and run again"
	case errors.As(err, &le):
		return fmt.Sprintf("another runner (pid %d on %s, started %s) is working with this state; wait for it, or use --wait-lock 10m to wait",
			le.Holder.PID, le.Holder.Host, le.Holder.Started.Format("2006-01-02 15:04:05 MST"))
	case errors.Is(err, journal.ErrLocked):
		return "another runner is working with this state; wait for it, or use --wait-lock 10m to wait"
	case errors.As(err, &pe):
		return "nothing was renewed; " + connectionHint(err)
	}
	return ""
}

// connectionHint says what to check for a failure to use Command.
func connectionHint(err error) string {
	switch keyfactor.CauseOf(err) {
	case keyfactor.CauseUnreachable:
		return "Command did not answer: check KEYFACTOR_HOSTNAME and KEYFACTOR_PORT, DNS, proxies and firewalls between here and Command"
	case keyfactor.CauseTLS:
		return "Command's TLS certificate is not trusted here: set KEYFACTOR_CA_CERT to the CA that issued it (a file path or PEM text)"
	case keyfactor.CauseUnauthorized:
		return "Command refused the credentials: check KEYFACTOR_USERNAME, KEYFACTOR_PASSWORD and KEYFACTOR_DOMAIN (or the OAuth client id, secret and token URL)"
	case keyfactor.CauseForbidden:
		return "the user lacks a permission in Command (the error names it): ask a Command administrator to grant it"
	case keyfactor.CauseNotFound:
		if _, endpoint := keyfactor.EndpointOf(err); endpoint == "/Status/Endpoints" {
			return "there is no Command API at this address: check KEYFACTOR_API_PATH (KeyfactorAPI, or Keyfactor/API on newer servers) and KEYFACTOR_HOSTNAME"
		}
		return "Command answered 404 for an endpoint runner needs: check KEYFACTOR_API_PATH, and that this Command version offers it"
	case keyfactor.CauseBusy:
		return "Command is busy (it answered 429 or 503): retry later"
	case keyfactor.CauseServer:
		return "Command failed internally: retry later, and look at Command's own logs if it persists"
	}
	return "check KEYFACTOR_HOSTNAME, the credentials and the user's permissions in Command"
}
