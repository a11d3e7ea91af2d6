package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"runner/kfsim"
	"runner/plan"
)

func simCommand() *cli.Command {
	return &cli.Command{
		Name:      "sim",
		Usage:     "serve the Command simulator (kfsim)",
		ArgsUsage: " ",
		Description: "Serves a miniature Keyfactor Command for trying runner and for tests. The user from\n" +
			"KEYFACTOR_USERNAME / KEYFACTOR_PASSWORD / KEYFACTOR_DOMAIN exists with the permissions\n" +
			`renewal needs; without them the demo user is KFSIM\runner with password "simulator".` + "\n" +
			"It serves plain HTTP (or --tls with a throw-away certificate): keep it on loopback.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "address to serve on"},
			&cli.StringFlag{Name: "seed", Usage: "create every certificate and store this plan names"},
			&cli.StringFlag{Name: "synthetic", Usage: "create N certificates each in M stores (N:M), e.g. 1000:2; with --write-plan"},
			&cli.StringFlag{Name: "write-plan", Usage: "write the plan of the --synthetic world to this file"},
			&cli.StringFlag{Name: "fixture", Usage: "load a JSON world (users, clients, containers, stores, store types, templates, certificates)"},
			&cli.StringFlag{Name: "api-path", Value: "KeyfactorAPI", Usage: "API base path"},
			&cli.DurationFlag{Name: "window", Value: 5 * time.Minute, Usage: "staging window"},
			&cli.DurationFlag{Name: "job-delay", Value: 2 * time.Second, Usage: "time from job creation to the job running"},
			&cli.DurationFlag{Name: "inventory-delay", Usage: "time from a job's success to the certificate showing in the store (Command: about 30s)"},
			&cli.IntFlag{Name: "max-page-size", Usage: "cap on returnLimit for every list (0: the simulator's default)"},
			&cli.StringFlag{Name: "expired-staging", Value: "error", Usage: "how a late or foreign deploy is refused: error (HTTP 400) or failed-stores (200, all in FailedStores)"},
			&cli.StringSliceFlag{Name: "fault", Usage: "inject a fault: ENDPOINT:KIND[:key=val,…], e.g. renew:drop-after:times=1, deploy:429:times=3,retry-after=1s (repeatable)"},
			&cli.DurationFlag{Name: "latency", Usage: "fixed latency added to every request"},
			&cli.DurationFlag{Name: "latency-jitter", Usage: "random latency added on top, up to this much"},
			&cli.Int64Flag{Name: "random-seed", Value: 1, Usage: "seed for ids, thumbprints and probabilistic faults"},
			&cli.BoolFlag{Name: "tls", Usage: "serve HTTPS with a throw-away self-signed certificate for 127.0.0.1 and localhost"},
			&cli.StringFlag{Name: "tls-cert-out", Usage: "with --tls: write the certificate (PEM) here, for KEYFACTOR_CA_CERT"},
		},
		Action: simAction,
	}
}

func simAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError{msg: fmt.Sprintf("sim takes no arguments, got %q", c.Args().Slice()), hint: "use --seed PLAN.csv to seed it from a plan"}
	}
	opts := kfsim.Options{
		APIPath:        c.String("api-path"),
		Window:         c.Duration("window"),
		JobDelay:       c.Duration("job-delay"),
		InventoryDelay: c.Duration("inventory-delay"),
		MaxPageSize:    c.Int("max-page-size"),
		Seed:           c.Int64("random-seed"),
	}
	switch c.String("expired-staging") {
	case "error":
		opts.ExpiredStaging = kfsim.StagingError
	case "failed-stores":
		opts.ExpiredStaging = kfsim.StagingFailedStores
	default:
		return usageError{msg: fmt.Sprintf("--expired-staging: unknown mode %q", c.String("expired-staging")), hint: "use error or failed-stores"}
	}
	var rules []kfsim.FaultRule
	for _, spec := range c.StringSlice("fault") {
		rule, err := kfsim.ParseFault(spec)
		if err != nil {
			return usageError{msg: fmt.Sprintf("--fault %s: %v", spec, err)}
		}
		rules = append(rules, rule)
	}
	fx, err := simWorld(c)
	if err != nil {
		return err
	}
	sim := kfsim.New(opts)
	if err := sim.Load(fx); err != nil {
		return fmt.Errorf("seed the simulator: %w", err)
	}
	if path := c.String("fixture"); path != "" {
		world, err := kfsim.LoadFixture(path)
		if err != nil {
			return usageError{msg: err.Error()}
		}
		if err := sim.Load(world); err != nil {
			return usageError{msg: fmt.Sprintf("--fixture %s: %v", path, err)}
		}
	}
	sim.SetFaults(rules...)
	sim.SetLatency(c.Duration("latency"), c.Duration("latency-jitter"))

	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return usageError{msg: fmt.Sprintf("--listen %s: %v", c.String("listen"), err)}
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	scheme := "http"
	if c.Bool("tls") {
		cfg, pemCert, err := selfSignedTLS()
		if err != nil {
			return fmt.Errorf("make a TLS certificate for the simulator: %w", err)
		}
		srv.TLSConfig = cfg
		if out := c.String("tls-cert-out"); out != "" {
			if err := os.WriteFile(out, pemCert, 0o644); err != nil {
				return usageError{msg: fmt.Sprintf("--tls-cert-out %s: %v", out, err)}
			}
		}
		scheme = "https"
	}
	base := scheme + "://" + ln.Addr().String()
	u := simUser()
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !isLoopbackHost(host) {
		fmt.Fprintf(c.App.ErrWriter, "runner sim: warning: listening on %s, not loopback: anyone who reaches it can use the simulator's credentials, sent in clear over plain HTTP unless --tls\n", ln.Addr())
	}
	fmt.Fprintf(c.App.Writer, "kfsim serving Keyfactor Command at %s%s\n", base, sim.BasePath())
	fmt.Fprintf(c.App.Writer, "ledger: %s/_kfsim/ledger  token endpoint: %s/_kfsim/oauth/token\n", base, base)
	if u.Username == demoUser && u.Password == demoPassword {
		fmt.Fprintf(c.App.Writer, "demo user: %s\\%s password %q\n", demoDomain, demoUser, demoPassword)
	} else {
		fmt.Fprintf(c.App.Writer, "user: %s (from KEYFACTOR_USERNAME)\n", u.Username)
	}
	fmt.Fprintf(c.App.Writer, "try: KEYFACTOR_HOSTNAME=%s runner PLAN.csv\n", base)

	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-c.Context.Done():
		stopServer(srv)
		return nil
	}
}

// simWorld builds the world `runner sim` starts with: the user, and the
// certificates and stores of --seed or --synthetic.
func simWorld(c *cli.Context) (kfsim.Fixture, error) {
	users := []kfsim.User{simUser()}
	switch {
	case c.String("seed") != "" && c.String("synthetic") != "":
		return kfsim.Fixture{}, usageError{msg: "--seed and --synthetic both given", hint: "seed from a plan, or generate a world, not both"}
	case c.String("seed") != "":
		path := c.String("seed")
		p, err := plan.Load(path, plan.Options{AllowPlainPasswords: true, AllowPastJobTime: true})
		if err != nil {
			return kfsim.Fixture{}, err
		}
		fx := fixtureFromPlan(p, time.Now())
		fx.Users = users
		return fx, nil
	case c.String("synthetic") != "":
		n, m, err := parseSynthetic(c.String("synthetic"))
		if err != nil {
			return kfsim.Fixture{}, err
		}
		targets := kfsim.SyntheticTargets(n, m)
		if out := c.String("write-plan"); out != "" {
			if err := writeTargetsPlan(out, targets); err != nil {
				return kfsim.Fixture{}, err
			}
		}
		fx := kfsim.SeedFixture(targets, time.Now())
		fx.Users = users
		return fx, nil
	}
	return kfsim.Fixture{Users: users}, nil
}

func parseSynthetic(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, ":")
	n, err1 := strconv.Atoi(a)
	m, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || m < 1 {
		return 0, 0, usageError{msg: fmt.Sprintf("--synthetic %q: expected N:M, certificates and stores per certificate, e.g. 1000:2", s)}
	}
	return n, m, nil
}

// writeTargetsPlan writes the plan of a generated world, one row per
// (certificate, store).
func writeTargetsPlan(path string, targets []kfsim.SeedTarget) error {
	f, err := os.Create(path)
	if err != nil {
		return usageError{msg: fmt.Sprintf("--write-plan %s: %v", path, err)}
	}
	w, err := plan.NewWriter(f, []string{"certificate_id", "store_id", "alias", "overwrite"})
	if err == nil {
		err = w.WriteHeader()
	}
	for _, t := range targets {
		if err != nil {
			break
		}
		err = w.WriteRow([]string{strconv.Itoa(t.CertificateID), t.StoreID, t.Alias, "true"})
	}
	if err == nil {
		err = w.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the synthetic plan %s: %w", path, err)
	}
	return nil
}
