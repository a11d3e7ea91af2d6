package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/report"
	"runner/runner"
)

// `runner bench` measures runner against the simulator the way an operator
// would meet Command: kfsim in a process of its own (so the CPU and memory
// figures are runner's alone), over TLS, with a fixed latency per request.
// The run itself is in this process, through runner.Runner with the client
// the CLI builds (invocation.connect), reading the plan, opening the
// journal and writing a JSON report as `runner run` does; it is not
// `runner run` itself because the figures need the journal's commit count
// and a measurement window around exactly the run. The simulator's ledger
// is the ground truth for requests and for the renew→deploy gap.

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:      "bench",
		Usage:     "measure runner against the simulator in its own process: wall against the ideal, requests, renew→deploy gap, CPU, memory",
		ArgsUsage: " ",
		Description: "Starts `runner sim` with N certificates × M stores and latency L per request, runs the plan\n" +
			"with concurrency C (in this process, or in S shard processes), and prints, from the\n" +
			"simulator's ledger and this process's own counters: wall; ideal = N×2×L/(C×S) (a Renew and\n" +
			"a Deploy per certificate); ratio ideal/wall; requests per certificate by endpoint;\n" +
			"renew→deploy gap p50/p99/max (deploy processed minus renew committed); runner CPU per row;\n" +
			"runner peak RSS; journal commits per certificate; kfsim CPU per request.\n" +
			"Without --force the first night renews everything (the simulated certificates expire in\n" +
			"20 days); --nights 2 then measures a night with nothing due.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "certificates", Value: 1000, Usage: "N certificates in the simulated estate"},
			&cli.IntFlag{Name: "stores", Value: 2, Usage: "M stores per certificate (rows = N×M)"},
			&cli.DurationFlag{Name: "latency", Value: 25 * time.Millisecond, Usage: "L, added by the simulator to every request"},
			&cli.IntFlag{Name: "concurrency", Value: 32, Usage: "C, renew→deploy pairs under way per process"},
			&cli.BoolFlag{Name: "force", Usage: "renew every certificate (else: a first night, where all are due)"},
			&cli.Float64Flag{Name: "rate", Usage: "API requests per second per process (0 = unlimited)"},
			&cli.IntFlag{Name: "shards", Value: 1, Usage: "S: run S processes of runner, each --shard i/S, against the one simulator"},
			&cli.IntFlag{Name: "nights", Value: 1, Usage: "runs one after another against the same simulator and journal (2: the second night has nothing due)"},
			&cli.StringFlag{Name: "profile", Usage: "write CPU and heap profiles of the run (and of each shard) into this directory"},
			&cli.StringFlag{Name: "state-dir", Usage: "directory for the plan, journal, reports and simulator certificate (default: a new temporary one)"},
			&cli.BoolFlag{Name: "keep", Usage: "keep --state-dir (or the temporary directory) afterwards"},
			// A shard process is `runner bench` attached to the parent's
			// simulator; it prints its figures as JSON.
			&cli.StringFlag{Name: "attach", Hidden: true},
			&cli.StringFlag{Name: "attach-api-path", Hidden: true},
			&cli.StringFlag{Name: "attach-plan", Hidden: true},
			&cli.StringFlag{Name: "attach-ca-cert", Hidden: true},
			&cli.StringFlag{Name: "shard", Hidden: true},
			&cli.IntFlag{Name: "night", Hidden: true},
			// The binary to start the simulator and shards from (tests run
			// in a test binary).
			&cli.StringFlag{Name: "runner-binary", Hidden: true},
		},
		Action: benchAction,
	}
}

// benchOptions are bench's flags, checked.
type benchOptions struct {
	certificates, stores int
	latency              time.Duration
	concurrency          int
	force                bool
	rate                 float64
	shards, nights       int
	profile              string
	stateDir             string
	keep                 bool
	binary               string
}

