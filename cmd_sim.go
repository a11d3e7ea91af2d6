package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"

	"runner/kfsim"
	"runner/plan"
)

func simCommand() *cli.Command {
	return &cli.Command{
		Name:      "sim",
		Usage:     "serve the Command simulator (kfsim) over HTTP",
		ArgsUsage: " ",
		Description: "Serves a miniature Keyfactor Command for trying runner and for tests. The user from\n" +
			"KEYFACTOR_USERNAME / KEYFACTOR_PASSWORD / KEYFACTOR_DOMAIN exists with full permissions;\n" +
			`without them the demo user is KFSIM\runner with password "simulator".`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "address to serve on (plain HTTP: keep it on loopback)"},
			&cli.StringFlag{Name: "seed", Usage: "create every certificate and store this plan names"},
			&cli.StringFlag{Name: "fixture", Usage: "load a JSON world (users, clients, containers, stores, templates, certificates)"},
			&cli.StringFlag{Name: "api-path", Value: "KeyfactorAPI", Usage: "API base path"},
			&cli.DurationFlag{Name: "window", Value: 5 * time.Minute, Usage: "staging window"},
			&cli.DurationFlag{Name: "job-delay", Value: 2 * time.Second, Usage: "time from job creation to the certificate showing in the store"},
			&cli.StringFlag{Name: "expired-staging", Value: "error", Usage: "how a late or foreign deploy is refused: error (HTTP 400) or failed-stores (200, all in FailedStores)"},
			&cli.StringSliceFlag{Name: "fault", Usage: "inject a fault: ENDPOINT:KIND[:key=val,…], e.g. renew:drop-after:times=1, deploy:429:times=3,retry-after=1s (repeatable)"},
			&cli.DurationFlag{Name: "latency", Usage: "fixed latency added to every request"},
			&cli.DurationFlag{Name: "latency-jitter", Usage: "random latency added on top, up to this much"},
			&cli.Int64Flag{Name: "random-seed", Value: 1, Usage: "seed for ids, thumbprints and probabilistic faults"},
		},
		Action: simAction,
	}
}

func simAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError{msg: fmt.Sprintf("sim takes no arguments, got %q", c.Args().Slice()), hint: "use --seed PLAN.csv to seed it from a plan"}
	}
	opts := kfsim.Options{
		APIPath:  c.String("api-path"),
		Window:   c.Duration("window"),
		JobDelay: c.Duration("job-delay"),
		Seed:     c.Int64("random-seed"),
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
	sim := kfsim.New(opts)
	fx := kfsim.Fixture{Users: []kfsim.User{simUser()}}
	if path := c.String("seed"); path != "" {
		p, err := plan.Load(path, plan.Options{AllowPlainPasswords: true})
		if err != nil {
			return err
		}
		seeded := fixtureFromPlan(p, time.Now())
		seeded.Users = fx.Users
		fx = seeded
	}
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
	base := "http://" + ln.Addr().String()
	u := simUser()
	fmt.Fprintf(c.App.Writer, "kfsim serving Keyfactor Command at %s%s\n", base, sim.BasePath())
	fmt.Fprintf(c.App.Writer, "ledger: %s/_kfsim/ledger  token endpoint: %s/_kfsim/oauth/token\n", base, base)
	if u.Username == demoUser && u.Password == demoPassword {
		fmt.Fprintf(c.App.Writer, "demo user: %s\\%s password %q\n", demoDomain, demoUser, demoPassword)
	} else {
		fmt.Fprintf(c.App.Writer, "user: %s (from KEYFACTOR_USERNAME)\n", u.Username)
	}
	fmt.Fprintf(c.App.Writer, "try: KEYFACTOR_HOSTNAME=%s runner PLAN.csv\n", base)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-c.Context.Done():
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("shut down: %w", err)
		}
		return nil
	}
}