func readBenchOptions(c *cli.Context) (benchOptions, error) {
	o := benchOptions{
		certificates: c.Int("certificates"), stores: c.Int("stores"), latency: c.Duration("latency"),
		concurrency: c.Int("concurrency"), force: c.Bool("force"), rate: c.Float64("rate"),
		shards: c.Int("shards"), nights: c.Int("nights"), profile: c.String("profile"),
		stateDir: c.String("state-dir"), keep: c.Bool("keep"), binary: c.String("runner-binary"),
	}
	switch {
	case c.NArg() > 0:
		return o, usageError{msg: fmt.Sprintf("bench takes no arguments, got %q", c.Args().Slice()), hint: "the plan is generated: use --certificates N --stores M"}
	case o.certificates < 1 || o.stores < 1:
		return o, usageError{msg: fmt.Sprintf("--certificates %d --stores %d: both must be at least 1", o.certificates, o.stores)}
	case o.latency < 0:
		return o, usageError{msg: fmt.Sprintf("--latency: must not be negative, got %s", o.latency)}
	case o.concurrency < 1:
		return o, usageError{msg: fmt.Sprintf("--concurrency: must be at least 1, got %d", o.concurrency)}
	case checkRate(o.rate) != nil:
		return o, checkRate(o.rate)
	case o.shards < 1:
		return o, usageError{msg: fmt.Sprintf("--shards: must be at least 1, got %d", o.shards)}
	case o.nights < 1:
		return o, usageError{msg: fmt.Sprintf("--nights: must be at least 1, got %d", o.nights)}
	}
	if o.binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("find this program to start the simulator from: %w", err)
		}
		o.binary = exe
	}
	return o, nil
}

func benchAction(c *cli.Context) error {
	if c.String("attach") != "" {
		return benchShardAction(c)
	}
	o, err := readBenchOptions(c)
	if err != nil {
		return err
	}
	dir := o.stateDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "runner-bench-"); err != nil {
			return fmt.Errorf("create a directory for the benchmark: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return usageError{msg: fmt.Sprintf("--state-dir %s: %v", dir, err)}
	}
	if o.keep {
		defer fmt.Fprintf(c.App.ErrWriter, "runner bench: kept %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return usageError{msg: fmt.Sprintf("--profile %s: %v", o.profile, err)}
		}
	}

	out := c.App.Writer
	load, pressure := loadAverage(), cpuPressure()
	setupStart := time.Now()
	sim, err := startBenchSim(c.Context, o, dir)
	if err != nil {
		return err
	}
	defer sim.stop()
	fmt.Fprintf(out, "runner bench: %d certificates × %d stores = %d rows, latency %s, concurrency %d, %s, %s\n",
		o.certificates, o.stores, o.certificates*o.stores, o.latency, o.concurrency, dueMode(o.force), processes(o.shards))
	fmt.Fprintf(out, "machine: %d CPUs, Go %s, load average %s, CPU pressure %s at start; simulator ready in %s (%s)\n",
		runtime.NumCPU(), runtime.Version(), load, pressure, time.Since(setupStart).Round(time.Millisecond), sim.base)

	rtt, err := calibrate(c.Context, sim, o.concurrency*o.shards)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "round trip: %s with %d requests at once (GET /Status/Endpoints, no runner: L plus what this machine adds)\n", ms(rtt), o.concurrency*o.shards)
	led, err := sim.ledger(c.Context)
	if err != nil {
		return err
	}
	seen := led.marks()
	for night := 1; night <= o.nights; night++ {
		simCPU0 := processCPU(sim.cmd.Process.Pid)
		var fig runFigures
		if o.shards == 1 {
			fig, err = benchRun(c.Context, benchTarget{
				base: sim.base, apiPath: sim.apiPath, caCert: sim.caCert, plan: sim.plan,
				state: filepath.Join(dir, "state.db"), report: filepath.Join(dir, fmt.Sprintf("night-%d.json", night)),
				concurrency: o.concurrency, rate: o.rate, force: o.force, profile: profilePrefix(o.profile, "", night), log: c.App.ErrWriter,
			})
		} else {
			fig, err = benchShards(c.Context, o, sim, dir, night)
		}
		if err != nil {
			return err
		}
		simFig := simFigures{cpu: -1, peakRSS: peakRSSOf(fmt.Sprint(sim.cmd.Process.Pid))}
		if cpu := processCPU(sim.cmd.Process.Pid); cpu >= 0 && simCPU0 >= 0 {
			simFig.cpu = cpu - simCPU0
		}
		led, err := sim.ledger(c.Context)
		if err != nil {
			return err
		}
		writeNight(out, o, night, fig, led.since(seen), simFig, rtt)
		seen = led.marks()
	}
	return nil
}

func dueMode(force bool) string {
	if force {
		return "--force"
	}
	return "first night (all due)"
}

func processes(s int) string {
	if s == 1 {
		return "1 process"
	}
	return fmt.Sprintf("%d shard processes", s)
}

// benchSim is the simulator process.
type benchSim struct {
	cmd     *exec.Cmd
	base    string // scheme://host:port
	apiPath string
	caCert  string // PEM file
	plan    string
	http    *http.Client
	done    chan struct{}
}

// simGOGC is the simulator's GOGC (see startBenchSim).
const simGOGC = "400"

var simServing = regexp.MustCompile(`serving Keyfactor Command at (https?://[^/\s]+)/(\S+)`)

// startBenchSim starts `runner sim` on a free loopback port, with a
// synthetic estate and its plan, and waits for it to say where it serves.
func startBenchSim(ctx context.Context, o benchOptions, dir string) (*benchSim, error) {
	s := &benchSim{caCert: filepath.Join(dir, "kfsim-ca.pem"), plan: filepath.Join(dir, "plan.csv"), done: make(chan struct{})}
	s.cmd = exec.Command(o.binary, "sim",
		"--synthetic", fmt.Sprintf("%d:%d", o.certificates, o.stores), "--write-plan", s.plan,
		"--latency", o.latency.String(), "--listen", "127.0.0.1:0", "--tls", "--tls-cert-out", s.caCert)
	// The demo user, whatever the caller's environment names, and the
	// simulator's own GC settings, not the ones the runner is measured with. The
	// simulator holds the whole estate, its ledger and every job in memory;
	// collecting that heap less often keeps it from taking the CPU the
	// runner is measured on.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYFACTOR_") && !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	s.cmd.Env = append(s.cmd.Env, "GOGC="+simGOGC)
	s.cmd.Stderr = os.Stderr
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the simulator %s sim: %w", o.binary, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := simServing.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
				break
			}
		}
		close(found)
		_, _ = io.Copy(io.Discard, stdout) // never let the simulator block on its stdout
	}()
	select {
	case m, ok := <-found:
		if !ok {
			s.stop()
			return nil, errors.New("the simulator exited without saying where it serves")
		}
		s.base, s.apiPath = m[1], m[2]
	case <-time.After(2 * time.Minute):
		s.stop()
		return nil, errors.New("the simulator did not start within 2 minutes")
	case <-ctx.Done():
		s.stop()
		return nil, runner.ErrInterrupted
	}
	pemCert, err := os.ReadFile(s.caCert)
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("read the simulator's certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCert)
	s.http = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return s, nil
}

// stop ends the simulator: an interrupt, then a kill if it lingers.
func (s *benchSim) stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// benchConnection is the connection to the simulator at base, as its demo
// user, for the round-trip measurement and the runs alike.
func benchConnection(base, apiPath, caCert string) keyfactor.Config {
	return keyfactor.Config{Hostname: base, APIPath: apiPath, CACert: caCert,
		Username: demoUser, Domain: demoDomain, Password: demoPassword, UserAgent: "runner-bench/" + version()}
}

// calibrate measures the round trip of a bare request at the run's
// concurrency: conc loops of GET /Status/Endpoints through a client like
// the run's, the first request of each (its connection's handshake) left
// out. Against it, the ratio shows runner's own cost apart from the
// machine's.
func calibrate(ctx context.Context, sim *benchSim, conc int) (time.Duration, error) {
	inv := &invocation{log: slog.New(slog.DiscardHandler), cfg: runner.Config{Concurrency: conc}}
	client, err := inv.connect(benchConnection(sim.base, sim.apiPath, sim.caCert))
	if err != nil {
		return 0, err
	}
	const rounds = 5
	var mu sync.Mutex
	var total time.Duration
	var errs []error
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for i := range rounds {
				start := time.Now()
				_, err := client.StatusEndpoints(ctx)
				d := time.Since(start)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if i > 0 {
					total += d
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return 0, fmt.Errorf("measure the round trip: %w", errs[0])
	}
	return total / time.Duration(conc*(rounds-1)), nil
}

// benchLedger is the part of kfsim's ledger the figures need.
type benchLedger struct {
	Requests []benchRequest
	Renewals []benchRenewal
	Deploys  []benchDeploy
}

type benchRequest struct {
	At       time.Time
	Endpoint string
}

type benchRenewal struct {
	At               time.Time
	NewCertificateId int
}

type benchDeploy struct {
	At            time.Time
	CertificateId int
}

// ledgerMarks are how long the ledger's lists were after a night.
type ledgerMarks struct{ requests, renewals, deploys int }

func (l *benchLedger) marks() ledgerMarks {
	return ledgerMarks{len(l.Requests), len(l.Renewals), len(l.Deploys)}
}

// since is the part of the ledger written after m.
func (l *benchLedger) since(m ledgerMarks) *benchLedger {
	return &benchLedger{Requests: l.Requests[m.requests:], Renewals: l.Renewals[m.renewals:], Deploys: l.Deploys[m.deploys:]}
}

func (s *benchSim) ledger(ctx context.Context) (*benchLedger, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/_kfsim/ledger", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /_kfsim/ledger: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /_kfsim/ledger: status %d", resp.StatusCode)
	}
	var l benchLedger
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		return nil, fmt.Errorf("GET /_kfsim/ledger: decode: %w", err)
	}
	return &l, nil
}

// benchTarget is one run's setting.
type benchTarget struct {
	base, apiPath, caCert, plan string
	state, report               string
	concurrency                 int
	rate                        float64
	force                       bool
	shard                       runner.Shard
	profile                     string // file name prefix, "" for none
	log                         io.Writer
}

// runFigures are what one process measured of its own run.
type runFigures struct {
	Start        time.Time     `json:"start"`
	Wall         time.Duration `json:"wall_ns"`
	CPU          time.Duration `json:"cpu_ns"`          // user + system
	PeakRSS      int64         `json:"peak_rss_bytes"`  // VmHWM; 0 when unknown
	Commits      uint64        `json:"journal_commits"` // journal.CommitCount
	Rows         int           `json:"rows"`
	Certificates int           `json:"certificates"`
	Succeeded    int           `json:"succeeded"`
	Failed       int           `json:"failed"`
	Skipped      int           `json:"skipped"`
	// FirstFailure is the detail of one failed row, so a broken benchmark
	// says why.
	FirstFailure string `json:"first_failure,omitempty"`
}

// benchRun runs the plan once in this process and measures it: plan load,
// connection, journal, run, JSON report and journal close.
func benchRun(ctx context.Context, t benchTarget) (runFigures, error) {
	var fig runFigures
	// What came before (the simulator's start, an earlier night's ledger)
	// must not count in this run's peak.
	debug.FreeOSMemory() // a GC, then the freed memory back to the system
	resetPeakRSS()
	cpu0 := selfCPU()
	start := time.Now()
	fig.Start = start
	if t.profile != "" {
		f, err := os.Create(t.profile + "cpu.pprof")
		if err != nil {
			return fig, fmt.Errorf("--profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fig, fmt.Errorf("--profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	p, err := plan.Load(t.plan, plan.Options{Now: func() time.Time { return start }})
	if err != nil {
		return fig, fmt.Errorf("the generated plan: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(t.log, &slog.HandlerOptions{Level: slog.LevelError}))
	inv := &invocation{log: logger, cfg: runner.Config{Concurrency: t.concurrency}, rate: t.rate}
	client, err := inv.connect(benchConnection(t.base, t.apiPath, t.caCert))
	if err != nil {
		return fig, err
	}
	j, err := journal.Open(t.state, journal.Options{Command: client.BaseURL()})
	if err != nil {
		return fig, err
	}
	r := &runner.Runner{Client: client, Journal: j, Config: runner.Config{
		Concurrency: t.concurrency, Force: t.force, Window: runner.DefaultWindow, WindowMargin: runner.DefaultWindowMargin,
		RenewBefore: plan.RenewBefore{Duration: runner.DefaultRenewBefore}, Shard: t.shard, Identity: client.Identity(), Logger: logger,
	}}
	rep, runErr := r.Run(ctx, p)
	if t.profile != "" {
		if err := writeHeapProfile(t.profile + "heap.pprof"); err != nil {
			return fig, err
		}
	}
	repErr := report.WriteFile(t.report, rep)
	closeErr := j.Close()
	fig.Wall = time.Since(start)
	fig.CPU = selfCPU() - cpu0
	fig.PeakRSS = peakRSS()
	fig.Commits = j.CommitCount()
	if err := errors.Join(runErr, repErr, closeErr); err != nil {
		return fig, err
	}
	counts := rep.Counts()
	fig.Rows, fig.Succeeded, fig.Failed, fig.Skipped = len(rep.Rows), counts[report.Succeeded], counts[report.Failed], counts[report.Skipped]
	certs := map[int]bool{}
	for _, row := range rep.Rows {
		certs[row.CertificateID] = true
		if row.Status == report.Failed && fig.FirstFailure == "" {
			fig.FirstFailure = fmt.Sprintf("line %d: %s", row.Line, row.Detail)
		}
	}
	fig.Certificates = len(certs)
	return fig, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("--profile: %w", err)
	}
	return f.Close()
}

func profilePrefix(dir, shard string, night int) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, fmt.Sprintf("%snight%d-", shard, night))
}

// benchShards runs S shard processes of `runner bench` attached to the
// simulator at once and adds up their figures; the wall is the slowest's.
func benchShards(ctx context.Context, o benchOptions, sim *benchSim, dir string, night int) (runFigures, error) {
	var total runFigures
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	start := time.Now()
	for i := 1; i <= o.shards; i++ {
		shardDir := filepath.Join(dir, fmt.Sprintf("shard-%d", i))
		if err := os.MkdirAll(shardDir, 0o700); err != nil {
			return total, err
		}
		shard := runner.Shard{Index: i, Count: o.shards}.String()
		args := []string{"bench", "--attach", sim.base, "--attach-api-path", sim.apiPath, "--attach-plan", sim.plan,
			"--attach-ca-cert", sim.caCert, "--state-dir", shardDir, "--shard", shard,
			"--concurrency", strconv.Itoa(o.concurrency), "--rate", strconv.FormatFloat(o.rate, 'g', -1, 64),
			"--night", strconv.Itoa(night)}
		if o.force {
			args = append(args, "--force")
		}
		if o.profile != "" {
			args = append(args, "--profile", o.profile)
		}
		cmd := exec.CommandContext(ctx, o.binary, args...)
		cmd.Stderr = os.Stderr
		wg.Go(func() {
			out, err := cmd.Output()
			var fig runFigures
			if err == nil {
				err = json.Unmarshal(out, &fig)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("shard %s: %w", shard, err))
				return
			}
			total.CPU += fig.CPU
			total.PeakRSS = max(total.PeakRSS, fig.PeakRSS)
			total.Commits += fig.Commits
			total.Rows += fig.Rows
			total.Certificates += fig.Certificates
			total.Succeeded += fig.Succeeded
			total.Failed += fig.Failed
			total.Skipped += fig.Skipped
			if total.FirstFailure == "" {
				total.FirstFailure = fig.FirstFailure
			}
		})
	}
	wg.Wait()
	total.Start, total.Wall = start, time.Since(start)
	return total, errors.Join(errs...)
}

// benchShardAction is one shard process: it runs its shard of the plan
// against the parent's simulator and prints its figures as JSON.
func benchShardAction(c *cli.Context) error {
	shard, err := shardOf(c.String("shard"), 0, "")
	if err != nil {
		return err
	}
	night := c.Int("night")
	fig, err := benchRun(c.Context, benchTarget{
		base: c.String("attach"), apiPath: c.String("attach-api-path"), caCert: c.String("attach-ca-cert"),
		plan: c.String("attach-plan"), state: filepath.Join(c.String("state-dir"), "state.db"),
		report: filepath.Join(c.String("state-dir"), fmt.Sprintf("night-%d.json", night)), concurrency: c.Int("concurrency"),
		rate: c.Float64("rate"), force: c.Bool("force"), shard: shard,
		profile: profilePrefix(c.String("profile"), fmt.Sprintf("shard%d-", shard.Index), night), log: c.App.ErrWriter,
	})
	if err != nil {
		return err
	}
	return json.NewEncoder(c.App.Writer).Encode(fig)
}

// preflightEndpoints are the ledger's endpoint keys of preflight reads.
var preflightEndpoints = map[string]bool{"status": true, "permissions": true, "stores": true, "store": true, "storetypes": true, "token": true}

// simFigures are the simulator's own costs during a night.
type simFigures struct {
	cpu     time.Duration // -1 when unknown
	peakRSS int64         // since it started; 0 when unknown
}

// writeNight prints one night's figures.
func writeNight(w io.Writer, o benchOptions, night int, fig runFigures, led *benchLedger, sim simFigures, rtt time.Duration) {
	n := float64(fig.Certificates)
	if n == 0 {
		n = 1
	}
	ideal := time.Duration(float64(o.certificates) * 2 * float64(o.latency) / float64(o.concurrency*o.shards))
	fmt.Fprintf(w, "night %d:\n", night)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(w, "  %-28s "+format+"\n", append([]any{name}, args...)...)
	}
	row("rows", "%d: %d succeeded, %d failed, %d skipped", fig.Rows, fig.Succeeded, fig.Failed, fig.Skipped)
	if fig.FirstFailure != "" {
		row("first failure", "%s", fig.FirstFailure)
	}
	row("wall", "%.3fs", fig.Wall.Seconds())
	row("ideal", "%.3fs (N×2×L/(C×S))", ideal.Seconds())
	row("ratio ideal/wall", "%.3f", ideal.Seconds()/fig.Wall.Seconds())
	floor := time.Duration(float64(o.certificates) * 2 * float64(rtt) / float64(o.concurrency*o.shards))
	row("against the round trip", "%.3f (N×2×round trip/(C×S) = %.3fs: what is left is runner's own)", floor.Seconds()/fig.Wall.Seconds(), floor.Seconds())
	row("throughput", "%.1f certificates/s, %.1f rows/s", n/fig.Wall.Seconds(), float64(fig.Rows)/fig.Wall.Seconds())

	byEndpoint := map[string]int{}
	preflight := 0
	for _, r := range led.Requests {
		byEndpoint[r.Endpoint]++
		if preflightEndpoints[r.Endpoint] {
			preflight++
		}
	}
	names := make([]string, 0, len(byEndpoint))
	for e := range byEndpoint {
		names = append(names, e)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, e := range names {
		parts[i] = fmt.Sprintf("%s %.3f", e, float64(byEndpoint[e])/n)
	}
	row("requests/certificate", "%.3f (%d requests: %s)", float64(len(led.Requests))/n, len(led.Requests), strings.Join(parts, ", "))
	row("beyond preflight", "%.3f per certificate (%d preflight requests)", float64(len(led.Requests)-preflight)/n, preflight)
	if len(led.Requests) > 1 {
		span := led.Requests[len(led.Requests)-1].At.Sub(led.Requests[0].At)
		row("request rate", "%.1f/s (first to last request, %.3fs)", float64(len(led.Requests)-1)/span.Seconds(), span.Seconds())
	}
	gaps := renewDeployGaps(led)
	if len(gaps) > 0 {
		row("renew→deploy gap", "p50 %s  p99 %s  max %s (%d pairs)", ms(percentile(gaps, 0.50)), ms(percentile(gaps, 0.99)), ms(gaps[len(gaps)-1]), len(gaps))
	} else {
		row("renew→deploy gap", "none (nothing renewed)")
	}
	if first, last, ok := renewSpan(led); ok {
		row("timeline", "first Renew answered at +%s, last Deploy at +%s, run ended at +%s",
			ms(first.Sub(fig.Start)), ms(last.Sub(fig.Start)), ms(fig.Wall))
	}
	if fig.Rows > 0 {
		row("runner CPU/row", "%.3fms (%.3fs user+system)", fig.CPU.Seconds()*1000/float64(fig.Rows), fig.CPU.Seconds())
	}
	rss := "unknown"
	if fig.PeakRSS > 0 {
		rss = fmt.Sprintf("%.1f MB", float64(fig.PeakRSS)/1e6)
	}
	if o.shards > 1 {
		rss += " (largest shard)"
	}
	row("runner peak RSS", "%s", rss)
	row("journal commits/certificate", "%.3f (%d)", float64(fig.Commits)/n, fig.Commits)
	if len(led.Requests) > 0 && sim.cpu >= 0 {
		row("kfsim CPU/request", "%.1fµs (%.3fs)", sim.cpu.Seconds()*1e6/float64(len(led.Requests)), sim.cpu.Seconds())
	}
	if sim.peakRSS > 0 {
		row("kfsim peak RSS", "%.1f MB", float64(sim.peakRSS)/1e6)
	}
}

// renewSpan is when the night's first renewal was committed and its last
// deploy processed.
func renewSpan(l *benchLedger) (first, last time.Time, ok bool) {
	if len(l.Renewals) == 0 || len(l.Deploys) == 0 {
		return first, last, false
	}
	return l.Renewals[0].At, l.Deploys[len(l.Deploys)-1].At, true
}

// renewDeployGaps are, for each certificate renewed this night, the time
// from the renewal's commit to the first deploy of it being processed,
// sorted.
func renewDeployGaps(l *benchLedger) []time.Duration {
	renewed := make(map[int]time.Time, len(l.Renewals))
	for _, r := range l.Renewals {
		if r.NewCertificateId != 0 {
			renewed[r.NewCertificateId] = r.At
		}
	}
	gaps := make([]time.Duration, 0, len(renewed))
	for _, d := range l.Deploys {
		if at, ok := renewed[d.CertificateId]; ok {
			gaps = append(gaps, d.At.Sub(at))
			delete(renewed, d.CertificateId)
		}
	}
	slices.Sort(gaps)
	return gaps
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// selfCPU is this process's user and system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is this process's VmHWM in bytes, 0 where /proc is missing.
func peakRSS() int64 { return peakRSSOf("self") }

// peakRSSOf is the VmHWM of /proc/<pid>.
func peakRSSOf(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

// resetPeakRSS sets VmHWM back to the current RSS (Linux 4.0 and later), so
// a run's peak is its own.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// processCPU is another process's user and system CPU time so far, from
// /proc/PID/stat in clock ticks (100 per second on Linux); -1 if unknown.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name may hold spaces: fields are counted after its ")".
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// loadAverage is /proc/loadavg's three figures, "unknown" elsewhere.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// cpuPressure is the share of the last 10 s in which some task waited for
// a CPU (/proc/pressure/cpu), "unknown" where the kernel does not say: what
// other processes took from this benchmark.
func cpuPressure() string {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return "unknown"
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "avg10="); ok {
			return v + "%"
		}
	}
	return "unknown"
}
